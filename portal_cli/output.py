"""What the command line prints: tables and lines for people on stdout, progress and
errors on stderr, and JSON for scripts with --json.

Every value the portal sends may have been written by someone else (a reason, a token
or rule name, a driver's error), so each one is printed through `safe`: no escape
sequence or control character reaches the terminal (none recolours it, moves the cursor
or fakes a line of output), and no "[bold]" in it is read as rich markup."""

import json
import os
import re
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

LOG_TAIL_LINES = 10

_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI: colours, cursor moves, erasing
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS…: titles, links
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"  # the others ("ESC c" resets the terminal)
)
#: C0 but tab and newline, DEL, and C1 (whose 0x9b alone starts a sequence).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value, *, markup=True, multiline=False):
    """``value`` as text that may be printed: without escape sequences and control
    characters; tabs and line breaks kept with ``multiline`` (a lone CR, which would
    move back over what is shown, becomes a newline), else turned into spaces, so that
    a value cannot fake a line of its own; escaped for rich markup with ``markup``, to
    be put into a line that is printed as markup."""
    text = "" if value is None else str(value)
    text = _ESCAPE_SEQUENCES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not multiline:
        text = text.replace("\n", " ").replace("\t", " ")
    text = _CONTROL_CHARACTERS.sub("", text)
    return escape(text) if markup else text


def print_json(data):
    # json.dumps writes every control character as \u escape: nothing to strip.
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def answer(data, as_json, line):
    """The API's answer for scripts (--json), or one line for people (markup, its
    values through `safe`)."""
    if as_json:
        print_json(data)
    else:
        out.print(line)


def local_time(value):
    """An API time in this machine's time zone, labelled: "2026-12-24 23:00:00 CET".
    Every time the command line prints goes through here."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def local_zone_name():
    """This machine's time zone as an IANA name (TZ, else what /etc/localtime links to),
    for the portal to write CSV times in; "UTC" when it has none (a POSIX TZ rule)."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if not name:
        target = os.path.realpath("/etc/localtime")
        name = target.partition("/zoneinfo/")[2]
    try:
        return str(ZoneInfo(name))
    except (ValueError, ZoneInfoNotFoundError):
        return "UTC"


def expiry(value):
    """When a token expires, and how soon: "2026-12-24 23:00 CET (in 89 days)"."""
    days = (datetime.fromisoformat(value) - datetime.now(UTC)).days
    left = "in less than a day" if days < 1 else f"in {days} day{'s' * (days != 1)}"
    return f"{local_time(value)} ({left})"


# --- Who is signed in ---------------------------------------------------------------


def signed_in(url, me, saved=None):
    """`portal login` and `portal whoami`: the user, and the token's scope and expiry."""
    user, token = me["user"], me["token"]
    name = f" ({safe(user['full_name'])})" if user["full_name"] else ""
    if user.get("service_account"):  # a portal from before service accounts sends none
        name += " (service account)"
    out.print(f"Signed in to {safe(url)} as {safe(user['username'])}{name}.")
    out.print(
        f"Token: {safe(token['name'])} ({safe(token['prefix'])}…), "
        f"scope {safe(token['scope_label'])}, expires {expiry(token['expires_at'])}."
    )
    if saved:
        out.print(f"Saved in {safe(saved)}.")


# --- Environments -------------------------------------------------------------------

#: The command that starts each of the API's actions, for ``portal status`` to show.
COMMANDS = {
    "restart_service": "portal restart {slug} {services} --reason …",
    "enable_maintenance": "portal maintenance {slug} on --reason …",
    "disable_maintenance": "portal maintenance {slug} off --reason …",
    "resume": "portal resume {slug} --reason …",
    "rollback": "portal rollback {slug} --reason …",
    "abort": "portal abort {slug} --reason …",
    "enable_access": "portal access rule {slug} ADDRESS --reason …",
    "request_access": "portal access db {slug} [--read-write] --reason …",
}
RECOVERY = {
    "resume": "run the failed operation again",
    "rollback": "undo it",
    "abort": "return to the status before it, acting on nothing",
}


def command_for(action, slug, services=("aos", "dixf", "mr")):
    template = COMMANDS.get(action)
    if template is None:  # an action newer than this command line
        return f"{action} (not in this version of portal)"
    return template.format(slug=slug, services="|".join(services))


def windows_table(windows):
    table = Table("Id", "Starts", "Ends", "State", "Scheduled by", "Reason")
    for window in windows:
        table.add_row(
            str(window["id"]),
            local_time(window["starts_at"]),
            local_time(window["ends_at"]),
            safe(window["state_label"]),
            safe(window["scheduled_by"]),
            safe(window["reason"]),
        )
    out.print(table)


def window_text(window):
    return (
        f"{safe(window['environment'])} in maintenance mode from "
        f"{local_time(window['starts_at'])} to {local_time(window['ends_at'])}, "
        f"{safe(window['state_label'])} ({safe(window['reason'])})"
    )


def environments_table(environments):
    table = Table("Name", "Project", "Tier", "Status", "Maintenance mode")
    # What the other commands take: shown whole, folded at worst, never cut short.
    table.add_column("Environment", no_wrap=True, overflow="fold")
    for env in environments:
        table.add_row(
            safe(env["name"]),
            safe(env["project_name"]),
            str(env["tier"]),
            safe(env["status_label"]),
            "on" if env["maintenance_mode"] else "off",
            safe(env["slug"]),
        )
    out.print(table)


def environment_details(env):
    """`portal status`. Grants are lines, not table cells: an address or a database
    user name is printed whole on its line, however narrow the terminal or wherever
    the output goes, so that it can be copied."""
    slug = safe(env["slug"])
    out.print(
        f"[bold]{safe(env['name'])}[/] ({slug}), {safe(env['project_name'])}: "
        f"{safe(env['status_label'])}"
    )
    mode = "on" if env["maintenance_mode"] else "off"
    out.print(f"Maintenance mode: {mode}. {safe(env['who_may_sign_in'])}")
    if env.get("maintenance_window"):
        window = env["maintenance_window"]
        out.print(
            f"Maintenance window: {local_time(window['starts_at'])} to "
            f"{local_time(window['ends_at'])} (portal window list {slug})"
        )
    if env["maintenance_users"]:
        users = ", ".join(
            f"{safe(u['username'])} ({safe(u['role_label'])})" for u in env["maintenance_users"]
        )
        out.print(f"May sign in during maintenance: {users}")
    for key, label in (("running_operation", "Running"), ("failed_operation", "Failed")):
        if env[key]:
            op = env[key]
            out.print(
                f"{label}: {safe(op['activity'])} ({safe(op['outcome'])}, "
                f"portal operation {safe(op['activity_id'])})"
            )
    services = Table("Service", "State", "Last restarted")
    for service in env["services"]:
        services.add_row(
            safe(service["code"]), safe(service["state"]), local_time(service["last_restarted_at"])
        )
    out.print(services)
    if env["firewall_rules"]:
        out.print("Firewall rules (portal access remove RULE_ID):")
        for rule in env["firewall_rules"]:
            out.print(
                f"  {rule['id']}  {safe(rule['cidr'])}  {safe(rule['name'])}, "
                f"by {safe(rule['requested_by'])} until {local_time(rule['expires_at'])}, "
                f"{safe(rule['state'])}"
            )
    if env["database_accounts"]:
        out.print("Database accounts (portal access revoke ACCOUNT_ID):")
        for account in env["database_accounts"]:
            out.print(
                f"  {account['id']}  {safe(account['username'])}  {safe(account['level'])}, "
                f"by {safe(account['requested_by'])} until {local_time(account['expires_at'])}, "
                f"{safe(account['state'])}"
            )
    services = [safe(service["kind"]) for service in env["services"]]
    commands = [command_for(safe(a), slug, services) for a in env["available_actions"]]
    if commands:
        out.print("You may run now:")
        for command in commands:
            out.print(f"  {command}")
    else:
        out.print("You may run now: nothing (with this token, in this status).")


# --- Operations ---------------------------------------------------------------------


def operation_started(op):
    err.print(
        f"{safe(op['activity'])} on {safe(op['environment'])}: activity {safe(op['activity_id'])}"
    )


def follow_hint(op):
    return f"Follow it with: portal operation {safe(op['activity_id'])} --wait"


def operation_going_on(op):
    """Started without --wait."""
    out.print(
        f"Started: {safe(op['activity'])}, {safe(op['environment_status_label'])}. "
        + follow_hint(op)
    )


def still_running(op, timeout):
    """--timeout passed."""
    out.print(
        f"Still {safe(op['environment_status_label'])} after {timeout:g} s; it goes on. "
        + follow_hint(op)
    )


def stopped_waiting(op):
    """Ctrl-C during --wait."""
    err.print("Stopped waiting: the operation goes on. " + follow_hint(op))


def operation_result(op):
    """How an operation ended (or stands), with the error and the log's last lines, and
    after a failure the commands that recover the environment."""
    duration = op["duration_seconds"]
    took = f" in {duration:.0f} s" if duration is not None else ""
    out.print(
        f"{safe(op['outcome_label'])}{took}: {safe(op['activity'])}; "
        f"{safe(op['environment'])} is {safe(op['environment_status_label'])}."
    )
    if op["error"]:
        out.print(f"[red]Error:[/] {safe(op['error'], multiline=True)}")
    # The lines with their times in this machine's zone (or the text of an operation
    # from before lines were kept).
    lines = op.get("log_lines") or []
    log = "".join(f"{local_time(line['at'])} {line['text']}\n" for line in lines)
    log = safe(log or op.get("log", ""), multiline=True).strip().splitlines()
    if op["outcome"] == "failed" and log:
        out.print(f"Driver log (last {min(len(log), LOG_TAIL_LINES)} lines):")
        for line in log[-LOG_TAIL_LINES:]:
            out.print(f"  {line}")
    if op.get("environment_status") == "failed":
        slug = safe(op["environment"])
        out.print("Next, one of:")
        width = max(len(command_for(action, slug)) for action in RECOVERY)
        for action, what in RECOVERY.items():
            out.print(f"  {command_for(action, slug):<{width}}  {what}")


def firewall_rule(rule):
    out.print(
        f"Firewall rule {rule['id']} ({safe(rule['name'])}, {safe(rule['cidr'])}) "
        f"until {local_time(rule['expires_at'])}."
    )


def credentials(account, env):
    """A new database account's credentials: printed this once."""
    out.print(
        f"Database account ({safe(account['level'])}) on {safe(env)} "
        f"until {local_time(account['expires_at'])}:"
    )
    for label in ("host", "port", "database", "username", "password"):
        value = account[label] if account[label] is not None else "(ask the portal's admins)"
        if label == "password" and account.get("password_note"):
            value = "(not shown again)"  # a replay of an Idempotency-Key's first answer
        out.print(f"  {label:<9} {safe(value)}")
    out.print(safe(account.get("password_note") or "The password is shown this once."))


# --- What went wrong ----------------------------------------------------------------

#: The command line's name for each field the API may name in a refusal.
FIELD_OPTIONS = {
    "reason": "--reason",
    "starts_at": "--start",
    "ends_at": "--end",
    "notify_users": "--notify",
    "hours": "--hours",
    "name": "--name",
    "address": "ADDRESS",
    "level": "--read-write",
    "service": "SERVICE",
    "since": "--since",
    "until": "--until",
    "kind": "--kind",
    "type": "--type",
    "outcome": "--outcome",
    "user": "--user",
    "project": "--project",
    "status": "--status",
    "state": "--state",
}
#: ninja's location prefixes ("body: …", "query.limit: …"), should a detail carry one.
_LOCATION = re.compile(r"(^|; )(?:body|query|path|header|cookie|form|file)(?:\.[\w.]+)?: ")


def problem_text(problem):
    """A problem's words for people: its errors one by one, each naming the option it
    is about rather than the API's path to a field."""
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        parts = []
        for error in errors:
            field = str(error.get("field") or "").rsplit(".", 1)[-1]
            option = FIELD_OPTIONS.get(field, field)
            message = str(error.get("message") or "").rstrip(".")
            parts.append(f"{message} ({option})." if option else f"{message}.")
        return " ".join(parts)
    return _LOCATION.sub(r"\1", str(problem.get("detail") or ""))


def api_error(error):
    """A problem the portal answered with: refused (4xx), or failed on its side."""
    if error.status == 401:
        text = (
            "The token was not accepted: it may have expired, been revoked, or its user "
            "deactivated. Make a new one on the portal's API tokens page, then run "
            "`portal login --token-stdin`."
        )
    else:
        text = problem_text(error.problem)
    what = "Refused" if error.refused else "The portal failed"
    err.print(f"[red]{what} ({error.status} {safe(error.title)}):[/] {safe(text, multiline=True)}")
    request_id(error)


def not_a_portal(error):
    err.print(f"[red]Could not understand the portal:[/] {safe(error)}")
    err.print("Is PORTAL_URL (or the URL given to `portal login`) the portal's own address?")
    request_id(error)


def unreachable(error, url):
    why = safe(error) or type(error).__name__  # a timeout's message may be empty
    err.print(f"[red]Could not reach the portal at {safe(url)}:[/] {why}")


def request_id(error):
    if getattr(error, "request_id", None):
        err.print(f"Request id: {safe(error.request_id)}")


def misused(error):
    err.print(f"[red]{safe(error)}[/]")


# --- History ------------------------------------------------------------------------


def log_line(line):
    """A driver log line as --wait sees it come, at this machine's time."""
    err.print(f"    {local_time(line['at'])} {safe(line['text'], markup=False)}", markup=False)


def history_line(op):
    who = op["requested_by"] + (f" via {op['via']}" if op["via"] else "")
    line = (
        f"{local_time(op['started_at'])}  {op['environment']}  {op['activity']}  "
        f"{op['outcome_label']}  {who}"
    )
    return safe(line, markup=False)


class HistoryWriter:
    """Writes history rows as they come, as lines or as a JSON array."""

    def __init__(self, form):
        self.form = form
        self.count = 0

    def write(self, op):
        if self.form == "json":
            sys.stdout.write(("[\n" if not self.count else ",\n") + json.dumps(op))
        else:
            sys.stdout.write(history_line(op) + "\n")
        self.count += 1

    def close(self):
        if self.form == "json":
            sys.stdout.write("\n]\n" if self.count else "[]\n")
        sys.stdout.flush()
