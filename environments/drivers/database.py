"""Database drivers for Request access: a login that lives until it expires or is revoked.

``simulated`` (the default) only logs; ``postgres`` creates real roles (see postgres.py).
The admin connection to a database server comes from configuration, never from the
database or the UI: PORTAL_DB_SERVER_<NAME>_URL for Environment.database_server NAME.
"""

import os
import re
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.utils.module_loading import import_string
from psycopg.conninfo import conninfo_to_dict

from environments.drivers.base import DriverError


class LoginNotDropped(DriverError):
    """Objects in ``databases`` (or privileges on them) still depend on the login, and
    the admin role could not remove them: retrying fails the same way until someone does
    what the message says."""

    def __init__(self, username, databases, admin, closed=()):
        self.username, self.databases = username, databases
        fixes = [
            f"GRANT CONNECT ON DATABASE {_quoted(name)} TO {_quoted(admin)};"
            for name in databases
            if name in closed
        ]
        super().__init__(
            f"Could not drop login {username}: it owns objects (large objects, say) or holds "
            f"privileges in database {', '.join(databases)}, which {admin} could not remove. "
            + (f"Run {' '.join(fixes)} and the next retry removes them; or" if fixes else "So")
            + f", as a superuser, run DROP OWNED BY {_quoted(username)}; in each of them."
        )


def _quoted(name):
    return '"' + name.replace('"', '""') + '"'


def _variable(server_name, suffix):
    return "PORTAL_DB_SERVER_" + re.sub(r"[^A-Z0-9]", "_", server_name.upper()) + suffix


def admin_url(server_name):
    """The admin connection string of a database server, from the environment."""
    variable = _variable(server_name, "_URL")
    url = os.environ.get(variable)
    if not url:
        raise DriverError(
            f"No admin connection is configured for database server {server_name!r} "
            f"(set {variable})."
        )
    return url


def server_address(environment):
    """Where a requester connects, as people outside reach it: ``host`` (None when the
    portal does not know), ``port``, and ``setting``, the variable that says so.

    PORTAL_DB_SERVER_<NAME>_HOST ("db.example.com" or "db.example.com:6432") names it;
    without it, the host and port of the admin connection, which may be an address
    only the portal's hosts can reach."""
    setting = _variable(environment.database_server, "_HOST")
    public = os.environ.get(setting)
    if public:
        parts = urlsplit(f"//{public}")  # host, host:port, [v6]:port
        try:
            port = parts.port or 5432
        except ValueError:  # not a port: say so rather than fail the page
            return {"host": None, "port": 5432, "setting": setting}
        return {"host": parts.hostname, "port": port, "setting": setting}
    try:
        parts = conninfo_to_dict(admin_url(environment.database_server))
    except (DriverError, psycopg.ProgrammingError):
        return {"host": None, "port": 5432, "setting": setting}
    host = parts.get("host") or "localhost"
    return {"host": host, "port": int(parts.get("port") or 5432), "setting": setting}


class SimulatedDatabaseDriver:
    name = "simulated"

    def __init__(self, environment, log):
        self.environment = environment
        self.log = log

    def create_database_account(self, account, password):
        self.log.write(
            f"simulated database: create login {account.username} "
            f"({account.get_level_display()}) on {self.environment.database_name}, "
            f"valid until {account.expires_at:%Y-%m-%d %H:%M:%S %Z}"
        )

    def drop_database_account(self, account):
        self.log.write(f"simulated database: end the sessions of {account.username} and drop it")


DATABASE_DRIVERS = {
    "simulated": "environments.drivers.database.SimulatedDatabaseDriver",
    "postgres": "environments.drivers.postgres.PostgresDatabaseDriver",
}


def get_database_driver(environment, log):
    try:
        driver_class = import_string(DATABASE_DRIVERS[settings.PORTAL_DATABASE_DRIVER])
    except KeyError:
        raise DriverError(
            f"Unknown database driver {settings.PORTAL_DATABASE_DRIVER!r} (PORTAL_DATABASE_DRIVER)."
        ) from None
    return driver_class(environment, log)
