"""Deployment checks Django's own do not make (``manage.py check --deploy``, and at
``run_portal`` start)."""

import os
import re

import psycopg
from django.conf import settings
from django.core import checks

# Seconds to wait for each database server: a check that runs at start-up must not
# hang on one that is down or firewalled.
CONNECT_TIMEOUT = 3
SERVER_URL = re.compile(r"PORTAL_DB_SERVER_.+_URL")
ROLE = """
SELECT rolname, rolsuper, rolcreaterole, current_setting('server_version_num')::int
FROM pg_roles WHERE rolname = current_user"""


def check_database_driver_roles(app_configs=None, **kwargs):
    """Warn of a postgres driver role (docs/drivers.md) that can do more than it should."""
    if settings.PORTAL_DATABASE_DRIVER != "postgres":
        return []
    warnings = []
    for variable in sorted(filter(SERVER_URL.fullmatch, os.environ)):
        try:
            with psycopg.connect(os.environ[variable], connect_timeout=CONNECT_TIMEOUT) as server:
                role, superuser, createrole, version = server.execute(ROLE).fetchone()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.append(
                checks.Warning(
                    f"Could not check the database role of {variable}: {reason}",
                    hint="Check the URL, and that the server answers from this host.",
                    id="environments.W003",
                )
            )
            continue
        if superuser:
            warnings.append(
                checks.Warning(
                    f"{role}, the role of {variable}, is a superuser: whoever holds that URL "
                    "may do anything on the server.",
                    hint="Give the driver a role without superuser, as docs/drivers.md says.",
                    id="environments.W002",
                )
            )
        elif createrole and version < 160000:
            # Before PostgreSQL 16, CREATEROLE may grant itself any role but superuser.
            warnings.append(
                checks.Warning(
                    f"{role}, the role of {variable}, has CREATEROLE on PostgreSQL "
                    f"{version // 10000}, where it can grant itself pg_execute_server_program "
                    "and run programs on the database server (COPY ... FROM PROGRAM): as "
                    "good as a superuser.",
                    hint="Run the driver's role on PostgreSQL 16 or newer (docs/drivers.md).",
                    id="environments.W001",
                )
            )
    return warnings
