"""The `portal` commands. Exit codes: 0 done, 1 the operation failed (or the portal could
not be reached), 2 refused by the portal (nothing was done), 3 still running at
--timeout."""

import functools
import sys
from datetime import datetime

import click
import httpx

from portal_cli import __version__, config, output
from portal_cli.client import Api, ApiError
from portal_cli.wait import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT, follow

DEFAULT_TIMEOUT = 600


def api():
    settings = config.load()
    return Api(settings.url, settings.token)


def talks_to_the_portal(command):
    """Turn what can go wrong on the way into a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except config.NotConfigured as exc:
            output.err.print(f"[red]{exc}[/]")
            sys.exit(EXIT_REFUSED)
        except ApiError as exc:
            if kwargs.get("as_json"):
                output.print_json(exc.problem)
            output.refusal(exc)
            sys.exit(EXIT_REFUSED if exc.refused else EXIT_FAILED)
        except httpx.HTTPError as exc:
            output.err.print(f"[red]Could not reach the portal:[/] {exc}")
            sys.exit(EXIT_FAILED)

    return wrapper


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


@cli.command()
@click.option("--url", prompt="Portal URL", help="e.g. https://portal.example.com")
@click.option("--token", prompt="API token", hide_input=True, help="From the API tokens page.")
@talks_to_the_portal
def login(url, token):
    """Check a token against the portal and keep both in the config file."""
    visible = Api(url, token).get("environments")
    path = config.save(url, token)
    output.out.print(f"Signed in to {url}: {len(visible)} environment(s) visible. Saved in {path}.")


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
    """An environment's status, services, access grants and available actions."""
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
    code = EXIT_OK
    if not as_json:
        output.operation_started(operation)
    if wait:
        operation, code = wait_for(client, operation, timeout=timeout, quiet=as_json)
    if as_json:
        output.print_json(result(operation) if result else operation)
    elif code == EXIT_TIMEOUT:
        output.out.print(
            f"Still {operation['environment_status_label']} after {timeout:g} s; it goes on. "
            f"Follow it with: portal operation {operation['activity_id']} --wait"
        )
    elif wait or not operation["active"]:
        output.operation_result(operation)
    else:
        output.out.print(
            f"Started: {operation['activity']}, {operation['environment_status_label']}. "
            f"Follow it with: portal operation {operation['activity_id']} --wait"
        )
    sys.exit(code)


def wait_for(client, operation, *, timeout, quiet=False):
    show_lines = not (quiet or click.get_current_context().meta.get(QUIET))
    shown_lines = 0
    with output.err.status(operation["environment_status_label"]) as spinner:

        def progress(op, changed):
            nonlocal shown_lines
            text = f"{op['environment_status_label']} ({op['outcome_label']})"
            spinner.update(f"{op['activity']}: {text}")
            # Lines are only ever added, oldest first: the ones past those shown are new.
            lines = op.get("log_lines", [])
            if show_lines:
                for line in lines[shown_lines:]:
                    output.log_line(line)
            shown_lines = len(lines)
            if changed and not quiet:
                output.err.print(f"  {op['environment_status_label']}")

        return follow(client, operation, timeout=timeout, progress=progress)


@cli.command()
@click.argument("env")
@click.argument("service", type=click.Choice(["aos", "dixf", "mr"], case_sensitive=False))
@reason_option
@wait_option
@timeout_option
@json_option
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
@talks_to_the_portal
def access_rule(env, address, reason, name, hours, wait, timeout, as_json):
    """Enable access: let ADDRESS (an IP address or CIDR range) reach ENV's database."""
    client = api()
    name = name or "cli " + address.replace("/", "-").replace(":", ".")
    body = {"name": name, "address": address, "reason": reason, "hours": hours}
    answer = client.post(f"environments/{env}/firewall-rules", body)
    if not as_json:
        rule = answer["firewall_rule"]
        until = output.when(rule["expires_at"])
        output.out.print(
            f"Firewall rule {rule['id']} ({rule['name']}, {rule['cidr']}) until {until}."
        )
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
@talks_to_the_portal
def access_db(env, read_write, reason, hours, no_wait, timeout, as_json):
    """Request access: a database account on ENV. Its password is printed once."""
    client = api()
    body = {"level": "read_write" if read_write else "read", "reason": reason, "hours": hours}
    answer = client.post(f"environments/{env}/database-accounts", body)
    operation, code = answer["operation"], EXIT_OK
    if not no_wait:
        operation, code = wait_for(client, operation, timeout=timeout, quiet=as_json)
    answer["operation"] = operation
    if as_json:
        output.print_json(answer)
    elif code == EXIT_OK:
        account = answer["database_account"]
        until = output.when(account["expires_at"])
        output.out.print(f"Database account ({account['level']}) on {env} until {until}:")
        for label in ("host", "port", "database", "username", "password"):
            value = account[label] if account[label] is not None else "(ask the portal's admins)"
            output.out.print(f"  {label:<9} {value}", markup=False)
        output.out.print("The password is shown this once.")
    elif code == EXIT_TIMEOUT:
        output.out.print("The account is still being created; its password is not shown.")
    else:
        output.operation_result(operation)
    sys.exit(code)


@access.command("remove")
@click.argument("rule_id", type=int)
@json_option
@talks_to_the_portal
def access_remove(rule_id, as_json):
    """Remove a firewall rule before it expires."""
    answer = api().delete(f"firewall-rules/{rule_id}")
    output.answer(answer, as_json, f"Firewall rule {rule_id}: {answer['firewall_rule']['state']}.")


@access.command("revoke")
@click.argument("account_id", type=int)
@json_option
@talks_to_the_portal
def access_revoke(account_id, as_json):
    """Revoke a database account before it expires."""
    answer = api().delete(f"database-accounts/{account_id}")
    state = answer["database_account"]["state"]
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


@window.command("cancel")
@click.argument("window_id", type=int)
@json_option
@talks_to_the_portal
def window_cancel(window_id, as_json):
    """Cancel a window that has not started."""
    found = api().post(f"maintenance-windows/{window_id}/cancel", {})
    output.answer(found, as_json, f"Window {window_id}: {found['state_label']}.")


@window.command("end")
@click.argument("window_id", type=int)
@wait_option
@timeout_option
@json_option
@talks_to_the_portal
def window_end(window_id, wait, timeout, as_json):
    """End an active window now: maintenance mode is turned off."""
    client = api()
    answer = client.post(f"maintenance-windows/{window_id}/end", {})
    if answer["operation"] is None:
        state = answer["maintenance_window"]["state_label"]
        output.answer(answer, as_json, f"Window {window_id}: {state}.")
        sys.exit(EXIT_OK)
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
@click.option("--type", "type_", help="all (default), maintain, access or roles.")
@click.option("--outcome", help="e.g. succeeded, failed.")
@click.option("--user", help="Part of the requester's user name.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@json_option
@talks_to_the_portal
def history(env, since, until, kind, type_, outcome, user, as_csv, as_json):
    """The history of ENV, or of every environment you may see: every page, newest
    first, printed as it arrives."""
    path = f"environments/{env}/history" if env else "history"
    writer = output.HistoryWriter("csv" if as_csv else "json" if as_json else "text")
    rows = api().pages(
        path,
        since=since and since.date().isoformat(),
        until=until and until.date().isoformat(),
        kind=kind,
        type=type_,
        outcome=outcome,
        user=user,
        limit=1000,
    )
    try:
        for row in rows:
            writer.write(row)
    finally:
        writer.close()


def main():
    cli()
