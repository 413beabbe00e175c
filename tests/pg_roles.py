"""The PostgreSQL cast of the database access tests, on a real server.

The server is a cluster of this test run's own (isolated_server), set up as
docs/drivers.md says: no database admits PUBLIC. The machine's shared server cannot be
set up so, because other runs' databases come and go there, open to PUBLIC, and a
test must not revoke what it did not create; a test that wants to see what the driver
does there parametrizes ``driver_role`` indirectly with "shared".

The driver connects as a role without superuser, set up as docs/drivers.md says:
CREATEROLE, CONNECT on the database of its connection string, and membership of the
role that owns the environment's database. Tests check what happened through the
superuser connection. Every role and database made here is dropped afterwards, also
when the test fails.
"""

import functools
import os
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from environments.drivers.postgres import group_role
from environments.models import AccessLevel, DatabaseAccount, Outcome
from environments.operations import request_access, revoke_access
from tests.conftest import committing, make_environment, run_worker
from tests.live import ThrowawayPostgres

SHARED_URL = os.environ.get(
    "PORTAL_TEST_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
# The superuser's connection to the server of the test at hand (driver_role sets it).
SUPERUSER_URL = SHARED_URL
RUN = os.getpid()


@functools.cache
def isolated_server(config):
    """The superuser's URL of this run's own cluster, started at its first use and
    removed at the end of the run, where PUBLIC may connect to no database."""
    server = ThrowawayPostgres()
    config.add_cleanup(server.destroy)
    server.init(database="elsewhere")  # a database no login is granted
    superuser = make_conninfo(server.url, dbname="postgres")
    with psycopg.connect(superuser, autocommit=True) as admin:
        names = admin.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
        for (name,) in names:
            admin.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    return superuser


def url(database=None, user=None):
    """The superuser's connection string, for another database or user."""
    changes = {"dbname": database, "user": user}
    return make_conninfo(SUPERUSER_URL, **{k: v for k, v in changes.items() if v})


@contextmanager
def as_superuser(database=None):
    with psycopg.connect(url(database), autocommit=True) as connection:
        yield connection


def drop_database(name):
    with as_superuser() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_role(name):
    """End the role's sessions, drop what it owns in any database, and drop it."""
    with as_superuser() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
        )
        if not role_exists(name):
            return
        databases = admin.execute(
            "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
            "JOIN pg_roles r ON r.oid = s.refobjid WHERE r.rolname = %s",
            [name],
        ).fetchall()
    for (database,) in databases:
        with as_superuser(database) as db:
            db.execute(f'DROP OWNED BY "{name}"')
    with as_superuser() as admin:
        admin.execute(f'DROP OWNED BY "{name}"')
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def role_exists(name):
    with as_superuser() as admin:
        return bool(admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone())


def is_superuser(name):
    with as_superuser() as admin:
        row = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    return bool(row and row[0])


@pytest.fixture
def driver_role(request, monkeypatch):
    """The driver's own role: CREATEROLE, no superuser, CONNECT on the database its
    connection string names. On this run's own cluster, or on the machine's shared
    server when parametrized (indirectly) with "shared"."""
    shared = getattr(request, "param", None) == "shared"
    server = SHARED_URL if shared else isolated_server(request.config)
    monkeypatch.setattr(f"{__name__}.SUPERUSER_URL", server)
    name = f"jit_driver_{RUN}"
    drop_role(name)
    with as_superuser() as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE')
        admin.execute(f'GRANT CONNECT ON DATABASE postgres TO "{name}"')
    try:
        yield name
    finally:
        drop_role(name)


@pytest.fixture
def target_database(driver_role):
    """The environment's database, owned by its application's role (of which the
    driver's role is a member), with a table in it."""
    name, owner = f"jit_target_{RUN}", f"jit_owner_{RUN}"
    groups = [group_role(name, level) for level in AccessLevel.values]
    try:
        drop_database(name)
        with as_superuser() as admin:
            admin.execute(f'CREATE ROLE "{owner}" NOLOGIN')
            admin.execute(f'GRANT "{owner}" TO "{driver_role}"')
            admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        with as_owner(name) as db:
            db.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text)")
            db.execute("INSERT INTO orders (item) VALUES ('widget'), ('gadget')")
        yield name
    finally:
        drop_database(name)
        for role in [*groups, owner]:
            drop_role(role)


@contextmanager
def as_owner(database):
    """The database's owner at work: the application creating its tables."""
    with as_superuser(database) as db:
        db.execute(f'SET ROLE "jit_owner_{RUN}"')
        yield db


@pytest.fixture
def pg_environment(project, target_database, driver_role, settings, monkeypatch):
    settings.PORTAL_DATABASE_DRIVER = "postgres"
    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_URL", url("postgres", user=driver_role))
    return make_environment(project, database_server="local", database_name=target_database)


@pytest.fixture
def dropped_roles(db, driver_role):
    """Drop every login the test made, so none outlives it."""
    yield
    for username in DatabaseAccount.objects.values_list("username", flat=True):
        drop_role(username)


@pytest.fixture
def other_database(driver_role):
    """Another database on the same server, set up as docs/drivers.md says (PUBLIC may
    not connect), with a secret table nobody was granted and a function anybody may
    call that reads it with its owner's rights."""
    name = f"jit_other_{RUN}"
    drop_database(name)
    try:
        with as_superuser() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            admin.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
        with as_superuser(name) as db:
            db.execute("CREATE TABLE secret (token text)")
            db.execute("INSERT INTO secret VALUES ('s3cr3t')")
            db.execute(
                "CREATE FUNCTION peek() RETURNS text LANGUAGE sql SECURITY DEFINER "
                "AS 'SELECT token FROM secret'"
            )
        yield name
    finally:
        drop_database(name)


# The database access tests' steps, shared with tests/test_postgres_driver_isolation.py.


def grant(environment, user, level, lifetime=None):
    with committing():
        operation = request_access(
            environment, user, level=level, reason="investigate", lifetime=lifetime
        )
    run_worker()
    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED, operation.error
    return DatabaseAccount.objects.get(pk=operation.database_account_id)


def shown_credentials(client, environment):
    """What the requester sees behind the details page's Show credentials link, read
    back from the HTML."""
    from html.parser import HTMLParser

    values = {}

    class Reader(HTMLParser):
        field = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            testid = attrs.get("data-testid", "")
            if testid == "show-credentials":
                values.setdefault("link", attrs["href"])
            self.field = (
                testid.removeprefix("credential-") if testid.startswith("credential-") else None
            )

        def handle_data(self, data):
            if self.field:
                values[self.field] = data.strip()
                self.field = None

    Reader().feed(client.get(environment.get_absolute_url()).content.decode())
    if "password" not in values and "link" in values:
        Reader().feed(client.get(values["link"]).content.decode())
    values.pop("link", None)
    return values


def connect_as(credentials):
    return psycopg.connect(
        host=credentials["host"],
        port=credentials["port"],
        dbname=credentials["database"],
        user=credentials["username"],
        password=credentials["password"],
        connect_timeout=5,
        autocommit=True,
    )


def revoke_and_drop(environment, account, user):
    with committing():
        revoke_access(account, user)
    run_worker()
    assert not role_exists(account.username)
