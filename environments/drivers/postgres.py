"""Real just-in-time database accounts on PostgreSQL.

Create: a login role with a random password, VALID UNTIL the expiry, CONNECT on the
environment's database and pg_read_all_data (plus pg_write_all_data for Read-write).
Drop: refuse new logins, end the role's open sessions (VALID UNTIL alone leaves them
running), revoke its grants and drop it. Every step is logged and retried, so a
passing hiccup never leaves a role behind. The password never reaches the log.
"""

import time

import psycopg
from psycopg import sql

from environments.drivers.base import DriverError
from environments.drivers.database import admin_url
from environments.models import AccessLevel

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
            sql.Literal(password), valid_until
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
            self._step(
                connection,
                f"REVOKE CONNECT ON DATABASE {self.environment.database_name}",
                sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                    sql.Identifier(self.environment.database_name), role
                ),
            )
            self._step(
                connection,
                f"DROP ROLE {account.username}",
                sql.SQL("DROP ROLE IF EXISTS {}").format(role),
            )

    def _connect(self):
        last = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
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
