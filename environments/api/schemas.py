"""What the API answers, and how a model becomes that.

The schemas type the answers and make the OpenAPI document; the functions below them
build the answers from models, in one place, so that every endpoint shows an
environment, an operation or a grant the same way.
"""

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from django.conf import settings
from django.urls import reverse
from ninja import Field, Schema
from pydantic import AwareDatetime, field_validator

from environments.drivers.database import server_address
from environments.forms import REASON_MAX_LENGTH
from environments.models import DatabaseAccount, Environment, OperationKind, ServiceKind, Status

# --- Requests -----------------------------------------------------------------------


def choice(values):
    """A filter's type: one of ``values``, or empty (``?state=``) for no filter, as on
    the pages. A value of none of them is refused with the list."""
    return Literal[(*values, "")]


#: The actions POST /environments/{slug}/operations starts.
OPERATION_ACTIONS = [
    OperationKind.RESTART_SERVICE,
    OperationKind.ENABLE_MAINTENANCE,
    OperationKind.DISABLE_MAINTENANCE,
    OperationKind.RESUME,
    OperationKind.ROLLBACK,
    OperationKind.ABORT,
]


#: Python's whitespace (what the form's strip() removes), spelt out: a pattern's `\s`
#: means other characters in JavaScript, Rust and Python.
BLANK = r"\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def reason_field(description="Kept in the environment history."):
    """A required reason. The page's form checks it (with the page's messages); the
    document states the same rule: some text that is not all blank, without NUL."""
    return Field(
        ...,
        description=description,
        examples=["Patch Tuesday: apply the hotfix"],
        json_schema_extra={
            "minLength": 1,
            "maxLength": REASON_MAX_LENGTH,
            "pattern": rf"^[^\u0000]*[^\u0000{BLANK}][^\u0000]*$",
        },
    )


def hours_field():
    """How long access lasts; the page's form checks the bounds, with its messages."""
    return Field(
        None,
        description="Default: ACCESS_DEFAULT_HOURS; at most ACCESS_MAX_HOURS",
        json_schema_extra={"minimum": 0.1, "maximum": settings.ACCESS_MAX_HOURS},
    )


#: An IP address or a CIDR range; the form says which ones it refuses (loopback,
#: private, everything) and why.
ADDRESS_PATTERN = r"^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$"


class OperationIn(Schema):
    # Checked by the view, after the environment's access check, so that an outsider
    # learns nothing from a bad request either (the pages do the same).
    action: str = Field(
        ...,
        description="One of: " + ", ".join(OPERATION_ACTIONS),
        json_schema_extra={"enum": [str(action) for action in OPERATION_ACTIONS]},
    )
    service: str | None = Field(
        None,
        description="restart_service only: aos, dixf or mr",
        examples=["aos"],
        json_schema_extra={"enum": [*ServiceKind.values, None]},
    )
    reason: str = reason_field()


class FirewallRuleIn(Schema):
    name: str = Field(
        ...,
        examples=["office"],
        json_schema_extra={"maxLength": 64, "pattern": r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"},
    )
    address: str = Field(
        ...,
        description="An IP address or CIDR range",
        examples=["203.0.113.7"],
        json_schema_extra={"format": "ip-address-or-cidr", "pattern": ADDRESS_PATTERN},
    )
    reason: str = reason_field()
    hours: float | None = hours_field()


class DatabaseAccountIn(Schema):
    level: str = Field(..., json_schema_extra={"enum": ["read", "read_write"]})
    reason: str = reason_field()
    hours: float | None = hours_field()


class WindowIn(Schema):
    starts_at: AwareDatetime = Field(..., examples=["2026-12-24T22:00:00Z"])
    ends_at: AwareDatetime = Field(..., examples=["2026-12-24T23:00:00Z"])
    reason: str = reason_field()
    notify_users: bool = Field(True, description="Mail the environment's users about it.")

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def iso_text(cls, value):
        # Not a number of seconds: a time a person can read back, with its offset.
        if not isinstance(value, str):
            raise ValueError("Give the time as ISO 8601 text with its offset.")
        return value


class WindowCancelIn(Schema):
    reason: str = reason_field("Why: kept in the environment history.")


# --- Answers ------------------------------------------------------------------------


class Links(Schema):
    self: str
    history: str | None = None


class NextWindowOut(Schema):
    starts_at: datetime
    ends_at: datetime
    url: str = Field(..., description="The environment's open windows, with their ids.")


class EnvironmentOut(Schema):
    slug: str
    name: str
    project: str
    project_name: str
    tier: int
    type: str
    subscription: str
    deployment: str
    url: str
    status: str
    status_label: str
    maintenance_mode: bool
    maintenance_window: NextWindowOut | None = Field(
        ..., description="The next or active scheduled maintenance window."
    )
    revision: int
    links: Links


class ServiceOut(Schema):
    kind: str
    code: str
    name: str
    state: str
    last_restarted_at: datetime | None


class SignInUser(Schema):
    username: str
    role: str
    role_label: str


class OperationBrief(Schema):
    activity_id: UUID
    activity: str
    outcome: str
    started_at: datetime
    url: str


class GrantOut(Schema):
    id: int
    environment: str
    requested_by: str
    reason: str
    created_at: datetime
    expires_at: datetime
    active: bool
    state: str
    ended_at: datetime | None
    end_reason: str


class FirewallRuleOut(GrantOut):
    name: str
    cidr: str


class DatabaseAccountOut(GrantOut):
    username: str
    level: str
    host: str | None = Field(..., description="None when the portal does not know it.")
    port: int
    database: str


class NewDatabaseAccountOut(DatabaseAccountOut):
    password: str = Field(..., description="Shown in this answer only, never again.")


class EnvironmentDetailOut(EnvironmentOut):
    services: list[ServiceOut]
    available_actions: list[str] = Field(
        ..., description="What this token may start now (the Maintain menu)."
    )
    running_operation: OperationBrief | None
    failed_operation: OperationBrief | None
    who_may_sign_in: str
    maintenance_users: list[SignInUser] = Field(
        ..., description="Who may sign in while maintenance mode is on."
    )
    firewall_rules: list[FirewallRuleOut]
    database_accounts: list[DatabaseAccountOut]


class HistoryEntryOut(Schema):
    activity_id: UUID
    url: str
    environment: str
    environment_name: str
    kind: str
    action: str
    activity: str
    type: str
    service: str | None
    target: str
    requested_by: str
    via: str
    reason: str
    outcome: str
    outcome_label: str
    status_before: str
    status_after: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    error: str


class LogLineOut(Schema):
    at: datetime = Field(..., description="When the driver wrote it (UTC)")
    text: str


class OperationOut(HistoryEntryOut):
    active: bool
    deadline: datetime
    status_before_label: str
    status_after_label: str
    environment_status: str
    environment_status_label: str
    log: str = Field(..., description="The driver log as one text, a UTC time on each line")
    log_lines: list[LogLineOut] = Field(
        ...,
        description="The driver log's lines as they were written, oldest first; they grow "
        "while the operation is active. Empty for operations from before lines were kept.",
    )


class HistoryPageOut(Schema):
    items: list[HistoryEntryOut]
    next: str | None = Field(..., description="The next (older) page, or null on the last.")


class FirewallRuleStartedOut(Schema):
    operation: OperationOut | None
    firewall_rule: FirewallRuleOut


class DatabaseAccountStartedOut(Schema):
    operation: OperationOut
    database_account: NewDatabaseAccountOut


class DatabaseAccountEndedOut(Schema):
    operation: OperationOut | None
    database_account: DatabaseAccountOut


class WindowOut(Schema):
    id: int
    url: str
    environment: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    notify_users: bool
    scheduled_by: str
    state: str
    state_label: str
    started_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    note: str = Field(..., description="Why it was missed, or who ended or cancelled it.")


class WindowEndedOut(Schema):
    maintenance_window: WindowOut
    operation: OperationOut | None = Field(
        ..., description="Disable Maintenance mode, when the window's end started it."
    )


class ProblemOut(Schema):
    """Every failure (RFC 9457, sent as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str


def answers(status, schema, *problems):
    """The responses an endpoint documents: its answer, and the problems it may give
    besides 401 (no valid token) and 429 (too many requests)."""
    return {status: schema, frozenset({401, 429, *problems}): ProblemOut}


# --- The document ---------------------------------------------------------------------

PROBLEM = {"$ref": "#/components/schemas/ProblemOut"}
#: What any request with a body may get besides its own answers.
BODY_PROBLEMS = {413: "Content Too Large", 415: "Unsupported Media Type"}

#: Where an answer leads (OpenAPI links, which clients and Schemathesis follow):
#: (operation, status) -> [(link name, operation, {parameter: where in the answer})].
_ENVIRONMENT = {"slug": "$response.body#/slug"}
_OPERATION = {"activity_id": "$response.body#/activity_id"}
_WINDOW = {"window_id": "$response.body#/id"}
LINKS = {
    ("GET /environments", 200): [
        ("The first environment", "GET /environments/{slug}", {"slug": "$response.body#/0/slug"}),
    ],
    ("GET /environments/{slug}", 200): [
        ("Start an operation", "POST /environments/{slug}/operations", _ENVIRONMENT),
        ("History", "GET /environments/{slug}/history", _ENVIRONMENT),
        ("Maintenance windows", "GET /environments/{slug}/maintenance-windows", _ENVIRONMENT),
        ("Schedule a window", "POST /environments/{slug}/maintenance-windows", _ENVIRONMENT),
        ("Enable access", "POST /environments/{slug}/firewall-rules", _ENVIRONMENT),
        ("Request access", "POST /environments/{slug}/database-accounts", _ENVIRONMENT),
    ],
    ("POST /environments/{slug}/operations", 202): [
        ("The operation", "GET /operations/{activity_id}", _OPERATION),
        ("Stop it", "POST /operations/{activity_id}/stop", _OPERATION),
    ],
    ("POST /environments/{slug}/firewall-rules", 202): [
        (
            "Remove it",
            "DELETE /firewall-rules/{rule_id}",
            {"rule_id": "$response.body#/firewall_rule/id"},
        ),
    ],
    ("POST /environments/{slug}/database-accounts", 202): [
        (
            "Revoke it",
            "DELETE /database-accounts/{account_id}",
            {"account_id": "$response.body#/database_account/id"},
        ),
    ],
    ("POST /environments/{slug}/maintenance-windows", 201): [
        ("The window", "GET /maintenance-windows/{window_id}", _WINDOW),
        ("Cancel it", "POST /maintenance-windows/{window_id}/cancel", _WINDOW),
        ("End it", "POST /maintenance-windows/{window_id}/end", _WINDOW),
    ],
}


def finish_document(document, prefix, problem_type):
    """What ninja cannot say itself: failures are sent as ``problem_type``; a request
    with a body may get 413 and 415 too; and the links from an answer to what it made."""
    operations = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            operations[f"{method.upper()} {path.removeprefix(prefix)}"] = operation
            responses = operation["responses"]
            if "requestBody" in operation:
                for status, description in BODY_PROBLEMS.items():
                    responses[status] = {"description": description}
            for answer in responses.values():
                content = answer.get("content", {})
                json_schema = content.get("application/json", {}).get("schema")
                if "content" not in answer or json_schema == PROBLEM:
                    answer["content"] = {problem_type: {"schema": PROBLEM}}
    for (source, status), links in LINKS.items():
        answer = operations[source]["responses"][status]
        answer["links"] = {
            name: {"operationId": operations[target]["operationId"], "parameters": parameters}
            for name, target, parameters in links
        }
    return document


# --- Models into answers ------------------------------------------------------------


def api_url(name, *args):
    return reverse(f"api-1:{name}", args=args)


def environment_out(environment):
    return {
        "slug": environment.slug,
        "name": environment.name,
        "project": environment.project.slug,
        "project_name": environment.project.name,
        "tier": environment.tier,
        "type": environment.type,
        "subscription": environment.subscription,
        "deployment": environment.deployment,
        "url": environment.url,
        "status": environment.status,
        "status_label": environment.get_status_display(),
        "maintenance_mode": environment.maintenance_mode,
        "maintenance_window": next_window_out(environment),
        "revision": environment.revision,
        "links": {
            "self": api_url("environment", environment.slug),
            "history": api_url("environment_history", environment.slug),
        },
    }


def next_window_out(environment):
    """The next or active window, as the environment's row keeps it (no query)."""
    if environment.window_starts_at is None:
        return None
    return {
        "starts_at": environment.window_starts_at.astimezone(UTC),
        "ends_at": environment.window_ends_at.astimezone(UTC),
        "url": api_url("environment_windows", environment.slug),
    }


def environment_detail_out(environment, available_actions):
    running = environment.running_operation()
    failed = environment.failed_operation()
    if environment.maintenance_mode:
        who = "Only System administrators and Maintenance mode users (maintenance mode is on)."
    else:
        who = "Everyone with a role on the environment."
    return {
        **environment_out(environment),
        "services": [
            {
                "kind": service.kind,
                "code": service.code,
                "name": service.get_kind_display(),
                "state": service.state,
                "last_restarted_at": service.last_restarted_at,
            }
            for service in environment.services.all()
        ],
        "available_actions": available_actions,
        "running_operation": running and operation_brief(running),
        "failed_operation": failed and operation_brief(failed),
        "who_may_sign_in": who,
        "maintenance_users": [
            {
                "username": role.user.get_username(),
                "role": role.role,
                "role_label": role.get_role_display(),
            }
            for role in environment.maintenance_sign_in_roles()
        ],
        "firewall_rules": [rule_out(rule) for rule in environment.active_firewall_rules()],
        "database_accounts": [
            account_out(account) for account in environment.active_database_accounts()
        ],
    }


def operation_brief(operation):
    return {
        "activity_id": operation.activity_id,
        "activity": operation.activity,
        "outcome": operation.outcome,
        "started_at": operation.started_at,
        "url": api_url("operation", operation.activity_id),
    }


def history_entry_out(operation):
    duration = operation.duration
    return {
        "activity_id": operation.activity_id,
        "url": api_url("operation", operation.activity_id),
        "environment": operation.environment.slug,
        "environment_name": operation.environment.name,
        "kind": operation.kind,
        "action": operation.action,
        "activity": operation.activity,
        "type": operation.type,
        "service": operation.service.kind if operation.service_id else None,
        "target": operation.target,
        "requested_by": operation.requester_name,
        "via": operation.via,
        "reason": operation.reason,
        "outcome": operation.outcome,
        "outcome_label": operation.get_outcome_display(),
        "status_before": operation.status_before,
        "status_after": operation.status_after,
        "started_at": operation.started_at,
        "finished_at": operation.finished_at,
        "duration_seconds": duration.total_seconds() if duration is not None else None,
        "error": operation.error,
    }


def operation_out(operation):
    """An operation with its log and its environment's status now."""
    environment = Environment.objects.only("status").get(pk=operation.environment_id)
    lines = list(operation.log_lines.all())
    return {
        **history_entry_out(operation),
        "active": operation.is_active,
        "deadline": operation.deadline,
        "status_before_label": Status(operation.status_before).label,
        "status_after_label": (
            Status(operation.status_after).label if operation.status_after else ""
        ),
        "environment_status": environment.status,
        "environment_status_label": environment.get_status_display(),
        "log": "".join(line.as_text(UTC) for line in lines) if lines else operation.log,
        "log_lines": [{"at": line.at.astimezone(UTC), "text": line.text} for line in lines],
    }


def latest_operation(grant):
    """The newest operation of a grant (its apply or its removal), or None."""
    return grant.operations.select_related("environment", "service", "requested_by").first()


def _grant_out(grant):
    return {
        "id": grant.pk,
        "environment": grant.environment.slug,
        "requested_by": grant.requested_by.get_username(),
        "reason": grant.reason,
        "created_at": grant.created_at,
        "expires_at": grant.expires_at,
        "active": grant.is_active,
        "state": grant.state_text,
        "ended_at": grant.ended_at,
        "end_reason": grant.end_reason,
    }


def rule_out(rule):
    return {**_grant_out(rule), "name": rule.name, "cidr": rule.cidr}


def account_out(account: DatabaseAccount, password=None):
    address = server_address(account.environment)
    answer = {
        **_grant_out(account),
        "username": account.username,
        "level": account.level,
        "host": address["host"],
        "port": address["port"],
        "database": account.environment.database_name,
    }
    if password is not None:
        answer["password"] = password
    return answer


def window_out(window):
    return {
        "id": window.pk,
        "url": api_url("window", window.pk),
        "environment": window.environment.slug,
        # In UTC, as every other time of the API (a window just scheduled still holds
        # the offset it was given).
        "starts_at": window.starts_at.astimezone(UTC),
        "ends_at": window.ends_at.astimezone(UTC),
        "reason": window.reason,
        "notify_users": window.notify_users,
        "scheduled_by": window.scheduled_by.get_username(),
        "state": window.state,
        "state_label": window.get_state_display(),
        "started_at": window.started_at,
        "ended_at": window.ended_at,
        "ended_by": window.ended_by.get_username() if window.ended_by_id else None,
        "note": window.note,
    }
