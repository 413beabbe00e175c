"""What the command line prints: tables and lines for people on stdout, progress on
stderr, and JSON for scripts with --json."""

import csv
import json
import sys
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

HISTORY_COLUMNS = [
    "activity_id",
    "environment",
    "activity",
    "outcome",
    "status_before",
    "status_after",
    "started_at",
    "finished_at",
    "duration_seconds",
    "requested_by",
    "via",
    "reason",
    "error",
]
LOG_TAIL_LINES = 10


def print_json(data):
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def answer(data, as_json, line):
    """The API's answer for scripts (--json), or one line for people."""
    if as_json:
        print_json(data)
    else:
        out.print(line, markup=False)


def when(value):
    """An API time for people: "2026-12-01 23:51:26"."""
    return value.replace("T", " ")[:19] if value else ""


def local_time(value):
    """An API time in this machine's time zone: "2026-12-24 23:00 CET"."""
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def window_text(window):
    return (
        f"{window['environment']} in maintenance mode from {local_time(window['starts_at'])} "
        f"to {local_time(window['ends_at'])}, {window['state_label']} ({window['reason']})"
    )


def windows_table(windows):
    table = Table("Id", "Starts", "Ends", "State", "Scheduled by", "Reason")
    for window in windows:
        table.add_row(
            str(window["id"]),
            local_time(window["starts_at"]),
            local_time(window["ends_at"]),
            window["state_label"],
            escape(window["scheduled_by"]),
            escape(window["reason"]),
        )
    out.print(table)


def environments_table(environments):
    table = Table("Name", "Project", "Tier", "Status", "Maintenance mode")
    table.add_column("Environment", no_wrap=True)  # what the other commands take
    for env in environments:
        table.add_row(
            env["name"],
            env["project_name"],
            str(env["tier"]),
            env["status_label"],
            "on" if env["maintenance_mode"] else "off",
            env["slug"],
        )
    out.print(table)


def environment_details(env):
    out.print(
        f"[bold]{env['name']}[/] ({env['slug']}), {env['project_name']}: {env['status_label']}"
    )
    out.print(
        f"Maintenance mode: {'on' if env['maintenance_mode'] else 'off'}. {env['who_may_sign_in']}"
    )
    if env.get("maintenance_window"):
        window = env["maintenance_window"]
        out.print(
            f"Maintenance window: {local_time(window['starts_at'])} to "
            f"{local_time(window['ends_at'])} (portal window list {env['slug']})"
        )
    if env["maintenance_users"]:
        users = ", ".join(f"{u['username']} ({u['role_label']})" for u in env["maintenance_users"])
        out.print(f"May sign in during maintenance: {users}")
    for key, label in (("running_operation", "Running"), ("failed_operation", "Failed")):
        if env[key]:
            op = env[key]
            out.print(f"{label}: {op['activity']} ({op['outcome']}, {op['activity_id']})")
    services = Table("Service", "State", "Last restarted")
    for service in env["services"]:
        services.add_row(service["code"], service["state"], when(service["last_restarted_at"]))
    out.print(services)
    if env["firewall_rules"]:
        rules = Table("Rule id", "Name", "Address", "Requested by", "Expires", "State")
        for rule in env["firewall_rules"]:
            rules.add_row(
                str(rule["id"]),
                rule["name"],
                rule["cidr"],
                rule["requested_by"],
                when(rule["expires_at"]),
                rule["state"],
            )
        out.print(rules)
    if env["database_accounts"]:
        accounts = Table("Account id", "User name", "Access", "Requested by", "Expires", "State")
        for account in env["database_accounts"]:
            accounts.add_row(
                str(account["id"]),
                account["username"],
                account["level"],
                account["requested_by"],
                when(account["expires_at"]),
                account["state"],
            )
        out.print(accounts)
    actions = ", ".join(env["available_actions"]) or "none (with this token, now)"
    out.print(f"Available actions: {actions}")


def operation_started(op):
    err.print(f"{op['activity']} on {op['environment']}: activity {op['activity_id']}")


def operation_result(op):
    """How an operation ended (or stands), with the error and the log's last lines."""
    duration = op["duration_seconds"]
    took = f" in {duration:.0f} s" if duration is not None else ""
    status = op["environment_status_label"]
    out.print(f"{op['outcome_label']}{took}: {op['activity']}; {op['environment']} is {status}.")
    if op["error"]:
        out.print(f"[red]Error:[/] {op['error']}")
    log = op.get("log", "").strip().splitlines()
    if op["outcome"] == "failed" and log:
        out.print(f"Driver log (last {min(len(log), LOG_TAIL_LINES)} lines):")
        for line in log[-LOG_TAIL_LINES:]:
            out.print(f"  {line}", markup=False)


def log_line(line):
    """A driver log line as --wait sees it come, at this machine's time."""
    at = datetime.fromisoformat(line["at"]).astimezone().strftime("%H:%M:%S")
    err.print(f"    {at} {line['text']}", markup=False)


def refusal(error):
    err.print(f"[red]Refused ({error.status} {error.title}):[/] {error.detail}")


def history_line(op):
    who = op["requested_by"] + (f" via {op['via']}" if op["via"] else "")
    return (
        f"{when(op['started_at'])}  {op['environment']}  {op['activity']}  "
        f"{op['outcome_label']}  {who}"
    )


class HistoryWriter:
    """Writes history rows as they come, in one of three forms."""

    def __init__(self, form):
        self.form = form
        self.count = 0
        if form == "csv":
            self.csv = csv.writer(sys.stdout)
            self.csv.writerow(HISTORY_COLUMNS)

    def write(self, op):
        if self.form == "csv":
            self.csv.writerow(["" if op[c] is None else op[c] for c in HISTORY_COLUMNS])
        elif self.form == "json":
            sys.stdout.write(("[\n" if not self.count else ",\n") + json.dumps(op))
        else:
            sys.stdout.write(history_line(op) + "\n")
        self.count += 1

    def close(self):
        if self.form == "json":
            sys.stdout.write("\n]\n" if self.count else "[]\n")
        sys.stdout.flush()
