"""Real just-in-time database accounts on PostgreSQL.

Create: a login role with a random password, VALID UNTIL the expiry, CONNECT on the
environment's database and pg_read_all_data (plus pg_write_all_data for Read-write).
Drop: refuse new logins, end the role's open sessions (VALID UNTIL alone leaves them
running), hand over what it owns in the environment's database and drop it. Every step
is logged and retried, so a passing hiccup never leaves a role behind.

The password never reaches the log, nor the server: the role is created with a
SCRAM-SHA-256 verifier computed here, so even a server that logs statements never
sees it.

pg_read_all_data and pg_write_all_data act on every database of the server, and by
default every role may connect to every database: give each environment's database a
server of its own, or REVOKE CONNECT ... FROM PUBLIC on the others. The driver logs a
warning naming any other database the new role can reach.
"""

import base64
import hashlib
import hmac
import os
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from environments.drivers.base import DriverError
from environments.drivers.database import admin_url
from environments.models import AccessLevel

SCRAM_ITERATIONS = 4096
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
CONNECT_TIMEOUT = 10


class PostgresDatabaseDriver:
    name = "postgres"

    def __init__(self, environment, log):
        self.environment = environment
        self.log = log
        self.url = admin_url(environment.database_server)

    def create_database_account(self, account, password):
        role = sql.Identifier(account.username)
        database = sql.Identifier(self.environment.database_name)
        valid_until = sql.Literal(account.expires_at.isoformat())
        credentials = sql.SQL("LOGIN PASSWORD {} VALID UNTIL {} CONNECTION LIMIT 10").format(
            sql.Literal(scram_verifier(password)), valid_until
        )
        with self._connect() as connection:
            exists = self._step(
                connection,
                f"look for role {account.username}",
                sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = {}").format(
                    sql.Literal(account.username)
                ),
                fetch=True,
            )
            verb = "ALTER" if exists else "CREATE"
            self._step(
                connection,
                f"{verb} ROLE {account.username} LOGIN PASSWORD '********' "
                f"VALID UNTIL '{account.expires_at.isoformat()}'",
                sql.SQL(verb + " ROLE {} " + ("WITH " if exists else "")).format(role)
                + credentials,
            )
            self._step(
                connection,
                f"GRANT CONNECT ON DATABASE {self.environment.database_name}",
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role),
            )
            roles = ["pg_read_all_data"]
            if account.level == AccessLevel.READ_WRITE:
                roles.append("pg_write_all_data")
            for granted in roles:
                self._step(
                    connection,
                    f"GRANT {granted} TO {account.username}",
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), role),
                )
            others = self._step(
                connection,
                f"list the other databases {account.username} can connect to",
                sql.SQL(
                    "SELECT string_agg(datname, ', ' ORDER BY datname) FROM pg_database "
                    "WHERE datallowconn AND NOT datistemplate AND datname <> {} "
                    "AND has_database_privilege({}, datname, 'CONNECT')"
                ).format(
                    sql.Literal(self.environment.database_name), sql.Literal(account.username)
                ),
                fetch=True,
            )
            if others:
                self.log.write(
                    f"WARNING: {account.username} can also connect to {others}, and "
                    f"{' and '.join(roles)} reach every database of the server: revoke "
                    "CONNECT from PUBLIC there, or give this database a server of its own."
                )

    def drop_database_account(self, account):
        role = sql.Identifier(account.username)
        name = sql.Literal(account.username)
        with self._connect() as connection:
            if not self._step(
                connection,
                f"look for role {account.username}",
                sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = {}").format(name),
                fetch=True,
            ):
                self.log.write(f"role {account.username} is already gone")
                return
            self._step(
                connection,
                f"ALTER ROLE {account.username} NOLOGIN",
                sql.SQL("ALTER ROLE {} NOLOGIN").format(role),
            )
            ended = self._step(
                connection,
                f"end the open sessions of {account.username}",
                sql.SQL(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE usename = {}"
                ).format(name),
                fetch=True,
            )
            self.log.write(f"ended {ended} open session(s) of {account.username}")
        # What the role created in the environment's database is kept (handed to the
        # admin role); its privileges there and on the database itself go with it.
        with self._connect(self.environment.database_name) as database:
            self._step(
                database,
                f"REASSIGN OWNED BY {account.username}",
                sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role),
            )
            self._step(
                database,
                f"DROP OWNED BY {account.username}",
                sql.SQL("DROP OWNED BY {}").format(role),
            )
        with self._connect() as connection:
            self._step(
                connection,
                f"DROP ROLE {account.username}",
                sql.SQL("DROP ROLE IF EXISTS {}").format(role),
            )

    def _connect(self, database=None):
        """A connection to the server (or to one of its databases), retried."""
        conninfo = make_conninfo(self.url, dbname=database) if database else self.url
        last = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
            except psycopg.OperationalError as exc:
                last = exc
                self.log.write(
                    f"connecting to {self.environment.database_server} failed "
                    f"(attempt {attempt} of {ATTEMPTS}): {_first_line(exc)}"
                )
                time.sleep(BACKOFF_SECONDS * attempt)
        raise DriverError(
            f"Could not connect to database server {self.environment.database_server}: "
            f"{_first_line(last)}"
        )

    def _step(self, connection, description, statement, *, fetch=False):
        """Run one statement, retrying it; the description (never the SQL) is logged."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with connection.cursor() as cursor:
                    cursor.execute(statement)
                    result = cursor.fetchone() if fetch else None
                self.log.write(f"ok: {description}")
                return result[0] if result else None
            except psycopg.Error as exc:
                self.log.write(
                    f"failed: {description} (attempt {attempt} of {ATTEMPTS}): {_first_line(exc)}"
                )
                if attempt == ATTEMPTS or connection.closed:
                    raise DriverError(f"{description} failed: {_first_line(exc)}") from None
                time.sleep(BACKOFF_SECONDS * attempt)
        return None


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
