"""Real just-in-time database accounts on PostgreSQL.

A login reaches its environment's database and nothing else on the server. It gets
CONNECT on that database and membership of the database's group role for its level
(``jit_<database>_ro`` or ``_rw``), which holds USAGE on the schemas there, rights on
the tables and sequences, and default privileges for what the database's owner creates
later. Nothing server-wide (pg_read_all_data covers every database), and never CREATE:
what a login creates, others might run.

Create refuses, before creating anything, the portal's own database and a database
where PUBLIC may create objects. The login is created NOLOGIN and only allowed to log
in once checked: it must be able to connect to no database but its own, and may CREATE
nothing there. A login that fails the check is dropped and the grant fails.

Drop: refuse new logins, end the role's open sessions (VALID UNTIL alone leaves them
running), DROP OWNED in every database where it owns something, and drop it. Never
REASSIGN OWNED: a login's function handed to the admin role would run with the admin's
rights.

Every step is logged, and a failed one is tried again with the whole action (each
statement is safe to run twice), so a passing hiccup never leaves a role behind. The
password never reaches the log, nor the server: the role is created with a
SCRAM-SHA-256 verifier computed here. The admin role needs no superuser (see
docs/drivers.md, and why its server should be PostgreSQL 16 or newer): CREATEROLE,
CONNECT on the database of its URL, and membership of each environment database's owner.
"""

import base64
import hashlib
import hmac
import os

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from environments.drivers.base import DriverError, TryAgain
from environments.drivers.database import LoginNotDropped, admin_url
from environments.models import AccessLevel

SCRAM_ITERATIONS = 4096
# A failed connection or statement is tried again after this long (environments.operations
# tries an action a few times before it fails).
RETRY_SECONDS = 2
CONNECT_TIMEOUT = 10
# Enough of a failed check's findings to act on; the log has them all.
FINDINGS_SHOWN = 5

PRIVILEGES = {  # level: (on tables, on sequences)
    AccessLevel.READ: ("SELECT", "SELECT"),
    AccessLevel.READ_WRITE: ("SELECT, INSERT, UPDATE, DELETE", "SELECT, USAGE, UPDATE"),
}

# The REVOKE statements that stop PUBLIC creating objects in the current database.
PUBLIC_MAY_CREATE = """
SELECT ARRAY(
    SELECT format('REVOKE CREATE ON DATABASE %I FROM PUBLIC;', current_database())
    WHERE has_database_privilege('public', current_database(), 'CREATE')
    UNION ALL
    SELECT format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC;', nspname) FROM pg_namespace
    WHERE has_schema_privilege('public', oid, 'CREATE')
)"""

# The other databases a login can connect to. In any of them it could call a public
# SECURITY DEFINER function, or leave large objects that keep its role from being
# dropped; each comes with the statement that closes it when PUBLIC is the way in.
OTHER_DATABASES = """
SELECT ARRAY(
    SELECT format('connect to database %I', datname)
        || CASE WHEN has_database_privilege('public', oid, 'CONNECT')
                THEN format(' (REVOKE CONNECT ON DATABASE %I FROM PUBLIC;)', datname)
                ELSE ' (through a role it is a member of)' END
    FROM pg_database
    WHERE datallowconn AND datname <> {1} AND has_database_privilege({0}, oid, 'CONNECT')
    ORDER BY datname
)"""

# What a login may create in the current database (its own): nothing.
MAY_CREATE = """
SELECT ARRAY(
    SELECT 'create schemas'
    WHERE has_database_privilege({0}, current_database(), 'CREATE')
    UNION ALL
    SELECT format('create objects in schema %I', nspname) FROM pg_namespace
    WHERE has_schema_privilege({0}, oid, 'CREATE')
)"""

# The databases where something still depends on a role, which DROP ROLE refuses on:
# objects in them, or privileges on them (shared objects, listed under dbid 0).
DEPENDS_IN = """
SELECT ARRAY(
    SELECT DISTINCT d.datname::text FROM pg_shdepend s
    JOIN pg_database d ON d.oid = s.dbid
        OR (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND d.oid = s.objid)
    WHERE s.refclassid = 'pg_authid'::regclass
      AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = {0})
    ORDER BY 1
)"""

# Whether the admin role may connect to a database, which exists (None when it is gone).
MAY_CONNECT = """
SELECT has_database_privilege(oid, 'CONNECT') FROM pg_database
WHERE datname = {0} AND datallowconn"""


def group_role(database, level):
    """The group role that holds ``level`` on ``database``: jit_orders_ro, jit_orders_rw.

    The fixed suffix keeps it apart from logins (jit_<user>_<8 hex digits>)."""
    suffix = "rw" if level == AccessLevel.READ_WRITE else "ro"
    name = f"jit_{database}_{suffix}"
    if len(name.encode()) > 63:  # PostgreSQL would cut it, and two databases could share it
        head = database.encode()[:40].decode(errors="ignore")
        name = f"jit_{head}_{hashlib.sha256(database.encode()).hexdigest()[:8]}_{suffix}"
    return name


class PostgresDatabaseDriver:
    name = "postgres"

    def __init__(self, environment, log):
        self.environment = environment
        self.log = log
        self.url = admin_url(environment.database_server)

    def create_database_account(self, account, password):
        name, username = self.environment.database_name, account.username
        role, group = sql.Identifier(username), group_role(name, account.level)
        if self._is_portal_database():
            raise DriverError(self._portal_refusal())
        with self._connect(name) as database:
            if self._is_portal_database(database):
                raise DriverError(self._portal_refusal())
            revokes = self._step(
                database, f"ask whether PUBLIC may create in {name}", PUBLIC_MAY_CREATE, fetch=True
            )
            if revokes:
                raise DriverError(
                    f"PUBLIC may create objects in database {name}, so a login could leave a "
                    "function there that runs with the rights of whoever calls it. Run "
                    f"{' '.join(revokes)} in {name}, then request access again."
                )
            self._grant_to_group(database, group, account.level)
            verb = "ALTER" if self._role_exists(database, username) else "CREATE"
            self._step(  # NOLOGIN until it passes the check below
                database,
                f"{verb} ROLE {username} NOLOGIN PASSWORD '********' "
                f"VALID UNTIL '{account.expires_at.isoformat()}'",
                verb + " ROLE {} NOLOGIN PASSWORD {} VALID UNTIL {} CONNECTION LIMIT 10",
                role,
                sql.Literal(scram_verifier(password)),
                sql.Literal(account.expires_at.isoformat()),
            )
            self._admin_of(database, username)
            self._step(
                database,
                f"GRANT CONNECT ON DATABASE {name} TO {username}",
                "GRANT CONNECT ON DATABASE {} TO {}",
                sql.Identifier(name),
                role,
            )
            self._step(
                database,
                f"GRANT {group} TO {username}",
                "GRANT {} TO {}",
                sql.Identifier(group),
                role,
            )
            findings = self._reach(database, username)
            if not findings:
                self._step(database, f"ALTER ROLE {username} LOGIN", "ALTER ROLE {} LOGIN", role)
                return
        for finding in findings:
            self.log.write(f"{username} could {finding}")
        self.drop_database_account(account)
        more = len(findings) - FINDINGS_SHOWN
        raise DriverError(
            f"{username} could reach beyond {name}, so it was dropped again: it could "
            + "; ".join(findings[:FINDINGS_SHOWN])
            + (f"; and {more} more (see the log)" if more > 0 else "")
            + ". Run each REVOKE named as the database's owner or a superuser (and revoke "
            "any other grant that lets it), then request access again."
        )

    def drop_database_account(self, account):
        username = account.username
        role = sql.Identifier(username)
        with self._connect() as connection:
            if not self._role_exists(connection, username):
                self.log.write(f"role {username} is already gone")
                return
            self._admin_of(connection, username)
            self._step(connection, f"ALTER ROLE {username} NOLOGIN", "ALTER ROLE {} NOLOGIN", role)
            ended = self._step(
                connection,
                f"end the open sessions of {username}",
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = {}",
                sql.Literal(username),
                fetch=True,
            )
            self.log.write(f"ended {ended} open session(s) of {username}")
            # What the login made goes with it, and its privileges (DROP OWNED in any one
            # database also revokes those on the databases themselves). Besides its own
            # database, it may own large objects in another it could connect to once (before
            # PUBLIC's CONNECT was revoked there, or one created since), and DROP ROLE fails
            # while they exist: so every database pg_shdepend names is cleaned too.
            databases = [self.environment.database_name, *self._depends_in(connection, username)]
            closed = []
            for name in dict.fromkeys(databases):
                if not self._step(
                    connection,
                    f"ask whether the admin role may connect to {name}",
                    MAY_CONNECT,
                    sql.Literal(name),
                    fetch=True,
                ):
                    closed.append(name)
                    continue
                with self._connect(name) as database:
                    self._step(
                        database,
                        f"DROP OWNED BY {username} in {name}",
                        "DROP OWNED BY {}",
                        role,
                    )
            remaining = self._depends_in(connection, username)
            if remaining:
                admin = self._step(
                    connection, "ask the admin role's name", "SELECT current_user", fetch=True
                )
                raise LoginNotDropped(username, remaining, admin, closed)
            self._step(connection, f"DROP ROLE {username}", "DROP ROLE IF EXISTS {}", role)

    def _depends_in(self, connection, username):
        return self._step(
            connection,
            f"list the databases where objects depend on {username}",
            DEPENDS_IN,
            sql.Literal(username),
            fetch=True,
        )

    def _grant_to_group(self, database, group, level):
        """Create the group role if need be, and grant it ``level`` on everything in the
        database: again at each grant, so that what other roles made since is covered."""
        name = sql.Identifier(group)
        tables, sequences = PRIVILEGES[level]
        if not self._role_exists(database, group):
            self._step(database, f"CREATE ROLE {group} NOLOGIN", "CREATE ROLE {} NOLOGIN", name)
        schemas = self._step(
            database,
            "list the schemas",
            "SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace "
            "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
            fetch=True,
        )
        if schemas:
            listed = sql.SQL(", ").join(map(sql.Identifier, schemas))
            for what, privileges in (
                ("SCHEMA", "USAGE"),
                ("ALL TABLES IN SCHEMA", tables),
                ("ALL SEQUENCES IN SCHEMA", sequences),
            ):
                self._step(
                    database,
                    f"GRANT {privileges} ON {what} {', '.join(schemas)} TO {group}",
                    f"GRANT {privileges} ON {what} {{}} TO {{}}",
                    listed,
                    name,
                )
        # For what the database's owner creates later. Objects another role creates are
        # covered at the next grant, or by that role's own ALTER DEFAULT PRIVILEGES.
        owner = self._step(
            database,
            "look up the owner of the database",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
            fetch=True,
        )
        for what, privileges in (
            ("SCHEMAS", "USAGE"),
            ("TABLES", tables),
            ("SEQUENCES", sequences),
        ):
            self._step(
                database,
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT {privileges} "
                f"ON {what} TO {group}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} GRANT {privileges} ON {what} TO {{}}",
                sql.Identifier(owner),
                name,
            )

    def _admin_of(self, connection, username):
        """Make the admin role a member of the login: without superuser, that is what
        lets it end the login's sessions and DROP OWNED BY it."""
        self._step(
            connection,
            f"GRANT {username} TO CURRENT_USER",
            "GRANT {} TO CURRENT_USER",
            sql.Identifier(username),
        )

    def _role_exists(self, connection, name):
        return self._step(
            connection,
            f"look for role {name}",
            "SELECT 1 FROM pg_roles WHERE rolname = {}",
            sql.Literal(name),
            fetch=True,
        )

    def _reach(self, database, username):
        """What the login may do beyond using its own database's tables: each finding is
        a reason to drop it. ``database`` is a connection to its own database."""
        others = self._step(
            database,
            f"list the other databases {username} can connect to",
            OTHER_DATABASES,
            sql.Literal(username),
            sql.Literal(self.environment.database_name),
            fetch=True,
        )
        own = self._step(
            database,
            f"check what {username} may create in {self.environment.database_name}",
            MAY_CREATE,
            sql.Literal(username),
            fetch=True,
        )
        return others + [f"{f} in database {self.environment.database_name}" for f in own]

    def _is_portal_database(self, database=None):
        """Whether the environment's database is the portal's own: by the settings, and,
        given a connection to it, by the server's start time (the same server, named
        otherwise)."""
        portal = settings.DATABASES["default"]
        if (
            connections["default"].vendor != "postgresql"
            or portal["NAME"] != self.environment.database_name
        ):
            return False  # a SQLite file, or another database
        server = conninfo_to_dict(self.url)
        if (_host(server.get("host")), int(server.get("port") or 5432)) == (
            _host(portal.get("HOST")),
            int(portal.get("PORT") or 5432),
        ):
            return True
        if database is None:
            return False
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_postmaster_start_time()")
            (started,) = cursor.fetchone()
        return started == self._step(
            database, "ask when the server started", "SELECT pg_postmaster_start_time()", fetch=True
        )

    def _portal_refusal(self):
        return (
            f"Database {self.environment.database_name} on {self.environment.database_server} "
            "is the portal's own database: a login there could read its sessions and password "
            "hashes. Give the environment a database of its own."
        )

    def _connect(self, database=None):
        """A connection to the server (or to one of its databases). One that fails is
        tried again in a later step (TryAgain), never by waiting here."""
        conninfo = make_conninfo(self.url, dbname=database) if database else self.url
        try:
            return psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.OperationalError as exc:
            self.log.write(
                f"connecting to {self.environment.database_server} failed: {_first_line(exc)}"
            )
            raise TryAgain(
                f"Could not connect to database server {self.environment.database_server}: "
                f"{_first_line(exc)}",
                RETRY_SECONDS,
            ) from None

    def _step(self, connection, description, statement, *parts, fetch=False):
        """Run one statement (its {} filled with ``parts``); the description, never the
        SQL, is logged. A statement that fails is tried again with the whole action in a
        later step: each statement is safe to run twice."""
        statement = sql.SQL(statement).format(*parts)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                result = cursor.fetchone() if fetch else None
        except psycopg.Error as exc:
            self.log.write(f"failed: {description}: {_first_line(exc)}")
            raise TryAgain(f"{description} failed: {_first_line(exc)}", RETRY_SECONDS) from None
        self.log.write(f"ok: {description}")
        return result[0] if result else None


def _host(host):
    """One spelling for this machine, so 127.0.0.1, localhost and a socket compare equal."""
    host = (host or "").lower()
    return "localhost" if host in ("", "localhost", "127.0.0.1", "::1") or "/" in host else host


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def scram_verifier(password, *, salt=None, iterations=SCRAM_ITERATIONS):
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, 7677).

    Sent instead of the password, so the server (and its logs) never see the password.
    """
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data):
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
