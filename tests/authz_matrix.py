"""Who gets what: every URL of the portal for every role, in one table.

tests/test_authorization_matrix.py turns each cell into a test, and docs/reliability.md
shows the same table (a test checks that it is this one). The cast is tests/conftest.py's:

- anonymous: not signed in
- outsider:  owner of another project (olga)
- member:    Project team member (tom)
- maint:     team member and Maintenance mode user on the environment (maya)
- manager:   Environment manager (mona)
- owner:     Project owner (alice)
- superuser: root

Answers: a status code, or where a redirect goes: "→sign-in" (the portal's sign-in
page), "→admin sign-in", "→list" (the environment list), "→details" (the environment's
details page), "→environment" (the environment's own URL: the sign-in gate let the user
through). POSTs are sent as htmx sends them, with a valid CSRF token. The firewall rule
and the database account were granted to the owner (alice), who also scheduled the
maintenance window; the calendar feed is asked at the outsider's own secret address.
"""

ROLES = ("anonymous", "outsider", "member", "maint", "manager", "owner", "superuser")

S, A, L, E, D = "→sign-in", "→admin sign-in", "→list", "→environment", "→details"

# (what, method, path; {slug} {rule} {account} {activity} are filled in), then one
# answer per role in ROLES order.
MATRIX = [
    ("Home", "GET", "/", (L, L, L, L, L, L, L)),
    ("Environment list", "GET", "/environments/", (S, 200, 200, 200, 200, 200, 200)),
    ("Details", "GET", "/environments/{slug}/", (S, 404, 200, 200, 200, 200, 200)),
    ("Status poll", "GET", "/environments/{slug}/status/", (S, 404, 200, 200, 200, 200, 200)),
    (
        "Maintain: confirm step",
        "GET",
        "/environments/{slug}/maintain/restart_service/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Maintain: start",
        "POST",
        "/environments/{slug}/maintain/enable_maintenance/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Maintain: unknown action",
        "POST",
        "/environments/{slug}/maintain/drop_database/",
        (S, 404, 403, 403, 400, 400, 400),
    ),
    (
        "Stop: confirm step (nothing runs)",
        "GET",
        "/environments/{slug}/stop/",
        (S, 404, 403, 403, 409, 409, 409),
    ),
    (
        "Stop (nothing runs)",
        "POST",
        "/environments/{slug}/stop/",
        (S, 404, 403, 403, 409, 409, 409),
    ),
    (
        "Remove firewall rule: confirm step",
        "GET",
        "/environments/{slug}/access/rules/{rule}/remove/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Remove firewall rule",
        "POST",
        "/environments/{slug}/access/rules/{rule}/remove/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Database account credentials",
        "GET",
        "/environments/{slug}/access/accounts/{account}/credentials/",
        (S, 404, 404, 404, 404, 200, 404),
    ),
    (
        "Revoke database account",
        "POST",
        "/environments/{slug}/access/accounts/{account}/revoke/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Environment sign-in gate",
        "GET",
        "/environments/{slug}/sign-in/",
        (S, 404, 403, E, 403, 403, E),
    ),
    ("Forward auth", "GET", "/environments/{slug}/auth/", (401, 403, 403, 204, 403, 403, 204)),
    (
        "Environment history",
        "GET",
        "/environments/{slug}/history/",
        (S, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Environment history CSV",
        "GET",
        "/environments/{slug}/history.csv",
        (S, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Operation details",
        "GET",
        "/environments/{slug}/history/{activity}/",
        (S, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Maintenance windows",
        "GET",
        "/environments/{slug}/windows/",
        (S, 404, 200, 200, 200, 200, 200),
    ),
    (
        "Schedule maintenance mode: form",
        "GET",
        "/environments/{slug}/windows/schedule/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Schedule maintenance mode (no times given)",
        "POST",
        "/environments/{slug}/windows/schedule/",
        (S, 404, 403, 403, 400, 400, 400),
    ),
    (
        "Cancel window: confirm step",
        "GET",
        "/environments/{slug}/windows/{window}/cancel/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "Cancel window",
        "POST",
        "/environments/{slug}/windows/{window}/cancel/",
        (S, 404, 403, 403, D, D, D),
    ),
    (
        "End window: confirm step",
        "GET",
        "/environments/{slug}/windows/{window}/end/",
        (S, 404, 403, 403, 200, 200, 200),
    ),
    (
        "End window (not started yet)",
        "POST",
        "/environments/{slug}/windows/{window}/end/",
        (S, 404, 403, 403, 409, 409, 409),
    ),
    (
        "Calendar feed (the outsider's address)",
        "GET",
        "/calendar/{calendar}/{slug}.ics",
        (404, 404, 404, 404, 404, 404, 404),
    ),
    ("Settings", "GET", "/settings/", (S, 200, 200, 200, 200, 200, 200)),
    ("History (all)", "GET", "/history/", (S, 200, 200, 200, 200, 200, 200)),
    ("History CSV (all)", "GET", "/history.csv", (S, 200, 200, 200, 200, 200, 200)),
    ("Admin", "GET", "/{admin}", (A, A, A, A, A, A, 200)),
    ("Sign-in page", "GET", "/accounts/login/", (200, 200, 200, 200, 200, 200, 200)),
]


def markdown_table():
    """The matrix as docs/reliability.md shows it."""
    lines = [
        "| URL | method | " + " | ".join(ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for what, method, path, answers in MATRIX:
        cells = " | ".join(str(answer) for answer in answers)
        lines.append(f"| {what}: `{path}` | {method} | {cells} |")
    return "\n".join(lines)
