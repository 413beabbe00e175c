"""A temporary database login reaches its environment's database and nothing else.

Issue #14: a login could read every database of its server (the portal's own sessions
and password hashes among them), and on revoke its objects passed to the admin role, so
a function it left behind made the next login a superuser. The driver connects as a
role without superuser here (tests/pg_roles.py), as docs/drivers.md sets one up.
"""

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from environments.drivers.postgres import group_role
from environments.models import Operation, OperationKind, Outcome
from environments.operations import request_access
from tests import pg_roles
from tests.conftest import committing, run_worker
from tests.pg_roles import (
    as_owner,
    as_superuser,
    connect_as,
    grant,
    is_superuser,
    revoke_and_drop,
    role_exists,
    shown_credentials,
    url,
)

# The PostgreSQL fixtures of tests/pg_roles.py, used by name.
driver_role = pg_roles.driver_role
target_database = pg_roles.target_database
pg_environment = pg_roles.pg_environment
dropped_roles = pg_roles.dropped_roles
other_database = pg_roles.other_database

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the portal's own database is on this server only when the suite runs on PostgreSQL",
)


def login(client, user, environment):
    client.force_login(user)
    return shown_credentials(client, environment)


def failed_grant(environment, user, level="read"):
    """Request access and let the worker try: the grant must fail; its operation."""
    with committing():
        operation = request_access(environment, user, level=level, reason="investigate")
    run_worker()
    operation.refresh_from_db()
    assert operation.outcome == Outcome.FAILED
    return operation


def test_a_read_login_cannot_read_another_database_on_its_server(
    client, pg_environment, manager, other_database, dropped_roles
):
    grant(pg_environment, manager, "read")
    credentials = login(client, manager, pg_environment)
    with (
        connect_as({**credentials, "database": other_database}) as other,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        other.execute("SELECT token FROM secret")


def test_a_read_write_login_cannot_read_or_write_another_database_on_its_server(
    client, pg_environment, manager, other_database, dropped_roles
):
    grant(pg_environment, manager, "read_write")
    credentials = login(client, manager, pg_environment)
    with connect_as({**credentials, "database": other_database}) as other:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("SELECT token FROM secret")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("UPDATE secret SET token = 'mine'")


@pytest.mark.parametrize("level", ["read", "read_write"])
def test_a_login_belongs_to_its_databases_group_role_and_no_other(
    pg_environment, manager, level, dropped_roles
):
    account = grant(pg_environment, manager, level)
    with as_superuser() as admin:
        groups = admin.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            [account.username],
        ).fetchall()
    assert groups == [(group_role(pg_environment.database_name, level),)]


@on_postgresql
def test_a_login_cannot_read_sessions_or_password_hashes_in_the_portals_database(
    client, pg_environment, manager, dropped_roles
):
    grant(pg_environment, manager, "read_write")
    portal = {
        **login(client, manager, pg_environment),
        "database": settings.DATABASES["default"]["NAME"],
    }
    with connect_as(portal) as own:
        for query in (
            "SELECT session_data FROM django_session",
            "SELECT password FROM auth_user WHERE is_superuser",
            "UPDATE auth_user SET is_superuser = true",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                own.execute(query)


@on_postgresql
@pytest.mark.parametrize(
    "server",
    [
        "127.0.0.1:5432",  # as the settings name it
        "portal-db.example:5432?hostaddr=127.0.0.1",  # another name: the server's start time
    ],
)
def test_an_environment_on_the_portals_own_database_is_refused_and_nothing_created(
    pg_environment, manager, driver_role, server, monkeypatch, dropped_roles
):
    name = settings.DATABASES["default"]["NAME"]
    hostport, _, query = server.partition("?")
    monkeypatch.setenv(
        "PORTAL_DB_SERVER_LOCAL_URL",
        f"postgres://{driver_role}@{hostport}/postgres" + (f"?{query}" if query else ""),
    )
    pg_environment.database_name = name
    pg_environment.save(update_fields=["database_name"])

    operation = failed_grant(pg_environment, manager, "read_write")

    assert "is the portal's own database" in operation.error
    assert not role_exists(operation.database_account.username)
    assert not role_exists(group_role(name, "read_write"))


@pytest.mark.parametrize(
    "opening",
    [
        ("GRANT SELECT ON secret TO PUBLIC", "use table public.secret in database {}"),
        (
            "GRANT CREATE ON SCHEMA public TO PUBLIC",
            "create objects in schema public in database {}",
        ),
    ],
    ids=["a table granted to PUBLIC", "a schema PUBLIC may create in"],
)
def test_a_login_that_could_reach_another_database_is_dropped_and_the_grant_fails(
    pg_environment, manager, other_database, opening, dropped_roles
):
    statement, finding = opening
    group = group_role(pg_environment.database_name, "read")
    with as_superuser() as admin:
        # Only this test's logins may connect there, so that no other test run on
        # this server meets what is opened to PUBLIC.
        admin.execute(f'CREATE ROLE "{group}" NOLOGIN')
        admin.execute(f'REVOKE CONNECT ON DATABASE "{other_database}" FROM PUBLIC')
        admin.execute(f'GRANT CONNECT ON DATABASE "{other_database}" TO "{group}"')
    with as_superuser(other_database) as other:
        other.execute(statement)

    operation = failed_grant(pg_environment, manager, "read")

    assert finding.format(other_database) in operation.error
    assert "it was dropped again" in operation.error
    assert not role_exists(operation.database_account.username)


def test_a_database_where_public_may_create_is_refused_before_anything_is_created(
    pg_environment, manager, dropped_roles
):
    name = pg_environment.database_name
    with as_superuser(name) as db:
        db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")

    operation = failed_grant(pg_environment, manager, "read_write")

    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in operation.error
    assert not role_exists(operation.database_account.username)
    assert not role_exists(group_role(name, "read_write"))


def test_a_login_may_not_create_tables_or_schemas(client, pg_environment, manager, dropped_roles):
    grant(pg_environment, manager, "read_write")
    with connect_as(login(client, manager, pg_environment)) as db:
        for statement in ("CREATE TABLE notes (body text)", "CREATE SCHEMA mine"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)


def test_tables_the_owner_creates_later_are_readable_and_writable_by_a_login_granted_before(
    client, pg_environment, manager, dropped_roles
):
    grant(pg_environment, manager, "read_write")
    with as_owner(pg_environment.database_name) as owner:
        owner.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total int)")
        owner.execute("CREATE SCHEMA archive")
        owner.execute("CREATE TABLE archive.orders (id int)")
    with connect_as(login(client, manager, pg_environment)) as db:
        db.execute("INSERT INTO invoices (total) VALUES (42)")
        assert db.execute("SELECT total FROM invoices").fetchall() == [(42,)]
        assert db.execute("SELECT count(*) FROM archive.orders").fetchone() == (0,)


PROMOTE = """
CREATE FUNCTION public.promote() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
END $$"""


@pytest.mark.parametrize("admin", ["driver role", "superuser"])
def test_what_a_login_created_is_dropped_with_it_never_handed_to_the_admin_role(
    client, pg_environment, manager, owner, admin, monkeypatch, dropped_roles
):
    if admin == "superuser":
        monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_URL", url("postgres"))
    name = pg_environment.database_name
    first = grant(pg_environment, manager, "read_write")
    with as_superuser(name) as db:  # as on PostgreSQL 14 and older, after the grant
        db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    with connect_as(login(client, manager, pg_environment)) as db:
        db.execute(PROMOTE)

    revoke_and_drop(pg_environment, first, manager)

    with as_superuser(name) as db:
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    second = grant(pg_environment, owner, "read_write")
    with (
        connect_as(login(client, owner, pg_environment)) as db,
        pytest.raises(psycopg.errors.UndefinedFunction),
    ):
        db.execute("SELECT public.promote()")
    assert not is_superuser(second.username)
    with as_superuser(name) as db:
        assert not db.execute("SELECT 1 FROM pg_proc WHERE proname = 'promote'").fetchone()


def test_the_grant_log_names_the_checked_databases_never_the_password(
    client, pg_environment, manager, other_database, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    password = login(client, manager, pg_environment)["password"]
    log = Operation.objects.get(kind=OperationKind.REQUEST_ACCESS).log
    assert f"check what {account.username} may do in {other_database}" in log
    assert f"ALTER ROLE {account.username} LOGIN" in log
    assert password not in log
