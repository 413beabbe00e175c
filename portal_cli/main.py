"""The `portal` commands. Exit codes (portal_cli/exits.py): 0 done, 1 the operation
failed, 2 refused by the portal or used wrongly (nothing was done), 3 still running at
--timeout, 4 the portal could not be reached or understood, 130 interrupted."""

import functools
import os
import sys
from datetime import datetime

import click
import httpx

from portal_cli import __version__, config, exits, output
from portal_cli.client import Api, ApiError, NotAPortal
from portal_cli.output import safe
from portal_cli.wait import StoppedWaiting, follow

DEFAULT_TIMEOUT = 600


def api():
    settings = config.load()
    key = click.get_current_context().meta.get(IDEMPOTENCY_KEY)
    return Api(settings.url, settings.token, idempotency_key=key)


def talks_to_the_portal(command):
    """Turn what can go wrong on the way into a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (config.Misused, httpx.InvalidURL) as exc:
            output.misused(exc)
            sys.exit(exits.REFUSED)
        except ApiError as exc:
            if kwargs.get("as_json"):
                output.print_json(exc.problem)
            output.api_error(exc)
            sys.exit(exits.REFUSED if exc.refused else exits.FAILED)
        except NotAPortal as exc:
            output.not_a_portal(exc)
            sys.exit(exits.UNREACHABLE)
        except httpx.HTTPError as exc:
            output.unreachable(exc, url_of(exc))
            sys.exit(exits.UNREACHABLE)
        except StoppedWaiting as exc:
            output.stopped_waiting(exc.operation)
            sys.exit(exits.INTERRUPTED)
        except KeyboardInterrupt:
            output.err.print("Interrupted.")
            sys.exit(exits.INTERRUPTED)

    return wrapper


def url_of(error):
    try:
        return str(error.request.url)
    except RuntimeError:  # raised before it had a request
        return ""


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def ask_for_reason(ctx, param, value):
    """The portal wants a reason for everything that acts: asked for at a terminal,
    and left to the portal to refuse (exit 2) in a script that gave none."""
    if value is None and sys.stdin.isatty():
        return click.prompt("Reason (kept in the environment history)")
    return value or ""


reason_option = click.option(
    "--reason", callback=ask_for_reason, help="Why: kept in the environment history."
)
#: Where --quiet is kept for wait_for (click's context meta, for options no command
#: function needs to take).
QUIET = "portal.quiet"
quiet_option = click.option(
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=lambda ctx, param, value: ctx.meta.__setitem__(QUIET, value),
    help="While waiting, show the status changes only, not the driver's log lines.",
)


#: Where --idempotency-key is kept (click's context meta), for api().
IDEMPOTENCY_KEY = "portal.idempotency_key"


def idempotency_key_option(command):
    """--idempotency-key: the key this command's change is sent with (a new UUID
    otherwise). The same key from the same user within a day gets the first answer
    again and changes nothing: a script that does not know whether its last attempt got
    through runs the command again with the same key."""
    return click.option(
        "--idempotency-key",
        expose_value=False,
        metavar="KEY",
        callback=lambda ctx, param, value: ctx.meta.__setitem__(IDEMPOTENCY_KEY, value),
        help="Send the change with this Idempotency-Key (1 to 255 printable ASCII "
        "characters), so that running the command again with it changes nothing.",
    )(command)


def wait_option(command):
    """--wait, and --quiet to leave the driver's log lines out while it waits."""
    command = quiet_option(command)
    return click.option(
        "--wait",
        is_flag=True,
        help="Follow the operation until it settles, printing the driver's log lines as "
        "they come; the exit code says how.",
    )(command)


timeout_option = click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds --wait waits before giving up (exit 3); the operation goes on.",
)


@click.group()
@click.version_option(__version__, prog_name="portal")
def cli():
    """The environment maintenance portal from the command line: PORTAL_URL and
    PORTAL_TOKEN, or `portal login`, say where and as whom."""


NO_URL = "No portal URL: give --url, or set PORTAL_URL."


def ask(question, *, hide_input=False, missing):
    """Asked at a terminal; a script is told what to give instead (``missing``)."""
    if not sys.stdin.isatty():
        raise config.Misused(missing)
    return click.prompt(question, hide_input=hide_input)


@cli.command()
@click.option("--url", help="e.g. https://portal.example.com; else PORTAL_URL, else asked.")
@click.option(
    "--token-stdin", is_flag=True, help="Read the token from standard input (its first line)."
)
@click.option("--token", hidden=True, help="Visible to other users in `ps`: use --token-stdin.")
@talks_to_the_portal
def login(url, token_stdin, token):
    """Check a token against the portal, say whom it signs in as, and keep the URL and
    the token in the config file. The token comes from standard input (--token-stdin),
    else PORTAL_TOKEN, else it is asked for at a terminal, unechoed."""
    url = url or os.environ.get("PORTAL_URL") or ask("Portal URL", missing=NO_URL)
    url = config.portal_url(url)
    if token_stdin:
        token = sys.stdin.readline().strip()
    elif token:
        output.err.print(
            "A token on the command line is seen by other users (ps) and kept in the shell's "
            "history: prefer --token-stdin or PORTAL_TOKEN."
        )
    else:
        token = os.environ.get("PORTAL_TOKEN") or ask(
            "API token", hide_input=True, missing=config.NO_TOKEN
        )
    token = config.api_token(token)
    me = Api(url, token).get("me")
    path = config.save(url, token)
    output.signed_in(url, me, saved=path)


@cli.command()
@json_option
@talks_to_the_portal
def whoami(as_json):
    """Whom the token signs in as: the user, and the token's name, scope and expiry."""
    settings = config.load()
    me = Api(settings.url, settings.token).get("me")
    if as_json:
        output.print_json(me)
    else:
        output.signed_in(settings.url, me)


@cli.command()
@click.option("--project", help="Only this project (its slug).")
@click.option("--status", help="Only this status, e.g. deployed, failed, in_maintenance.")
@json_option
@talks_to_the_portal
def envs(project, status, as_json):
    """The environments you may see."""
    environments = api().get("environments", project=project, status=status)
    if as_json:
        output.print_json(environments)
    else:
        output.environments_table(environments)


@cli.command()
@click.argument("env")
@json_option
@talks_to_the_portal
def status(env, as_json):
    """An environment's status, services, access grants and the commands you may run now."""
    details = api().get(f"environments/{env}")
    if as_json:
        output.print_json(details)
    else:
        output.environment_details(details)


def start(env, action, *, reason, wait, timeout, as_json, **fields):
    """Start a Maintain action, and with --wait follow it to its end."""
    client = api()
    operation = client.post(
        f"environments/{env}/operations", {"action": action, "reason": reason, **fields}
    )
    finish(client, operation, wait=wait, timeout=timeout, as_json=as_json)


def finish(client, operation, *, wait, timeout, as_json, result=None):
    """Print what was started, follow it with --wait, exit with how it ended."""
    code = exits.OK
    if not as_json:
        output.operation_started(operation)
    if wait:
        operation, code = wait_for(client, operation, timeout=timeout, quiet=as_json)
    if as_json:
        output.print_json(result(operation) if result else operation)
    elif code == exits.TIMEOUT:
        output.still_running(operation, timeout)
    elif wait or not operation["active"]:
        output.operation_result(operation)
    else:
        output.operation_going_on(operation)
    sys.exit(code)


def wait_for(client, operation, *, timeout, quiet=False):
    """Follow the operation with a spinner, printing the driver's lines as they come;
    Ctrl-C stops the waiting (StoppedWaiting), never the operation."""
    show_lines = not (quiet or click.get_current_context().meta.get(QUIET))
    shown_lines = 0
    try:
        with output.err.status(safe(operation["environment_status_label"])) as spinner:

            def progress(op, changed):
                nonlocal shown_lines
                status = safe(op["environment_status_label"])
                spinner.update(f"{safe(op['activity'])}: {status} ({safe(op['outcome_label'])})")
                # Lines are only ever added, oldest first: the ones past those shown are new.
                lines = op.get("log_lines", [])
                if show_lines:
                    for line in lines[shown_lines:]:
                        output.log_line(line)
                shown_lines = len(lines)
                if changed and not quiet:
                    output.err.print(f"  {status}")

            return follow(client, operation, timeout=timeout, progress=progress)
    except KeyboardInterrupt:
        raise StoppedWaiting(operation) from None


@cli.command()
@click.argument("env")
@click.argument("service", type=click.Choice(["aos", "dixf", "mr"], case_sensitive=False))
@reason_option
@wait_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def restart(env, service, reason, wait, timeout, as_json):
    """Restart a service (aos, dixf or mr) of ENV."""
    start(
        env,
        "restart_service",
        service=service.lower(),
        reason=reason,
        wait=wait,
        timeout=timeout,
        as_json=as_json,
    )


@cli.command()
@click.argument("env")
@click.argument("state", type=click.Choice(["on", "off"]))
@reason_option
@wait_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def maintenance(env, state, reason, wait, timeout, as_json):
    """Turn maintenance mode of ENV on or off."""
    action = "enable_maintenance" if state == "on" else "disable_maintenance"
    start(env, action, reason=reason, wait=wait, timeout=timeout, as_json=as_json)


def recovery_command(action, help_text):
    @click.argument("env")
    @reason_option
    @wait_option
    @timeout_option
    @json_option
    @idempotency_key_option
    @talks_to_the_portal
    def command(env, reason, wait, timeout, as_json):
        start(env, action, reason=reason, wait=wait, timeout=timeout, as_json=as_json)

    command.__doc__ = help_text
    return cli.command(name=action)(command)


recovery_command("resume", "Run the operation that left ENV Failed again.")
recovery_command("rollback", "Undo the operation that left ENV Failed.")
recovery_command(
    "abort", "Return ENV to its status before the failed operation, acting on nothing."
)


@cli.command()
@click.argument("env")
@reason_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def stop(env, reason, as_json):
    """Stop the operation running on ENV: no further step runs; a command in flight is
    allowed to end, then the operation fails with your reason."""
    client = api()
    running = client.get(f"environments/{env}")["running_operation"]
    if running is None:
        output.err.print(f"Nothing is running on {safe(env)} to stop.")
        sys.exit(exits.REFUSED)
    operation = client.post(f"operations/{running['activity_id']}/stop", {"reason": reason})
    if operation["active"]:
        line = f"Stopping {safe(operation['activity'])}: the step in flight ends first."
    else:
        line = f"Stopped {safe(operation['activity'])}: {safe(operation['error'])}"
    output.answer(operation, as_json, line)
    if not as_json and operation["active"]:
        output.out.print(f"Follow it with: portal operation {operation['activity_id']} --wait")


@cli.command()
@click.argument("activity_id")
@wait_option
@timeout_option
@json_option
@talks_to_the_portal
def operation(activity_id, wait, timeout, as_json):
    """Show an operation (by its activity id), or follow it with --wait."""
    client = api()
    finish(
        client, client.get(f"operations/{activity_id}"), wait=wait, timeout=timeout, as_json=as_json
    )


@cli.group()
def access():
    """Just-in-time database access: firewall rules and database accounts."""


@access.command("rule")
@click.argument("env")
@click.argument("address")
@click.option("--reason", required=True, help="Why access is needed (kept in the history).")
@click.option("--name", help="The rule's name; by default from the address.")
@click.option("--hours", type=float, help="How long it lasts (default and maximum: the portal's).")
@wait_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def access_rule(env, address, reason, name, hours, wait, timeout, as_json):
    """Enable access: let ADDRESS (an IP address or CIDR range) reach ENV's database."""
    client = api()
    name = name or "cli " + address.replace("/", "-").replace(":", ".")
    body = {"name": name, "address": address, "reason": reason, "hours": hours}
    answer = client.post(f"environments/{env}/firewall-rules", body)
    if not as_json:
        output.firewall_rule(answer["firewall_rule"])
    finish(
        client,
        answer["operation"],
        wait=wait,
        timeout=timeout,
        as_json=as_json,
        result=lambda op: {**answer, "operation": op},
    )


@access.command("db")
@click.argument("env")
@click.option("--read-write/--read", default=False, help="Read-write or Read (the default) access.")
@click.option("--reason", required=True, help="Why access is needed (kept in the history).")
@click.option("--hours", type=float, help="How long it lasts (default and maximum: the portal's).")
@click.option("--no-wait", is_flag=True, help="Print the credentials before the account exists.")
@quiet_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def access_db(env, read_write, reason, hours, no_wait, timeout, as_json):
    """Request access: a database account on ENV. Its password is printed once."""
    client = api()
    body = {"level": "read_write" if read_write else "read", "reason": reason, "hours": hours}
    answer = client.post(f"environments/{env}/database-accounts", body)
    operation, code = answer["operation"], exits.OK
    if not no_wait:
        try:
            operation, code = wait_for(client, operation, timeout=timeout, quiet=as_json)
        except StoppedWaiting:
            if not as_json:
                output.out.print(NOT_SHOWN)
            raise
    answer["operation"] = operation
    if as_json:
        output.print_json(answer)
    elif code == exits.OK:
        output.credentials(answer["database_account"], env)
    elif code == exits.TIMEOUT:
        output.out.print(NOT_SHOWN)
    else:
        output.operation_result(operation)
    sys.exit(code)


NOT_SHOWN = "The account is still being created; its password is not shown."


@access.command("remove")
@click.argument("rule_id", type=int)
@json_option
@idempotency_key_option
@talks_to_the_portal
def access_remove(rule_id, as_json):
    """Remove a firewall rule before it expires."""
    answer = api().delete(f"firewall-rules/{rule_id}")
    state = safe(answer["firewall_rule"]["state"])
    output.answer(answer, as_json, f"Firewall rule {rule_id}: {state}.")


@access.command("revoke")
@click.argument("account_id", type=int)
@json_option
@idempotency_key_option
@talks_to_the_portal
def access_revoke(account_id, as_json):
    """Revoke a database account before it expires."""
    answer = api().delete(f"database-accounts/{account_id}")
    state = safe(answer["database_account"]["state"])
    output.answer(answer, as_json, f"Database account {account_id}: {state}.")


class LocalTime(click.ParamType):
    """An ISO 8601 time; one without an offset is in this machine's time zone, and is
    refused when the clock skips or repeats it there (a daylight-saving change)."""

    name = "time"

    def convert(self, value, param, ctx):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a time like 2026-12-24T22:00 or 2026-12-24 22:00+01:00")
        if moment.tzinfo:
            return moment
        first, second = (moment.replace(fold=fold).astimezone() for fold in (0, 1))
        if first != second:
            self.fail(
                f"{value} is skipped or repeated here by a clock change: "
                "give it with its offset, e.g. 2026-03-29T02:30+01:00"
            )
        return first


@cli.group()
def window():
    """Scheduled maintenance windows: maintenance mode on and off at set times."""


@window.command("list")
@click.argument("env")
@click.option("--state", help="scheduled, active, completed, cancelled or missed.")
@json_option
@talks_to_the_portal
def window_list(env, state, as_json):
    """ENV's windows still to come or active (or those in one --state)."""
    found = api().get(f"environments/{env}/maintenance-windows", state=state)
    if as_json:
        output.print_json(found)
    else:
        output.windows_table(found)


@window.command("schedule")
@click.argument("env")
@click.option("--start", "starts_at", type=LocalTime(), required=True, help="When it starts.")
@click.option("--end", "ends_at", type=LocalTime(), required=True, help="When it ends.")
@click.option("--reason", required=True, help="Why (kept in the history, sent to the users).")
@click.option("--notify/--no-notify", default=True, help="Mail the environment's users.")
@json_option
@idempotency_key_option
@talks_to_the_portal
def window_schedule(env, starts_at, ends_at, reason, notify, as_json):
    """Schedule maintenance mode on ENV from --start to --end (times without an offset
    are in this machine's time zone)."""
    body = {
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "reason": reason,
        "notify_users": notify,
    }
    found = api().post(f"environments/{env}/maintenance-windows", body)
    output.answer(found, as_json, f"Scheduled window {found['id']}: {output.window_text(found)}.")


@window.command("start")
@click.argument("env")
@click.option("--hours", type=float, required=True, help="How long maintenance mode stays on.")
@click.option("--reason", required=True, help="Why (kept in the history, sent to the users).")
@click.option("--notify/--no-notify", default=True, help="Mail the environment's users.")
@wait_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def window_start(env, hours, reason, notify, wait, timeout, as_json):
    """Start now, for --hours: maintenance mode on ENV at once, and off by itself when
    the hours are over."""
    client = api()
    body = {"hours": hours, "reason": reason, "notify_users": notify}
    answer = client.post(f"environments/{env}/maintenance-windows/now", body)
    finish(
        client,
        answer["operation"],
        wait=wait,
        timeout=timeout,
        as_json=as_json,
        result=lambda op: {**answer, "operation": op},
    )


@window.command("cancel")
@click.argument("window_id", type=int)
@reason_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def window_cancel(window_id, reason, as_json):
    """Cancel a window that has not started, saying why."""
    found = api().post(f"maintenance-windows/{window_id}/cancel", {"reason": reason})
    output.answer(found, as_json, f"Window {window_id}: {safe(found['state_label'])}.")


@window.command("end")
@click.argument("window_id", type=int)
@wait_option
@timeout_option
@json_option
@idempotency_key_option
@talks_to_the_portal
def window_end(window_id, wait, timeout, as_json):
    """End an active window now: maintenance mode is turned off."""
    client = api()
    answer = client.post(f"maintenance-windows/{window_id}/end", {})
    if answer["operation"] is None:
        state = safe(answer["maintenance_window"]["state_label"])
        output.answer(answer, as_json, f"Window {window_id}: {state}.")
        sys.exit(exits.OK)
    finish(
        client,
        answer["operation"],
        wait=wait,
        timeout=timeout,
        as_json=as_json,
        result=lambda op: {**answer, "operation": op},
    )


@cli.command()
@click.argument("env", required=False)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this day.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="To this day, included.")
@click.option("--kind", help="One kind of operation, e.g. restart_service.")
@click.option("--type", "type_", help="all (default), maintain, access, roles or windows.")
@click.option("--outcome", help="e.g. succeeded, failed.")
@click.option("--user", help="Part of the requester's user name.")
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="CSV with a header row: the history page's export, times in this machine's zone.",
)
@click.option("--bom", is_flag=True, help="With --csv: start with a UTF-8 BOM, for Excel.")
@json_option
@talks_to_the_portal
def history(env, since, until, kind, type_, outcome, user, as_csv, bom, as_json):
    """The history of ENV, or of every environment you may see: every page, newest
    first, printed as it arrives."""
    path = f"environments/{env}/history" if env else "history"
    filters = {
        "since": since and since.date().isoformat(),
        "until": until and until.date().isoformat(),
        "kind": kind,
        "type": type_,
        "outcome": outcome,
        "user": user,
    }
    if bom and not as_csv:
        raise click.UsageError("--bom goes with --csv.")
    if as_csv:
        sys.stdout.flush()
        tz = output.local_zone_name()
        api().download(f"{path}.csv", sys.stdout.buffer, **filters, tz=tz, bom=bom or None)
        return
    writer = output.HistoryWriter("json" if as_json else "text")
    try:
        for row in api().pages(path, **filters, limit=1000):
            writer.write(row)
    finally:
        writer.close()


def main():
    try:
        code = cli.main(standalone_mode=False)
    except click.Abort:
        # Ctrl-C (or the end of the input) at a prompt: nothing was sent.
        output.err.print("Interrupted.")
        code = exits.INTERRUPTED
    except click.ClickException as exc:
        exc.show()  # a usage error: exit 2
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else exits.OK)
