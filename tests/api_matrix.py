"""Who gets what from the API: every endpoint for every role, in one table, as
tests/authz_matrix.py has it for the pages.

tests/test_api_authorization_matrix.py turns each cell into a test, and docs/api.md
shows the same table (a test checks that it is this one). The cast is
tests/conftest.py's; each user calls with a Maintain token of their own, and
"anonymous" with no token. Read tokens are not in the table: every row that is not a
GET is 403 insufficient_scope for each role's Read token, before anything else is looked
at, and changes nothing (tests/test_api_authorization_matrix.py).

Answers are status codes. The firewall rule and the database account were granted to
the owner (alice), and the operation is the rule's. The maintenance window was
scheduled by the owner, a day ahead; the token is of nightly-restarts, a service account
and Environment manager of the owner's project (the world of tests/conftest.py).
"""

from datetime import UTC, datetime, timedelta

#: A window for "Schedule" to ask for: a month ahead, clear of the world's own window.
_START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
_END = _START + timedelta(hours=1)

ROLES = ("anonymous", "outsider", "member", "maint", "manager", "owner", "superuser")

# (what, method, path with {slug} {rule} {account} {activity} {window} {token} filled in,
# body),
# then one answer per role in ROLES order.
MATRIX = [
    ("Environments", "GET", "/api/v1/environments", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "Environment",
        "GET",
        "/api/v1/environments/{slug}",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Start an operation",
        "POST",
        "/api/v1/environments/{slug}/operations",
        {"action": "enable_maintenance", "reason": "matrix"},
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Start an unknown action",
        "POST",
        "/api/v1/environments/{slug}/operations",
        {"action": "drop_database", "reason": "matrix"},
        (401, 404, 403, 403, 400, 400, 400),
    ),
    (
        "Operation",
        "GET",
        "/api/v1/operations/{activity}",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Stop an operation (this one has ended)",
        "POST",
        "/api/v1/operations/{activity}/stop",
        {"reason": "matrix"},
        (401, 404, 403, 403, 409, 409, 409),
    ),
    (
        "Environment history",
        "GET",
        "/api/v1/environments/{slug}/history",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    ("History (all)", "GET", "/api/v1/history", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "Environment history as CSV",
        "GET",
        "/api/v1/environments/{slug}/history.csv",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    (
        "History (all) as CSV",
        "GET",
        "/api/v1/history.csv",
        None,
        (401, 200, 200, 200, 200, 200, 200),
    ),
    ("Who am I (the token and its user)", "GET", "/api/v1/me", None, (401,) + (200,) * 6),
    (
        "Enable access (firewall rule)",
        "POST",
        "/api/v1/environments/{slug}/firewall-rules",
        {"name": "matrix", "address": "198.51.100.7", "reason": "matrix"},
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Remove a firewall rule",
        "DELETE",
        "/api/v1/firewall-rules/{rule}",
        None,
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Request access (database account)",
        "POST",
        "/api/v1/environments/{slug}/database-accounts",
        {"level": "read", "reason": "matrix"},
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Revoke a database account",
        "DELETE",
        "/api/v1/database-accounts/{account}",
        None,
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Maintenance windows",
        "GET",
        "/api/v1/environments/{slug}/maintenance-windows",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Schedule a maintenance window",
        "POST",
        "/api/v1/environments/{slug}/maintenance-windows",
        {"starts_at": _START.isoformat(), "ends_at": _END.isoformat(), "reason": "matrix"},
        (401, 404, 403, 403, 201, 201, 201),
    ),
    (
        "Start maintenance now, for some hours",
        "POST",
        "/api/v1/environments/{slug}/maintenance-windows/now",
        {"hours": 2, "reason": "matrix"},
        (401, 404, 403, 403, 202, 202, 202),
    ),
    (
        "Maintenance window",
        "GET",
        "/api/v1/maintenance-windows/{window}",
        None,
        (401, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Cancel a maintenance window",
        "POST",
        "/api/v1/maintenance-windows/{window}/cancel",
        {"reason": "matrix"},
        (401, 404, 403, 403, 200, 200, 200),
    ),
    (
        "End a maintenance window early (it has not started: 409)",
        "POST",
        "/api/v1/maintenance-windows/{window}/end",
        None,
        (401, 404, 403, 403, 409, 409, 409),
    ),
    (
        "Make a token for the owner's service account",
        "POST",
        "/api/v1/tokens",
        {"name": "matrix", "scope": "maintain", "user": "nightly-restarts"},
        (401, 403, 403, 403, 403, 201, 201),
    ),
    (
        "Rotate the owner's service account's token",
        "POST",
        "/api/v1/tokens/{token}/rotate",
        None,
        (401, 404, 404, 404, 404, 201, 201),
    ),
    ("OpenAPI document", "GET", "/api/v1/openapi.json", None, (200,) * 7),
    ("Browsable docs", "GET", "/api/v1/docs", None, (200,) * 7),
    ("No such endpoint", "GET", "/api/v1/no-such-thing", None, (404,) * 7),
]


def markdown_table():
    """The matrix as docs/api.md shows it."""
    lines = [
        "| endpoint | method | " + " | ".join(ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for what, method, path, _, answers in MATRIX:
        cells = " | ".join(str(answer) for answer in answers)
        lines.append(f"| {what}: `{path.removeprefix('/api/v1')}` | {method} | {cells} |")
    return "\n".join(lines)
