"""A temporary database login reaches its environment's database and nothing else.

A login must not read other databases of its server (the portal's own sessions and
password hashes among them), nor even connect to them: there it could call a public
SECURITY DEFINER function, or leave a large object that keeps it from being dropped. On
revoke its objects must not pass to the admin role, or a function it left behind could
make the next login a superuser. The driver connects as a role without superuser here
(tests/pg_roles.py), as docs/drivers.md sets one up.
"""

import psycopg
import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.db import connection

from environments.checks import check_database_driver_roles
from environments.drivers.base import OperationLog
from environments.drivers.database import LoginNotDropped
from environments.drivers.postgres import PostgresDatabaseDriver, group_role
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
# The machine's server, where the portal's own database and other runs' are, open to
# PUBLIC (tests/pg_roles.py): for the driver_role fixture, and all built on it.
on_the_shared_server = pytest.mark.parametrize("driver_role", ["shared"], indirect=True)


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


def open_to_public(database):
    """What CREATE DATABASE leaves: PUBLIC may connect."""
    with as_superuser() as admin:
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC')


@pytest.mark.parametrize("level", ["read", "read_write"])
def test_a_login_cannot_connect_to_another_database_on_its_server(
    client, pg_environment, manager, other_database, level, dropped_roles
):
    grant(pg_environment, manager, level)
    credentials = {**login(client, manager, pg_environment), "database": other_database}
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_as(credentials)  # so neither its tables nor its peek() can be reached


def test_a_login_is_refused_while_another_database_admits_public_and_granted_once_revoked(
    client, pg_environment, manager, other_database, dropped_roles
):
    open_to_public(other_database)

    operation = failed_grant(pg_environment, manager)

    assert f"REVOKE CONNECT ON DATABASE {other_database} FROM PUBLIC;" in operation.error
    assert "it was dropped again" in operation.error
    assert not role_exists(operation.database_account.username)

    with as_superuser() as admin:  # the set-up of docs/drivers.md
        admin.execute(f'REVOKE CONNECT ON DATABASE "{other_database}" FROM PUBLIC')
    grant(pg_environment, manager, "read")
    credentials = {**login(client, manager, pg_environment), "database": other_database}
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_as(credentials)


@on_the_shared_server
def test_on_a_server_whose_databases_admit_public_a_login_is_refused_naming_each_revoke(
    pg_environment, manager, dropped_roles
):
    operation = failed_grant(pg_environment, manager, "read_write")

    assert "REVOKE CONNECT ON DATABASE " in operation.error
    databases = ["postgres", "template1"]
    if connection.vendor == "postgresql":  # the portal's, with its sessions and password hashes
        databases.append(settings.DATABASES["default"]["NAME"])
    for database in databases:
        assert f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC;" in operation.log_text
    assert not role_exists(operation.database_account.username)


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
@on_the_shared_server
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
        (
            'GRANT CONNECT ON DATABASE "{other}" TO "{group}"',
            "connect to database {other} (through a role it is a member of)",
        ),
        (
            'GRANT CREATE ON SCHEMA public TO "{group}"',
            "create objects in schema public in database {target}",
        ),
    ],
    ids=["its group may connect to another database", "its group may create in its own"],
)
def test_a_login_that_could_reach_beyond_its_database_is_dropped_and_the_grant_fails(
    pg_environment, manager, other_database, opening, dropped_roles
):
    statement, finding = opening
    names = {
        "other": other_database,
        "target": pg_environment.database_name,
        "group": group_role(pg_environment.database_name, "read"),
    }
    with as_superuser() as admin:
        admin.execute(f'CREATE ROLE "{names["group"]}" NOLOGIN')
    with as_superuser(pg_environment.database_name) as db:
        db.execute(statement.format(**names))

    operation = failed_grant(pg_environment, manager, "read")

    assert finding.format(**names) in operation.error
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


def test_the_grant_log_shows_the_check_never_the_password(
    client, pg_environment, manager, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    password = login(client, manager, pg_environment)["password"]
    log = Operation.objects.get(kind=OperationKind.REQUEST_ACCESS).log_text
    assert f"list the other databases {account.username} can connect to" in log
    assert f"ALTER ROLE {account.username} LOGIN" in log
    assert password not in log


def large_objects(database):
    with as_superuser(database) as db:
        return db.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]


def test_a_login_with_large_objects_in_its_own_and_another_database_is_dropped(
    client, pg_environment, manager, other_database, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    open_to_public(other_database)  # after the grant: a database created since, say
    credentials = login(client, manager, pg_environment)
    for database in (pg_environment.database_name, other_database):
        with connect_as({**credentials, "database": database}) as db:
            db.execute("SELECT lo_create(0)")

    revoke_and_drop(pg_environment, account, manager)

    assert large_objects(pg_environment.database_name) == large_objects(other_database) == 0


def test_a_large_object_the_admin_role_cannot_reach_keeps_the_login_and_the_error_names_the_fix(
    client, pg_environment, manager, driver_role, other_database, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    open_to_public(other_database)
    with connect_as({**login(client, manager, pg_environment), "database": other_database}) as db:
        db.execute("SELECT lo_create(0)")
    with as_superuser() as admin:  # the set-up of docs/drivers.md, done after the grant
        admin.execute(f'REVOKE CONNECT ON DATABASE "{other_database}" FROM PUBLIC')
    driver = PostgresDatabaseDriver(pg_environment, OperationLog())

    with pytest.raises(LoginNotDropped) as kept:
        driver.drop_database_account(account)

    assert kept.value.databases == [other_database]
    assert f'GRANT CONNECT ON DATABASE "{other_database}" TO "{driver_role}";' in str(kept.value)
    assert role_exists(account.username)
    with as_superuser() as admin:
        admin.execute(f'GRANT CONNECT ON DATABASE "{other_database}" TO "{driver_role}"')
    driver.drop_database_account(account)  # as the sweeper's next retry does
    assert not role_exists(account.username)
    assert large_objects(other_database) == 0


def test_a_login_holding_a_privilege_the_admin_role_cannot_revoke_is_kept_and_the_error_says_so(
    pg_environment, manager, other_database, dropped_roles
):
    account = grant(pg_environment, manager, "read")
    with as_superuser() as admin:
        admin.execute(f'GRANT CONNECT ON DATABASE "{other_database}" TO "{account.username}"')
    driver = PostgresDatabaseDriver(pg_environment, OperationLog())

    with pytest.raises(LoginNotDropped) as kept:
        driver.drop_database_account(account)

    assert kept.value.databases == [other_database]
    assert f'as a superuser, run DROP OWNED BY "{account.username}";' in str(kept.value)
    with as_superuser(other_database) as db:
        db.execute(f'DROP OWNED BY "{account.username}"')
    driver.drop_database_account(account)
    assert not role_exists(account.username)


def with_driver_url(settings, monkeypatch, server_url, driver="postgres"):
    settings.PORTAL_DATABASE_DRIVER = driver
    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_URL", server_url)


def environments_warnings(deploy):
    return [m.id for m in run_checks(include_deployment_checks=deploy) if "environments." in m.id]


def test_the_deploy_check_warns_of_a_createrole_driver_role_before_postgresql_16(
    driver_role, settings, monkeypatch
):
    with as_superuser() as admin:
        if admin.info.server_version >= 160000:
            pytest.skip("from PostgreSQL 16 CREATEROLE may grant only the roles it administers")
    with psycopg.connect(url("postgres", user=driver_role), autocommit=True) as role:
        role.execute("GRANT pg_execute_server_program TO CURRENT_USER")  # why it warns
    with_driver_url(settings, monkeypatch, url("postgres", user=driver_role))

    [warning] = check_database_driver_roles()

    assert warning.id == "environments.W001"
    assert driver_role in warning.msg and "pg_execute_server_program" in warning.msg
    assert "environments.W001" in environments_warnings(deploy=True)
    assert environments_warnings(deploy=False) == []  # plain `manage.py check`


@pytest.mark.parametrize("case", ["simulated driver", "no CREATEROLE"])
def test_the_deploy_check_is_silent_when_the_driver_is_not_postgres_or_its_role_cannot_create_roles(
    driver_role, settings, monkeypatch, case
):
    if case == "no CREATEROLE":
        with as_superuser() as admin:
            admin.execute(f'ALTER ROLE "{driver_role}" NOCREATEROLE')
    driver = "simulated" if case == "simulated driver" else "postgres"
    with_driver_url(settings, monkeypatch, url("postgres", user=driver_role), driver)

    assert check_database_driver_roles() == []


def test_the_deploy_check_warns_of_a_superuser_driver_role(driver_role, settings, monkeypatch):
    with_driver_url(settings, monkeypatch, url("postgres"))
    assert [w.id for w in check_database_driver_roles()] == ["environments.W002"]


def test_the_deploy_check_says_when_a_server_cannot_be_checked_without_showing_its_url(
    settings, monkeypatch
):
    from tests.live import free_port

    with_driver_url(
        settings, monkeypatch, f"postgres://portal_jit:s3cr3t@127.0.0.1:{free_port()}/x"
    )

    [warning] = check_database_driver_roles()

    assert warning.id == "environments.W003"
    assert "PORTAL_DB_SERVER_LOCAL_URL" in warning.msg and "s3cr3t" not in warning.msg
