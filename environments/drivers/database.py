"""Database drivers for Request access: a login that lives until it expires or is revoked.

``simulated`` (the default) only logs; ``postgres`` creates real roles (see postgres.py).
The admin connection to a database server comes from configuration, never from the
database or the UI: PORTAL_DB_SERVER_<NAME>_URL for Environment.database_server NAME.
"""

import os
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from environments.drivers.base import DriverError


def admin_url(server_name):
    """The admin connection string of a database server, from the environment."""
    variable = "PORTAL_DB_SERVER_" + re.sub(r"[^A-Z0-9]", "_", server_name.upper()) + "_URL"
    url = os.environ.get(variable)
    if not url:
        raise DriverError(
            f"No admin connection is configured for database server {server_name!r} "
            f"(set {variable})."
        )
    return url


def server_address(environment):
    """Where the requester connects: host and port of the server, no credentials."""
    try:
        parts = urlsplit(admin_url(environment.database_server))
    except DriverError:
        return environment.database_server, None
    return parts.hostname or "localhost", parts.port or 5432


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
