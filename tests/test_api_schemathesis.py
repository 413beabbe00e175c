"""Schemathesis checks the live API against its own OpenAPI document: every check, the
stateful phase following the document's links, a Maintain token and a Read token.

It runs the `st` command line of the installed package against gunicorn and a db_worker
on the test database, with a configuration written here: the dictionaries that get past
the pages' rules (real reasons, future times, addresses a firewall rule may name), and
the checks that do not hold for an operation, each with its reason. PostgreSQL only: the
SQLite run has no business with a dozen writers at once, and one run is enough."""

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection

from environments.models import TokenScope
from tests.api_clients import token_for
from tests.conftest import subprocess_env
from tests.live import Gunicorn, start_worker, stop

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="one run is enough: the PostgreSQL run of `make test` runs it",
)

ST = Path(sys.executable).parent / "st"
#: Bounds the run to a few minutes on a small machine.
MAX_EXAMPLES = 12
MAX_SECONDS_PER_RUN = 110

REASONS = [
    "Patch Tuesday: apply the hotfix",
    "AOS stuck after the nightly batch",
    "Support case 4711: read the invoice tables",
    "Quarter close: keep users out",
]
ADDRESSES = ["203.0.113.7", "203.0.113.0/28", "198.51.100.23", "2001:db8::7"]
#: What positive_data_acceptance takes (Schemathesis' default), and 422 (see configuration).
ACCEPTED_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

#: Checks that do not hold for an operation, and why (JSON Schema cannot say it).
BUSINESS_RULES = [
    (
        "POST",
        "/api/v1/environments/{slug}/operations",
        ["positive_data_acceptance"],
        "well-formed actions are refused while another runs or in the wrong status (409)",
    ),
    (
        "POST",
        "/api/v1/operations/{activity_id}/stop",
        ["positive_data_acceptance"],
        "only a running operation can be stopped (409)",
    ),
    (
        "POST",
        "/api/v1/environments/{slug}/maintenance-windows/now",
        ["positive_data_acceptance"],
        "refused while another operation runs or maintenance is on (409), and hours keep "
        "two decimal places, as the page's field",
    ),
    (
        "POST",
        "/api/v1/environments/{slug}/firewall-rules",
        ["positive_data_acceptance"],
        "the form refuses private and loopback ranges, and refuses while busy",
    ),
    (
        "POST",
        "/api/v1/environments/{slug}/database-accounts",
        ["positive_data_acceptance"],
        "refused while another operation runs (409)",
    ),
    (
        "POST",
        "/api/v1/environments/{slug}/maintenance-windows",
        ["positive_data_acceptance"],
        "the end must follow the start by at most 24 hours, and windows never overlap",
    ),
    (
        "GET",
        "/api/v1/history",
        ["positive_data_acceptance"],
        "since must not be after until, and days lie between 1970 and 9998",
    ),
    (
        "GET",
        "/api/v1/environments/{slug}/history",
        ["positive_data_acceptance"],
        "since must not be after until, and days lie between 1970 and 9998",
    ),
    (
        "POST",
        "/api/v1/tokens",
        ["positive_data_acceptance"],
        "the expiry must lie ahead, within PORTAL_API_TOKEN_MAX_DAYS; a token for the "
        "maker is refused (403), for another user unless a service account of the "
        "maker's projects",
    ),
    (
        "POST",
        "/api/v1/maintenance-windows/{window_id}/cancel",
        ["use_after_free"],
        "a cancelled window is kept (and shown) as Cancelled: nothing is deleted",
    ),
    (
        "DELETE",
        "/api/v1/firewall-rules/{rule_id}",
        ["use_after_free"],
        "a removed rule stays in the history, shown as Removed: nothing is deleted",
    ),
    (
        "DELETE",
        "/api/v1/database-accounts/{account_id}",
        ["use_after_free"],
        "a revoked account stays in the history, shown as Revoked: nothing is deleted",
    ),
]


def toml_list(values):
    return json.dumps(values)


def configuration(now, slug, *, read_only=False):
    """schemathesis.toml for one run. Every check is on unless an operation turns it
    off here (Schemathesis 4's default; `--checks` on the command line would override the
    operations' settings)."""
    hours = [now + timedelta(days=30, hours=h) for h in range(0, 72, 3)]
    times = [t.strftime("%Y-%m-%dT%H:00:00Z") for t in hours]
    lines = [
        "[dictionaries]",
        f"reasons = {{ values = {toml_list(REASONS)} }}",
        f"addresses = {{ values = {toml_list(ADDRESSES)} }}",
        f"times = {{ values = {toml_list(times)} }}",
        f"slugs = {{ values = {toml_list([slug])} }}",
        "",
        "[parameters]",
        '"body.reason" = { dictionary = "reasons", probability = 0.9 }',
        '"body.address" = { dictionary = "addresses", probability = 0.9 }',
        '"body.starts_at" = { dictionary = "times", probability = 0.9 }',
        '"body.ends_at" = { dictionary = "times", probability = 0.9 }',
        '"body.expires_at" = { dictionary = "times", probability = 0.9 }',
        '"path.slug" = { dictionary = "slugs", probability = 0.9 }',
        "",
        "# The document is what is tested: constraints learnt from the answers' messages",
        "# reshape it, and the dictionaries' valid entries then counted as invalid data.",
        "[phases.fuzzing.error-feedback]",
        "enabled = false",
        "",
        '# Generated Idempotency-Keys repeat ("0", "a"): the same key with another',
        "# request is 422, a promise of the client's that JSON Schema cannot state.",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {toml_list(ACCEPTED_STATUSES)}",
        "",
        "# Rotating revokes the token it names, which may be the one the run is sent with:",
        "# every request after it would be 401. tests/test_service_accounts.py tests it.",
        "[[operations]]",
        'include-method = "POST"',
        'include-path = "/api/v1/tokens/{token_id}/rotate"',
        "enabled = false",
        "",
    ]
    for method, path, checks, reason in BUSINESS_RULES:
        lines += [f"# {reason}", "[[operations]]", f'include-method = "{method}"']
        lines += [f'include-path = "{path}"']
        lines += [f"checks.{check}.enabled = false" for check in checks]
        lines.append("")
    if read_only:
        lines += [
            "# A Read token may change nothing: every write is 403, whatever it sends.",
            "[[operations]]",
            'include-method-regex = "^(POST|DELETE)$"',
            "checks.positive_data_acceptance.enabled = false",
            "",
        ]
    return "\n".join(lines)


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_nothing_the_document_does_not_say(
    tmp_path, environment, manager, capsys
):
    # gunicorn's own 4,094-byte request line would answer 414 to a long generated query
    # before the portal sees it (in production nginx, in front, sets that limit).
    env = subprocess_env(
        PORTAL_API_RATE_LIMIT=1_000_000, GUNICORN_CMD_ARGS="--limit-request-line 0"
    )
    server = Gunicorn(tmp_path / "gunicorn.log", workers=2, threads=4, env=env)
    worker = None
    runs = []
    try:
        server.start()
        worker = start_worker(tmp_path / "worker.log", env=env)
        base = f"http://127.0.0.1:{server.port}"
        now = datetime.now(UTC)
        for scope in (TokenScope.MAINTAIN, TokenScope.READ):
            _, secret = token_for(manager, scope, name=f"schemathesis {scope}")
            config = tmp_path / f"schemathesis-{scope}.toml"
            config.write_text(
                configuration(now, environment.slug, read_only=scope == TokenScope.READ)
            )
            started = time.monotonic()
            result = subprocess.run(
                [
                    str(ST),
                    "--config-file",
                    str(config),
                    "run",
                    f"{base}/api/v1/openapi.json",
                    "--header",
                    f"Authorization: Bearer {secret}",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--max-time",
                    str(MAX_SECONDS_PER_RUN),
                    "--workers",
                    "1",
                    "--seed",
                    "1",
                    "--generation-database",
                    "none",
                    "--request-timeout",
                    "30",
                    "--no-color",
                ],
                capture_output=True,
                text=True,
                timeout=MAX_SECONDS_PER_RUN * 4,
                env=env,
                cwd=tmp_path,  # its cache folder goes there, not into the checkout
            )
            seconds = time.monotonic() - started
            runs.append((scope, result, seconds))
            assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    finally:
        stop(worker)
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    with capsys.disabled():
        for scope, result, seconds in runs:
            found = re.search(r"(\d+) generated", result.stdout)
            print(
                f"\nschemathesis ({scope} token): "
                f"{found.group(1) if found else '?'} test cases in {seconds:.0f} s"
            )
