"""Settings, read from environment variables with safe defaults for local use.

Production (DEBUG off) refuses to start without a real SECRET_KEY.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

_INSECURE_KEY = "insecure-local-development-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_bool("PORTAL_ALLOW_INSECURE_KEY", False):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off "
            "(set DEBUG=1 or PORTAL_ALLOW_INSECURE_KEY=1 for local use)."
        )
    SECRET_KEY = _INSECURE_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "csp",
    "axes",
    # The API (environments/api/): ninja's templates and bundled Swagger UI for its docs.
    "ninja",
    "environments",
]

MIDDLEWARE = [
    # Outermost: every answer, an API problem made below too, carries X-Request-Id.
    "lcs_portal.request_ids.RequestIdMiddleware",
    "environments.api.auth.RateLimitHeadersMiddleware",
    # First, so that it sees every answer under /api/: errors become JSON problems there.
    "environments.api.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the viewer's time zone: their setting, else their browser's.
    "environments.time_zones.ViewerTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "environments.web.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "environments.web.middleware.HtmxLoginRedirectMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lcs_portal.urls"
WSGI_APPLICATION = "lcs_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
# SQLite is the embedded default. gunicorn threads and the task worker write to it
# at once, so transactions take the write lock up front (IMMEDIATE), wait for it
# (timeout) and readers never block writers (WAL); otherwise "database is locked"
# reaches users. Connections are kept (each thread has its own): opening one and
# running its PRAGMAs cost more than a signed-in page's queries (docs/performance.md).
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Parameters travel apart from the SQL, and psycopg prepares a statement run five
    # times on a connection: PostgreSQL plans the hot lookups once per connection
    # instead of on every request (docs/performance.md). PORTAL_PG_PREPARE=0 turns
    # both off, as a transaction-pooling PgBouncer in front of PostgreSQL needs.
    if env_bool("PORTAL_PG_PREPARE", True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
    else:
        # Behind a transaction-pooling PgBouncer nothing may outlive a transaction on a
        # server connection: neither prepared statements nor server-side cursors
        # (Django: "Transaction pooling and server-side cursors"; the portal opens none).
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "environment-list"
# Signing out shows registration/logged_out.html, which says so.
LOGOUT_REDIRECT_URL = None

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production values unless DEBUG) -------------------------------
# PORTAL_TLS says the portal is served over HTTPS (behind a proxy that terminates TLS
# and sets X-Forwarded-Proto): cookies are then sent over HTTPS only, browsers are
# told to use HTTPS for a year (HSTS) and plain-HTTP requests are redirected.
SECURE_TLS = env_bool("PORTAL_TLS", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_TLS
CSRF_COOKIE_SECURE = SECURE_TLS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_TLS)
# Load balancers and monitoring ask each host's /healthz over plain HTTP (docs/deploy.md).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_TLS else None
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000 if SECURE_TLS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_TLS
SECURE_HSTS_PRELOAD = SECURE_TLS
SESSION_COOKIE_HTTPONLY = True
# For forward auth, the portal's session cookie must reach the environments' hosts:
# e.g. ".operations.example.com" when the portal and the environments share it.
SESSION_COOKIE_DOMAIN = os.environ.get("SESSION_COOKIE_DOMAIN") or None
# A name of its own, so that no environment behind forward auth sets a cookie the
# gate would take for the portal's (docs/nginx-forward-auth.conf strips every copy).
SESSION_COOKIE_NAME = os.environ.get("SESSION_COOKIE_NAME", "portal_session")
SESSION_COOKIE_SAMESITE = "Lax"
# A session ends after this many seconds, and when the browser closes.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", 12 * 3600))
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# Pages send the CSRF token from the template (the <body>'s hx-headers, the forms'
# hidden field); no script reads the cookie, so scripts may not.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content Security Policy (django-csp; Django 5.2 has none built in): everything from
# the portal itself, no inline script or style, no eval, never framed. htmx is served
# from django-htmx's bundled file and configured with allowEval off (base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Django admin lives here (ADMIN_PATH, e.g. "ops-admin/"): off the path every scanner tries.
ADMIN_PATH = os.environ.get("ADMIN_PATH", "admin/").strip("/") + "/"
if ADMIN_PATH == "/":
    raise ImproperlyConfigured("ADMIN_PATH must not be empty: the portal itself is at /.")

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failed sign-ins to one
# account from one client address, that pair is locked for AXES_COOLOFF_MINUTES. By the
# pair: a lockout by account alone would let anyone lock out `admin` from anywhere.
# Behind reverse proxies, PORTAL_PROXY_COUNT says how many set X-Forwarded-For, so that
# the client's own address counts (lcs_portal.auth.client_address). An administrator
# lifts a lockout early with `manage.py axes_reset_username NAME` (every address) or
# `manage.py axes_reset_ip_username ADDRESS NAME`; `manage.py axes_list_attempts` lists
# them (docs/reliability.md).
AUTHENTICATION_BACKENDS = [
    "lcs_portal.auth.SignInThrottleBackend",
    "lcs_portal.auth.LocalPasswordBackend",
    # The sessions that single sign-on opens (environments/sso/): it checks no password.
    "environments.sso.backend.SingleSignOnBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=env_float("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "lcs_portal.auth.client_address"
PORTAL_PROXY_COUNT = int(os.environ.get("PORTAL_PROXY_COUNT", 0))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "lcs_portal.auth.locked_out"

# --- Single sign-on: OpenID Connect (environments/sso/, docs/sso.md) -----------------
# Off while PORTAL_OIDC_ISSUER is empty. The issuer's discovery document names every
# endpoint; the authorization code flow always uses PKCE (S256).
OIDC_ISSUER = os.environ.get("PORTAL_OIDC_ISSUER", "").rstrip("/")
OIDC_CLIENT_ID = os.environ.get("PORTAL_OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = os.environ.get("PORTAL_OIDC_CLIENT_SECRET", "")
OIDC_SCOPES = os.environ.get("PORTAL_OIDC_SCOPES", "openid profile email")
OIDC_PROVIDER_NAME = os.environ.get("PORTAL_OIDC_PROVIDER_NAME", "single sign-on")
OIDC_USERNAME_CLAIM = os.environ.get("PORTAL_OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_EMAIL_CLAIM = os.environ.get("PORTAL_OIDC_EMAIL_CLAIM", "email")
OIDC_NAME_CLAIM = os.environ.get("PORTAL_OIDC_NAME_CLAIM", "name")
OIDC_GROUPS_CLAIM = os.environ.get("PORTAL_OIDC_GROUPS_CLAIM", "groups")
# Seconds every call to the provider (discovery, keys, token) may take.
OIDC_TIMEOUT_SECONDS = env_float("PORTAL_OIDC_TIMEOUT_SECONDS", 5.0)
# Members of this provider group are superusers (and staff); empty: the provider never
# makes anyone a superuser.
OIDC_SUPERUSER_GROUP = os.environ.get("PORTAL_OIDC_SUPERUSER_GROUP", "")
# The refresh (`manage.py sync_identity`, docs/sso.md) reads every signed-in provider
# user's groups again this often, with the refresh token kept when PORTAL_OIDC_SCOPES
# asks for offline_access. Without one, a user's sessions, grants and API tokens end
# once their groups were last read longer ago than PORTAL_OIDC_GROUPS_MAX_AGE_HOURS.
OIDC_SYNC_SECONDS = env_float("PORTAL_OIDC_SYNC_SECONDS", 900.0)
OIDC_GROUPS_MAX_AGE_HOURS = env_float("PORTAL_OIDC_GROUPS_MAX_AGE_HOURS", 12.0)
# Off: only superusers may sign in with a local password (break-glass); everyone else
# signs in with single sign-on.
LOCAL_PASSWORDS_FOR_ALL = env_bool("PORTAL_LOCAL_PASSWORDS_FOR_ALL", True)

# --- Background tasks ---------------------------------------------------------
# Ending access (expiry, Remove, Revoke) has a queue and a worker of its own, so that a
# grant never outlives its expiry while a restart keeps the other worker busy.
# Maintenance windows start and end from that queue too, for the same reason.
ACCESS_QUEUE = "access"
# Mails and webhook events go out from a queue and a worker of their own: a slow or
# dead receiver never holds up an operation.
NOTIFY_QUEUE = "notify"
TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASK_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", ACCESS_QUEUE, NOTIFY_QUEUE],
    }
}

# --- Sessions and cache -----------------------------------------------------------
# Every signed-in request reads its session, so where it lives sets the floor of every
# page (docs/performance.md measures the options). The default keeps sessions in the
# database: no other service, and signing out ends a session at once. With a shared
# cache (PORTAL_CACHE_URL=redis://127.0.0.1:6379/0), PORTAL_SESSION_ENGINE=cached_db
# reads sessions from it and still writes them through to the database.
CACHE_URL = os.environ.get("PORTAL_CACHE_URL", "")
# Pages kept under their revision (environments/cache_keys.py): each process's own
# memory by default, or the shared Redis cache.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": int(os.environ.get("PORTAL_CACHE_ENTRIES", 5000))},
    }
}
if CACHE_URL:
    CACHES["default"] = {
        # Django's Redis cache, but a Redis that is away is a miss, not a 500
        # (lcs_portal/cache.py); and one that does not answer is given up on quickly.
        "BACKEND": "lcs_portal.cache.RedisCacheThatMayGoAway",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "portal",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cached_db": "django.contrib.sessions.backends.cached_db",
    "cache": "django.contrib.sessions.backends.cache",
    "file": "django.contrib.sessions.backends.file",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
}
_session_engine = os.environ.get("PORTAL_SESSION_ENGINE", "db")
if _session_engine not in SESSION_ENGINES:
    raise ImproperlyConfigured(
        f"PORTAL_SESSION_ENGINE must be one of {', '.join(SESSION_ENGINES)}."
    )
if _session_engine in ("cached_db", "cache") and not CACHE_URL:
    # The default cache is per process: signing out in one gunicorn worker would leave the
    # session alive in the others' caches.
    raise ImproperlyConfigured(
        f"PORTAL_SESSION_ENGINE={_session_engine} needs a shared cache: set PORTAL_CACHE_URL."
    )
SESSION_ENGINE = SESSION_ENGINES[_session_engine]
SESSION_FILE_PATH = VAR_DIR / "sessions"
if _session_engine == "file":
    SESSION_FILE_PATH.mkdir(parents=True, exist_ok=True)

# The benchmark's two baselines (bench/views.py) exist only when this is on; never in
# production.
if env_bool("PORTAL_BENCH_VIEWS", False):
    ROOT_URLCONF = "bench.urls"

# --- Maintain operations --------------------------------------------------------
# Which driver acts on environments: "simulated" (the demo default) or "command".
PORTAL_DRIVER = os.environ.get("PORTAL_DRIVER", "simulated")
# The simulated driver takes this many seconds per action, and fails any action
# named in this file ("<environment slug> <action>" a line, "*" for any).
SIMULATED_DRIVER_DELAY = env_float("SIMULATED_DRIVER_DELAY", 3.0)
# How often the simulated driver checks whether its action is done (a step each time).
SIMULATED_DRIVER_POLL = env_float("SIMULATED_DRIVER_POLL", 1.0)
SIMULATED_DRIVER_FAIL_FILE = Path(
    os.environ.get("SIMULATED_DRIVER_FAIL_FILE", VAR_DIR / "simulated-failures")
)
# Per-environment drivers: a JSON (or .toml) file mapping environment slugs to their
# driver and its settings, e.g. the command driver's argument lists (docs/drivers.md).
# Environments it does not name use PORTAL_DRIVER.
PORTAL_DRIVERS_FILE = Path(os.environ.get("PORTAL_DRIVERS_FILE", VAR_DIR / "drivers.json"))
# The demo's "Local sandbox": AOS, DIXF and MR as three small HTTP processes under a
# supervisord that run_portal starts (when the environment exists and this is on).
PORTAL_LOCAL_SANDBOX = env_bool("PORTAL_LOCAL_SANDBOX", True)
PORTAL_LOCAL_SANDBOX_DIR = Path(
    os.environ.get("PORTAL_LOCAL_SANDBOX_DIR", VAR_DIR / "local-sandbox")
)
# Ports of AOS, DIXF and MR, in that order, on 127.0.0.1.
PORTAL_LOCAL_SANDBOX_PORTS = [
    int(port) for port in env_list("PORTAL_LOCAL_SANDBOX_PORTS", "8101,8102,8103")
]
# Every operation must settle within this many seconds or the watchdog fails it.
OPERATION_DEADLINE_SECONDS = env_float("OPERATION_DEADLINE_SECONDS", 300.0)
# A worker holds a step this long at most; past it the watchdog hands the step out again
# (its worker died). Longer than any one command a step runs.
OPERATION_STEP_LEASE_SECONDS = env_float("OPERATION_STEP_LEASE_SECONDS", 120.0)
# How often run_portal's watchdog sweeps (its --loop): lost steps, deadlines, expiries.
WATCHDOG_LOOP_SECONDS = env_float("WATCHDOG_LOOP_SECONDS", 60.0)
# Each service with a health check (the command driver's "health") is checked this
# often, by a task, and the services table shows its last answer and when it came.
SERVICE_HEALTH_CHECK_SECONDS = env_float("SERVICE_HEALTH_CHECK_SECONDS", 60.0)
# Finished task rows are pruned after this many days (steps multiply them).
TASK_RESULTS_KEEP_DAYS = int(env_float("TASK_RESULTS_KEEP_DAYS", 2))

# --- Just-in-time access ---------------------------------------------------------------
# Firewall rules and database accounts last this many hours unless asked for less, and
# never longer than the maximum.
ACCESS_DEFAULT_HOURS = env_float("ACCESS_DEFAULT_HOURS", 8)
ACCESS_MAX_HOURS = env_float("ACCESS_MAX_HOURS", 8)
# The widest range Enable access accepts, and how many rules may be active at once.
ACCESS_MAX_PREFIX_IPV4 = int(os.environ.get("ACCESS_MAX_PREFIX_IPV4", 24))
ACCESS_MAX_PREFIX_IPV6 = int(os.environ.get("ACCESS_MAX_PREFIX_IPV6", 64))
ACCESS_MAX_ACTIVE_RULES = int(os.environ.get("ACCESS_MAX_ACTIVE_RULES", 10))
# Which driver creates database accounts: "simulated" or "postgres". The postgres
# driver reaches an environment's database server (Environment.database_server, e.g.
# "local") through the admin connection string in PORTAL_DB_SERVER_<NAME>_URL.
PORTAL_DATABASE_DRIVER = os.environ.get("PORTAL_DATABASE_DRIVER", "simulated")
# Which driver applies firewall rules: "simulated" or "command" (argument lists in
# PORTAL_FIREWALL_APPLY / PORTAL_FIREWALL_REMOVE, JSON, with {name} {cidr} {environment}).
PORTAL_FIREWALL_DRIVER = os.environ.get("PORTAL_FIREWALL_DRIVER", "simulated")

# --- The API (environments/api/, docs/api.md) ---------------------------------------------
# Personal access tokens last PORTAL_API_TOKEN_DAYS unless their maker chooses otherwise,
# and never more than PORTAL_API_TOKEN_MAX_DAYS. Each user (all their tokens together) may
# make PORTAL_API_RATE_LIMIT requests a minute, counted in Django's cache: per gunicorn
# process with the default cache, across all of them with a shared PORTAL_CACHE_URL.
API_TOKEN_DEFAULT_DAYS = int(os.environ.get("PORTAL_API_TOKEN_DAYS", 90))
API_TOKEN_MAX_DAYS = int(os.environ.get("PORTAL_API_TOKEN_MAX_DAYS", 365))
API_RATE_LIMIT = int(os.environ.get("PORTAL_API_RATE_LIMIT", 600))

# --- Scheduled maintenance windows and notifications -----------------------
# Mail goes through Django's email backend: SMTP when EMAIL_HOST is set, otherwise the
# console, so that `make run` prints the demo's mails. Mails and webhook events are sent
# by the worker of NOTIFY_QUEUE, never inside a request.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 25))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Maintenance portal <portal@localhost>")
# Where people reach the portal: the links in mails, webhook events and calendar feeds.
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# A window starts at most this many days ahead and lasts at most this many hours.
WINDOW_MAX_DAYS_AHEAD = env_float("WINDOW_MAX_DAYS_AHEAD", 90.0)
WINDOW_MAX_HOURS = env_float("WINDOW_MAX_HOURS", 24.0)
# A window that cannot start (the environment is busy or Failed) tries again every
# WINDOW_RETRY_SECONDS for this many minutes after its start, then it is Missed.
WINDOW_START_RETRY_MINUTES = env_float("WINDOW_START_RETRY_MINUTES", 15.0)
WINDOW_RETRY_SECONDS = env_float("WINDOW_RETRY_SECONDS", 30.0)
# Everyone with a role on the environment is reminded this many hours before a window.
WINDOW_REMINDER_HOURS = [float(hours) for hours in env_list("WINDOW_REMINDER_HOURS", "24,1")]
# The requester is told this many minutes before their database account or firewall
# rule expires.
ACCESS_EXPIRY_WARNING_MINUTES = env_float("ACCESS_EXPIRY_WARNING_MINUTES", 30.0)
# A webhook receiver has this long to answer. A failed mail or webhook delivery is
# tried again after DELIVERY_RETRY_FIRST_SECONDS, doubling up to
# DELIVERY_RETRY_MAX_SECONDS, DELIVERY_MAX_ATTEMPTS times in all (about a day).
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 5.0)
# Webhooks go to public addresses only, unless this allows local and private networks
# (loopback, 10/8, 169.254/16...) for receivers inside them, as GitLab's "Allow requests
# to the local network" does. The demo and the tests turn it on.
PORTAL_WEBHOOKS_ALLOW_PRIVATE = env_bool("PORTAL_WEBHOOKS_ALLOW_PRIVATE", False)
DELIVERY_RETRY_FIRST_SECONDS = env_float("DELIVERY_RETRY_FIRST_SECONDS", 60.0)
DELIVERY_RETRY_MAX_SECONDS = env_float("DELIVERY_RETRY_MAX_SECONDS", 6 * 3600.0)
DELIVERY_MAX_ATTEMPTS = int(os.environ.get("DELIVERY_MAX_ATTEMPTS", 12))
# A delivery a worker claimed is its own this long (a post takes WEBHOOK_TIMEOUT_SECONDS
# at most); the watchdog hands out again a pending one this many seconds late: its task
# was lost, or the worker that claimed it died.
DELIVERY_CLAIM_SECONDS = env_float("DELIVERY_CLAIM_SECONDS", 300.0)
DELIVERY_OVERDUE_SECONDS = env_float("DELIVERY_OVERDUE_SECONDS", 120.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        # Django's own, for runserver's request lines (django.server below).
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "filters": {
        "refusals_on_one_line": {"()": "lcs_portal.logs.RefusalsOnOneLine"},
        "hide_calendar_tokens": {"()": "lcs_portal.logs.HideCalendarTokens"},
        "request_id": {"()": "lcs_portal.logs.RequestId"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["refusals_on_one_line", "request_id"],
        },
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # django-axes logs every sign-in at INFO; its failures and lockouts are WARNINGs.
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # The requests Django logs (4xx and 5xx; runserver's every line) name their URL.
        "django.request": {"filters": ["hide_calendar_tokens"]},
        "django.server": {
            "handlers": ["django.server"],
            "level": "INFO",
            "propagate": False,
            "filters": ["hide_calendar_tokens"],
        },
    },
}
