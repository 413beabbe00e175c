"""What the API answers, and how a model becomes that.

The schemas type the answers and make the OpenAPI document; the functions below them
build the answers from models, in one place, so that every endpoint shows an
environment, an operation or a grant the same way.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from django.conf import settings
from django.urls import reverse
from ninja import Field, Schema
from pydantic import AfterValidator, AwareDatetime, StrictBool, StrictFloat, field_validator

from environments.api.auth import user_of
from environments.drivers.database import server_address
from environments.forms import REASON_MAX_LENGTH
from environments.models import OperationKind, ServiceKind

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
#: Some text that is not all blank, without NUL: what a form's required CharField takes.
SOME_TEXT = rf"^[^\u0000]*[^\u0000{BLANK}][^\u0000]*$"


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
            "pattern": SOME_TEXT,
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
    hours: StrictFloat | None = hours_field()


class DatabaseAccountIn(Schema):
    level: str = Field(..., json_schema_extra={"enum": ["read", "read_write"]})
    reason: str = reason_field()
    hours: StrictFloat | None = hours_field()


class WindowIn(Schema):
    starts_at: AwareDatetime = Field(..., examples=["2026-12-24T22:00:00Z"])
    ends_at: AwareDatetime = Field(..., examples=["2026-12-24T23:00:00Z"])
    reason: str = reason_field()
    notify_users: StrictBool = Field(True, description="Mail the environment's users about it.")

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def iso_text(cls, value):
        # Not a number of seconds: a time a person can read back, with its offset.
        if not isinstance(value, str):
            raise ValueError("Give the time as ISO 8601 text with its offset.")
        return value


class WindowNowIn(Schema):
    hours: StrictFloat = Field(
        ...,
        description="How long maintenance mode stays on: at least 0.25, at most WINDOW_MAX_HOURS",
        examples=[2],
        json_schema_extra={"minimum": 0.25, "maximum": settings.WINDOW_MAX_HOURS},
    )
    reason: str = reason_field()
    notify_users: StrictBool = Field(True, description="Mail the environment's users about it.")


class WindowCancelIn(Schema):
    reason: str = reason_field("Why: kept in the environment history.")


# --- Answers ------------------------------------------------------------------------


class Links(Schema):
    self: str
    history: str | None = None


#: A time in UTC, as every time of the API (a window just scheduled still holds the
#: offset it was given).
InUtc = Annotated[datetime, AfterValidator(lambda moment: moment.astimezone(UTC))]


class NextWindowOut(Schema):
    """The next or active window, as the environment's row keeps it (no query)."""

    starts_at: InUtc = Field(..., alias="window_starts_at")
    ends_at: InUtc = Field(..., alias="window_ends_at")
    url: str = Field(..., description="The environment's open windows, with their ids.")

    @staticmethod
    def resolve_url(environment):
        return api_url("environment_windows", environment.slug)


class EnvironmentOut(Schema):
    slug: str
    name: str
    project: str = Field(..., alias="project.slug")
    project_name: str = Field(..., alias="project.name")
    tier: int
    type: str
    subscription: str
    deployment: str
    url: str
    status: str
    status_label: str = Field(..., alias="get_status_display")
    maintenance_mode: bool
    maintenance_window: NextWindowOut | None = Field(
        ..., description="The next or active scheduled maintenance window."
    )
    revision: int
    links: Links

    @staticmethod
    def resolve_maintenance_window(environment):
        return environment if environment.window_starts_at else None

    @staticmethod
    def resolve_links(environment):
        return {
            "self": api_url("environment", environment.slug),
            "history": api_url("environment_history", environment.slug),
        }


class ServiceOut(Schema):
    kind: str
    code: str
    name: str = Field(..., alias="get_kind_display")
    state: str = Field(..., description="The last known state: see checked_at.")
    checked_at: datetime | None = Field(
        ..., description="When a health check last answered (null: never checked)."
    )
    last_restarted_at: datetime | None


class SignInUser(Schema):
    username: str = Field(..., alias="user.username")
    role: str
    role_label: str = Field(..., alias="get_role_display")


class OperationBrief(Schema):
    activity_id: UUID
    activity: str
    outcome: str
    started_at: datetime
    url: str

    @staticmethod
    def resolve_url(operation):
        return api_url("operation", operation.activity_id)


class GrantOut(Schema):
    id: int
    environment: str = Field(..., alias="environment.slug")
    requested_by: str = Field(..., alias="requested_by.username")
    reason: str
    created_at: datetime
    expires_at: datetime
    active: bool = Field(..., alias="is_active")
    state: str = Field(..., alias="state_text")
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
    database: str = Field(..., alias="environment.database_name")

    @staticmethod
    def resolve_host(account):
        return server_address(account.environment)["host"]

    @staticmethod
    def resolve_port(account):
        return server_address(account.environment)["port"]


class NewDatabaseAccountOut(DatabaseAccountOut):
    password: str | None = Field(
        ...,
        description="Shown in this answer only, never again: null in the replay of an "
        "Idempotency-Key, where password_note says so.",
    )
    password_note: str | None = Field(None, description="Why password is null (a replay).")


class EnvironmentDetailOut(EnvironmentOut):
    services: list[ServiceOut]
    available_actions: list[str] = Field(
        ..., description="What this token may start now (the Maintain menu)."
    )
    running_operation: OperationBrief | None = Field(..., alias="running_operation")
    failed_operation: OperationBrief | None = Field(..., alias="failed_operation")
    who_may_sign_in: str
    maintenance_users: list[SignInUser] = Field(
        ...,
        description="Who may sign in while maintenance mode is on.",
        alias="maintenance_sign_in_roles",
    )
    firewall_rules: list[FirewallRuleOut] = Field(..., alias="active_firewall_rules")
    database_accounts: list[DatabaseAccountOut] = Field(..., alias="active_database_accounts")

    @staticmethod
    def resolve_available_actions(environment, context):
        """What the Maintain menu offers this token's user now (none to a read token)."""
        request = context["request"]
        if not request.auth.may_maintain:
            return []
        user = user_of(request)
        allowed = {t.name for t in environment.get_available_user_status_transitions(user)}
        return [kind for kind in OperationKind.values if kind in allowed]

    @staticmethod
    def resolve_who_may_sign_in(environment):
        if environment.maintenance_mode:
            return "Only System administrators and Maintenance mode users (maintenance mode is on)."
        return "Everyone with a role on the environment."


class HistoryEntryOut(Schema):
    activity_id: UUID
    url: str
    environment: str = Field(..., alias="environment.slug")
    environment_name: str = Field(..., alias="environment.name")
    kind: str
    action: str
    activity: str
    type: str
    service: str | None
    target: str
    requested_by: str = Field(..., alias="requester_name")
    via: str
    reason: str
    outcome: str
    outcome_label: str = Field(..., alias="get_outcome_display")
    status_before: str
    status_after: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    error: str

    @staticmethod
    def resolve_url(operation):
        return api_url("operation", operation.activity_id)

    @staticmethod
    def resolve_service(operation):
        return operation.service.kind if operation.service_id else None

    @staticmethod
    def resolve_duration_seconds(operation):
        duration = operation.duration
        return duration.total_seconds() if duration is not None else None


class LogLineOut(Schema):
    at: InUtc = Field(..., description="When the driver wrote it (UTC)")
    text: str


class OperationOut(HistoryEntryOut):
    """An operation with its log and its environment's status now."""

    active: bool = Field(..., alias="is_active")
    deadline: datetime
    status_before_label: str = Field(..., alias="get_status_before_display")
    status_after_label: str
    environment_status: str = Field(..., alias="environment.status")
    environment_status_label: str = Field(..., alias="environment.get_status_display")
    log: str = Field(..., description="The driver log as one text, a UTC time on each line")
    log_lines: list[LogLineOut] = Field(
        ...,
        description="The driver log's lines as they were written, oldest first; they grow "
        "while the operation is active. Empty for operations from before lines were kept.",
    )

    @staticmethod
    def resolve_status_after_label(operation):
        return operation.get_status_after_display() if operation.status_after else ""

    @staticmethod
    def resolve_log(operation):
        lines = operation.log_lines.all()
        return "".join(line.as_text(UTC) for line in lines) if lines else operation.log


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
    environment: str = Field(..., alias="environment.slug")
    starts_at: InUtc
    ends_at: InUtc
    reason: str
    notify_users: bool
    scheduled_by: str = Field(..., alias="scheduled_by.username")
    state: str
    state_label: str = Field(..., alias="get_state_display")
    started_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    note: str = Field(..., description="Why it was missed, or who ended or cancelled it.")

    @staticmethod
    def resolve_url(window):
        return api_url("window", window.pk)

    @staticmethod
    def resolve_ended_by(window):
        return window.ended_by.get_username() if window.ended_by_id else None


class WindowStartedOut(Schema):
    maintenance_window: WindowOut
    operation: OperationOut = Field(..., description="Enable Maintenance mode, to poll.")


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
_STARTED_WINDOW = {"window_id": "$response.body#/maintenance_window/id"}
LINKS = {
    ("GET /environments", 200): [
        ("The first environment", "GET /environments/{slug}", {"slug": "$response.body#/0/slug"}),
    ],
    ("GET /environments/{slug}", 200): [
        ("Start an operation", "POST /environments/{slug}/operations", _ENVIRONMENT),
        ("History", "GET /environments/{slug}/history", _ENVIRONMENT),
        ("Maintenance windows", "GET /environments/{slug}/maintenance-windows", _ENVIRONMENT),
        ("Schedule a window", "POST /environments/{slug}/maintenance-windows", _ENVIRONMENT),
        ("Start now", "POST /environments/{slug}/maintenance-windows/now", _ENVIRONMENT),
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
    ("POST /environments/{slug}/maintenance-windows/now", 202): [
        ("The window", "GET /maintenance-windows/{window_id}", _STARTED_WINDOW),
        ("End it", "POST /maintenance-windows/{window_id}/end", _STARTED_WINDOW),
        (
            "The operation",
            "GET /operations/{activity_id}",
            {"activity_id": "$response.body#/operation/activity_id"},
        ),
    ],
    ("POST /environments/{slug}/maintenance-windows", 201): [
        ("The window", "GET /maintenance-windows/{window_id}", _WINDOW),
        ("Cancel it", "POST /maintenance-windows/{window_id}/cancel", _WINDOW),
        ("End it", "POST /maintenance-windows/{window_id}/end", _WINDOW),
    ],
}


#: Request headers: every POST and DELETE takes an Idempotency-Key (api/idempotency.py),
#: the conditional GETs an If-None-Match (api/conditional.py).
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key from the same user within 24 hours gets "
    "the first answer again (with Idempotent-Replayed: true) and starts nothing new. "
    "1 to 255 printable ASCII characters; a UUID suits.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of an earlier answer: 304 Not Modified while nothing changed.",
    "schema": {"type": "string"},
}
#: The GETs that answer with an ETag, and 304 to If-None-Match.
CONDITIONAL = {
    "GET /environments/{slug}",
    "GET /operations/{activity_id}",
    "GET /maintenance-windows/{window_id}",
}
#: The lists that give their next page in a Link header.
PAGED = {
    "GET /environments",
    "GET /environments/{slug}/maintenance-windows",
    "GET /history",
    "GET /environments/{slug}/history",
}
#: What POST and DELETE may answer because of their Idempotency-Key.
IDEMPOTENCY_PROBLEMS = {
    400: "Bad input, or an Idempotency-Key that is not 1 to 255 printable ASCII characters",
    409: "Conflict; or a request with this Idempotency-Key is still being answered "
    "(idempotency_key_in_flight, with Retry-After)",
    422: "This Idempotency-Key was sent with another request (idempotency_key_reused)",
}


def _header(description, required=False, pattern=None):
    schema = {"type": "string", "pattern": pattern} if pattern else {"type": "string"}
    return {"description": description, "required": required, "schema": schema}


def response_headers(status, operation_name):
    """The headers an answer of ``status`` carries: X-Request-Id always; the rate limit's
    whenever the token was valid (every answer but 401: certainly on a success); an ETag
    and a Link where the operation gives them."""
    succeeded = status < 400
    headers = {
        "X-Request-Id": _header(
            "The request's id: the client's own when it sent a sane one, else a new "
            "UUID. A problem names it as its instance; the portal's log lines carry it.",
            required=True,
        )
    }
    if status != 401:
        for name, description in (
            ("RateLimit-Limit", "Requests a minute this user may make, all tokens together"),
            ("RateLimit-Remaining", "What is left of them in the current minute"),
            ("RateLimit-Reset", "Seconds until the current minute's window ends"),
        ):
            headers[name] = _header(description, required=succeeded, pattern="^[0-9]+$")
    if operation_name in CONDITIONAL and status in (200, 304):
        headers["ETag"] = _header(
            "Send it back as If-None-Match: 304 while nothing changed", required=True
        )
    if operation_name in PAGED and status == 200:
        headers["Link"] = _header('The next page: <URL>; rel="next" (none on the last page)')
    if operation_name.startswith(("POST ", "DELETE ")) and succeeded:
        headers["Idempotent-Replayed"] = _header(
            "true on the first answer sent again for its Idempotency-Key"
        )
    return headers


def finish_document(document, prefix, problem_type):
    """What ninja cannot say itself: failures are sent as ``problem_type``; a request
    with a body may get 413 and 415 too; the headers of requests (Idempotency-Key,
    If-None-Match) and of answers (X-Request-Id, RateLimit-*, ETag, Link), with the
    statuses they bring (304, 409, 422); and the links from an answer to what it made."""
    operations = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            name = f"{method.upper()} {path.removeprefix(prefix)}"
            operations[name] = operation
            responses = operation["responses"]
            if "requestBody" in operation:
                for status, description in BODY_PROBLEMS.items():
                    responses[status] = {"description": description}
            if method in ("post", "delete"):
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
                for status, description in IDEMPOTENCY_PROBLEMS.items():
                    responses.setdefault(status, {})["description"] = description
            for answer in responses.values():
                content = answer.get("content", {})
                json_schema = content.get("application/json", {}).get("schema")
                if "content" not in answer or json_schema == PROBLEM:
                    answer["content"] = {problem_type: {"schema": PROBLEM}}
            if name in CONDITIONAL:
                operation.setdefault("parameters", []).append(IF_NONE_MATCH)
                responses[304] = {"description": "Not Modified: the If-None-Match is current"}
            for status, answer in responses.items():
                answer["headers"] = response_headers(int(status), name)
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


def latest_operation(grant):
    """The newest operation of a grant (its apply or its removal), or None."""
    return grant.operations.select_related(
        "environment", "service", "requested_by__service_account"
    ).first()
