"""Test settings: the real settings, made fast and deterministic."""

import os
from pathlib import Path

os.environ.setdefault("PORTAL_ALLOW_INSECURE_KEY", "1")
os.environ.setdefault("PORTAL_TLS", "0")

from lcs_portal.settings import *  # noqa: E402, F403
from lcs_portal.settings import DATABASES, VAR_DIR, env_float  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
SIMULATED_DRIVER_DELAY = env_float("SIMULATED_DRIVER_DELAY", 0.0)

# Tests start real processes (db_worker, gunicorn) beside the test server, so the
# SQLite test database must be a file they can open. Each run names its own test
# database, so two runs on one machine never share one.
_run = os.getpid()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-portal-{_run}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_lcs_portal_{_run}"}
# A developer's var/drivers.json must not steer the tests; tests that need one set it.
PORTAL_DRIVERS_FILE = Path(
    os.environ.get("PORTAL_DRIVERS_FILE", VAR_DIR / "no-drivers-file-in-tests.json")
)
# The tests' webhook receivers listen on 127.0.0.1; tests of the refusal turn it off.
PORTAL_WEBHOOKS_ALLOW_PRIVATE = True
