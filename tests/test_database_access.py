"""Request access on the machine's real PostgreSQL: real logins, never persistent."""

import csv
import io
import os
import secrets
import time
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from environments.drivers import postgres
from environments.models import AccessEnd, DatabaseAccount, Operation, OperationKind, Outcome
from environments.operations import OperationRefused, expire_access, request_access, revoke_access
from tests import pg_roles
from tests.conftest import committing, make_environment, run_worker
from tests.pg_roles import (
    as_superuser,
    connect_as,
    grant,
    revoke_and_drop,
    role_exists,
    shown_credentials,
)

# The PostgreSQL fixtures of tests/pg_roles.py, used by name.
driver_role = pg_roles.driver_role
target_database = pg_roles.target_database
pg_environment = pg_roles.pg_environment
dropped_roles = pg_roles.dropped_roles
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_read_account_can_read_but_not_write(client, pg_environment, manager, dropped_roles):
    account = grant(pg_environment, manager, "read")
    client.force_login(manager)
    credentials = shown_credentials(client, pg_environment)
    assert credentials["username"] == account.username
    assert len(credentials["password"]) >= 32

    with connect_as(credentials) as connection:
        assert connection.execute("SELECT item FROM orders ORDER BY id").fetchall() == [
            ("widget",),
            ("gadget",),
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("INSERT INTO orders VALUES (3, 'gizmo')")
    revoke_and_drop(pg_environment, account, manager)


def test_read_write_account_can_write(client, pg_environment, manager, dropped_roles):
    account = grant(pg_environment, manager, "read_write")
    client.force_login(manager)
    with connect_as(shown_credentials(client, pg_environment)) as connection:
        connection.execute("INSERT INTO orders VALUES (3, 'gizmo')")
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    revoke_and_drop(pg_environment, account, manager)


def test_revoke_ends_open_sessions_and_refuses_new_logins(
    client, pg_environment, manager, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    client.force_login(manager)
    credentials = shown_credentials(client, pg_environment)
    connection = connect_as(credentials)
    connection.execute("SELECT 1")

    url = reverse("database-account-revoke", args=[pg_environment.slug, account.pk])
    with committing():
        assert client.post(url, **HTMX).status_code == 200
    run_worker()

    with pytest.raises(psycopg.OperationalError):
        connection.execute("SELECT 1")
    connection.close()
    with pytest.raises(psycopg.OperationalError):
        connect_as(credentials)
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.REVOKED and account.ended_by == manager
    assert account.password_encrypted == ""
    revoke = Operation.objects.get(kind=OperationKind.REVOKE_ACCESS)
    assert "ended 1 open session(s)" in revoke.log_text
    assert f"DROP ROLE {account.username}" in revoke.log_text


def test_expired_account_is_ended_and_dropped(client, pg_environment, manager, dropped_roles):
    account = grant(pg_environment, manager, "read", lifetime=timedelta(seconds=2))
    client.force_login(manager)
    credentials = shown_credentials(client, pg_environment)
    connection = connect_as(credentials)
    time.sleep(2.5)

    run_worker()  # the task enqueued for the expiry time is due now

    with pytest.raises(psycopg.OperationalError):
        connection.execute("SELECT 1")
    connection.close()
    with pytest.raises(psycopg.OperationalError):
        connect_as(credentials)
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.EXPIRED and account.removed_at is not None
    assert not role_exists(account.username)


def expire_now(account):
    """Put the account past its expiry at once; its own expiry task stays hours away, so
    only the sweeper can end it."""
    DatabaseAccount.objects.filter(pk=account.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def assert_dropped(account):
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.EXPIRED and account.removed_at is not None
    assert not role_exists(account.username)


def test_the_sweeper_ends_an_expired_database_account_and_drops_its_role(
    pg_environment, manager, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    expire_now(account)
    with committing():
        assert expire_access() == [account]
    run_worker()
    assert_dropped(account)


def test_the_watchdog_ends_an_expired_database_account_and_drops_its_role(
    pg_environment, manager, dropped_roles
):
    account = grant(pg_environment, manager, "read_write")
    expire_now(account)
    out = io.StringIO()
    with committing():
        call_command("watchdog", stdout=out)
    assert f"{account} on {pg_environment.slug}: removal queued" in out.getvalue()
    run_worker()
    assert_dropped(account)


def test_a_failed_drop_is_retried_after_its_backoff_until_the_role_is_gone(
    pg_environment, manager, monkeypatch, dropped_roles
):
    from tests.live import free_port

    account = grant(pg_environment, manager, "read")
    server = os.environ["PORTAL_DB_SERVER_LOCAL_URL"]
    monkeypatch.setattr(postgres, "RETRY_SECONDS", 0)
    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_URL", f"postgres://nobody@127.0.0.1:{free_port()}/x")
    expire_now(account)
    with committing():
        expire_access()
    run_worker()  # the server is unreachable
    failed = Operation.objects.get(kind=OperationKind.REVOKE_ACCESS)
    assert failed.outcome == Outcome.FAILED and "Could not connect" in failed.error
    assert role_exists(account.username)

    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_URL", server)  # reachable again
    with committing():
        assert expire_access() == []  # within the backoff
    with committing():
        assert expire_access(now=timezone.now() + timedelta(minutes=2)) == [account]
    run_worker()

    retry = Operation.objects.filter(kind=OperationKind.REVOKE_ACCESS).latest("started_at")
    assert retry.outcome == Outcome.SUCCEEDED and retry.reason.startswith("Retrying the removal")
    assert_dropped(account)


def test_role_carries_valid_until_the_expiry(pg_environment, manager, dropped_roles):
    account = grant(pg_environment, manager, "read")
    with as_superuser() as admin:
        (valid_until,) = admin.execute(
            "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [account.username]
        ).fetchone()
    assert abs((valid_until - account.expires_at).total_seconds()) < 1
    revoke_and_drop(pg_environment, account, manager)


def test_password_is_shown_to_its_requester_only(
    client, pg_environment, manager, owner, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    client.force_login(manager)
    password = shown_credentials(client, pg_environment)["password"]

    client.force_login(owner)
    body = client.get(pg_environment.get_absolute_url()).content.decode()
    assert account.username in body and "mona" in body and "Read" in body
    assert password not in body
    assert 'data-testid="credentials"' not in body
    revoke_and_drop(pg_environment, account, manager)


def test_password_never_reaches_logs_history_admin_or_csv(
    client, pg_environment, manager, superuser, caplog, dropped_roles
):
    caplog.set_level("DEBUG")
    account = grant(pg_environment, manager, "read_write")
    client.force_login(manager)
    password = shown_credentials(client, pg_environment)["password"]
    revoke_and_drop(pg_environment, account, manager)

    assert password not in caplog.text
    for operation in Operation.objects.all():
        assert (
            password
            not in f"{operation.log_text} {operation.error} {operation.reason} {operation.target}"
        )
    client.force_login(superuser)
    pages = [
        reverse("environment-history", args=[pg_environment.slug]),
        reverse("history-csv"),
        reverse("admin:environments_databaseaccount_change", args=[account.pk]),
        reverse("admin:environments_databaseaccount_changelist"),
        reverse("admin:environments_operation_changelist"),
    ] + [
        reverse("operation-detail", args=[pg_environment.slug, op.activity_id])
        for op in Operation.objects.all()
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert password.encode() not in content, url


def test_history_records_who_why_level_and_how_it_ended(
    client, pg_environment, manager, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    revoke_and_drop(pg_environment, account, manager)
    client.force_login(manager)
    response = client.get(reverse("history-csv"), {"type": "access"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    activities = {row[2]: row for row in rows[1:]}
    granted = activities[f"Request access: Read account {account.username}"]
    revoked = activities[f"Revoke access: Read account {account.username}"]
    assert granted[9] == "mona" and granted[10] == "investigate"
    assert revoked[9] == "mona" and "Revoked" in revoked[10]


def test_request_is_refused_while_another_operation_runs(project, manager, start):
    environment = make_environment(project)
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    with pytest.raises(OperationRefused) as refused:
        request_access(environment, manager, level="read", reason="x")
    assert refused.value.code == OperationRefused.BUSY
    assert not DatabaseAccount.objects.exists()


def test_request_access_form_requires_a_level_and_a_reason(client, environment, manager):
    client.force_login(manager)
    url = reverse("environment-maintain", args=[environment.slug, "request_access"])
    response = client.post(url, {"level": "", "reason": ""}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 400
    assert "Choose Read or Read-write access." in body and "Give a reason" in body
    response = client.post(url, {"level": "superuser", "reason": "x"}, **HTMX)
    assert response.status_code == 400
    assert not DatabaseAccount.objects.exists()


def test_team_member_may_not_request_access(client, environment, member):
    client.force_login(member)
    url = reverse("environment-maintain", args=[environment.slug, "request_access"])
    assert client.post(url, {"level": "read", "reason": "x"}).status_code == 403
    assert ">Request access</a>" not in client.get(environment.get_absolute_url()).content.decode()


def test_the_server_stores_a_scram_verifier_of_the_shown_password_never_the_password(
    client, pg_environment, manager, dropped_roles
):
    import base64

    from environments.drivers.postgres import scram_verifier

    account = grant(pg_environment, manager, "read")
    client.force_login(manager)
    password = shown_credentials(client, pg_environment)["password"]
    with as_superuser() as admin:
        (stored,) = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [account.username]
        ).fetchone()
    assert password not in stored
    method, rest = stored.split("$", 1)
    iterations_salt = rest.split("$")[0]
    iterations, salt = iterations_salt.split(":")
    assert method == "SCRAM-SHA-256"
    assert stored == scram_verifier(
        password, salt=base64.b64decode(salt), iterations=int(iterations)
    )
    revoke_and_drop(pg_environment, account, manager)


@pytest.fixture
def password_server():
    """A PostgreSQL cluster of the test's own whose TCP logins must give their password
    (SCRAM-SHA-256), unlike this machine's, which trusts 127.0.0.1."""
    from tests.live import ThrowawayPostgres

    server = ThrowawayPostgres(password=secrets.token_urlsafe(16))
    try:
        server.init(database="jit_target")
        # The driver's role as docs/drivers.md sets it up, with a password of its own.
        server.driver_password = secrets.token_urlsafe(16)
        with psycopg.connect(server.url, autocommit=True) as db:
            db.execute("CREATE ROLE erp_owner NOLOGIN")
            db.execute("ALTER DATABASE jit_target OWNER TO erp_owner")
            db.execute("ALTER SCHEMA public OWNER TO erp_owner")
            db.execute("SET ROLE erp_owner")
            db.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
            db.execute("INSERT INTO orders VALUES (1, 'widget')")
            db.execute("RESET ROLE")
            db.execute(
                f"CREATE ROLE portal_jit LOGIN CREATEROLE PASSWORD '{server.driver_password}'"
            )
            db.execute("GRANT erp_owner TO portal_jit")
            for name in ("postgres", "template1"):  # a login may connect to its own alone
                db.execute(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
            db.execute("GRANT CONNECT ON DATABASE postgres TO portal_jit")
        yield server
    finally:
        server.destroy()


def test_the_shown_password_logs_in_and_a_wrong_one_does_not(
    client, project, manager, password_server, settings, monkeypatch
):
    settings.PORTAL_DATABASE_DRIVER = "postgres"
    monkeypatch.setenv(
        "PORTAL_DB_SERVER_LOCKED_URL",
        f"postgres://portal_jit:{password_server.driver_password}"
        f"@127.0.0.1:{password_server.port}/postgres",
    )
    environment = make_environment(project, database_server="locked")
    environment.database_name = "jit_target"
    environment.save(update_fields=["database_name"])
    account = grant(environment, manager, "read")
    client.force_login(manager)
    credentials = shown_credentials(client, environment)
    assert (credentials["host"], credentials["port"]) == ("127.0.0.1", str(password_server.port))

    with connect_as(credentials) as connection:
        assert connection.execute("SELECT item FROM orders").fetchall() == [("widget",)]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_as({**credentials, "password": credentials["password"][:-1] + "?"})

    revoke_and_drop_on(password_server, environment, account, manager)


def revoke_and_drop_on(server, environment, account, user):
    with committing():
        revoke_access(account, user)
    run_worker()
    with psycopg.connect(server.url, autocommit=True) as admin:
        assert not admin.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", [account.username]
        ).fetchone()


@pytest.mark.parametrize(
    "value, host, port",
    [
        ("db.contoso.net", "db.contoso.net", 5432),
        ("db.contoso.net:6432", "db.contoso.net", 6432),
        ("[2001:db8::5]:6432", "2001:db8::5", 6432),
        ("db:abc", None, 5432),  # not a port: said, not a 500
    ],
)
def test_the_address_people_connect_to_comes_from_the_host_setting(
    environment, monkeypatch, value, host, port
):
    from environments.drivers.database import server_address

    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_HOST", value)
    address = server_address(environment)
    assert (address["host"], address["port"]) == (host, port)
