"""Agent Hive settings, driven by the environment (django-environ).

A bare checkout runs on SQLite with an in-process channel layer; production sets
DATABASE_URL (PostgreSQL) and REDIS_URL (channels-redis). Secrets come only from
the environment.
"""

import sys
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# HIVE_PRODUCTION=true: secure by default (HTTPS only, HSTS, secure cookies, shorter sign-ins).
PRODUCTION = env.bool("HIVE_PRODUCTION", default=False)


def refuse(reason: str) -> None:
    """Stop at start-up with one line on stderr (no traceback): the configuration cannot run."""
    sys.exit(f"Agent Hive cannot start: {reason}")


if PRODUCTION and DEBUG:
    refuse("DEBUG=true with HIVE_PRODUCTION=true; production never runs in debug mode (unset DEBUG)")
# A bare checkout gets a throwaway key; production must provide SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="") or ("" if PRODUCTION else "insecure-local-only-key")
if not SECRET_KEY:
    refuse("SECRET_KEY is not set; HIVE_PRODUCTION=true needs a long random SECRET_KEY in the environment")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "waffle",
    "channels",
    "agents",
    "coordination",
    "metrics",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Daphne serves no static files; WhiteNoise serves the collected ones (admin, console).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Attributes the events a request writes to its user (and API token): coordination.actors.
    "coordination.actors.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
    # Ends a signed-in session after HIVE_SESSION_IDLE_TIMEOUT seconds without a request.
    "hive_project.signin.SessionIdleTimeoutMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hive_project.urls"
ASGI_APPLICATION = "hive_project.asgi.application"
WSGI_APPLICATION = None

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

# --- Database -------------------------------------------------------------
# SQLite in WAL mode with a busy timeout lets the web server and the daemon
# write at the same time on the embedded default.
SQLITE_PATH = env.path("SQLITE_PATH", default=BASE_DIR / "var" / "hive.sqlite3")
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": env.str("SQLITE_TEST_PATH", default="") or None}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer --------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")


def redis_channel_layer(url: str) -> dict:
    """channels-redis on `url`, with a socket timeout well above its 5 s blocking receive (BZPOPMIN).

    With redis-py 8.x's default of 5 s an idle receive times out, and the live feed flaps
    between "unavailable" and "back" under ordinary load. Callers bound their own waits.
    """
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": url, "socket_timeout": 15, "socket_connect_timeout": 2}],
            "capacity": 5000,
            "expiry": 30,
        },
    }


if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    # In-process only; the console's live feed also tails the event table, so
    # events written by the daemon process still reach browsers (DESIGN: flow of one event).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Seconds between the live feed's polls of the event table in each web process: the only
# path from the daemon without Redis; with Redis a safety net that replays what an outage lost.
LIVEFEED_TAIL_INTERVAL = env.float("HIVE_LIVEFEED_TAIL_INTERVAL", default=2.0 if REDIS_URL else 0.25)
# Seconds a commit may wait for the channel layer before its events are left to the tail.
EVENT_PUBLISH_TIMEOUT = env.float("HIVE_EVENT_PUBLISH_TIMEOUT", default=1.0)

# --- Caches -------------------------------------------------------------------
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Feature switches are read from the database every time: the daemon and the
    # web processes must see an operator's flip at once, and reads are rare.
    "switches": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}
WAFFLE_CACHE_NAME = "switches"

# Largest request body, in bytes: a larger one is answered 413 before it is read (hive_project.http_bridge).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("HIVE_MAX_BODY_BYTES", default=2_621_440)

# --- Auth, i18n, static ---------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "staticfiles")

# --- REST framework -------------------------------------------------------
REST_FRAMEWORK = {
    # The PWA and scripts send "Authorization: Token …" (coordination.ApiToken); browsers use the
    # console's session (with CSRF).
    # Token first, so an unauthenticated request gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "coordination.access.authentication.HiveTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["coordination.permissions.IsOperatorOrReadOnly"],
    # JSON only: the interactive documentation lives at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["coordination.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "coordination.api.pagination.HivePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "coordination.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Hive API",
    "DESCRIPTION": "Coordination of a crew of AI development agents: status, metrics, "
    "business value, agents, sessions, workflows, tasks, events and decisions. "
    "Authenticate with a session or `Authorization: Token <secret>`; reads need a signed-in user, "
    "writes need operator rights and, with a token, its scope `operate` (a `read` token gets 403). "
    "Over a rate limit the answer is 429 with `Retry-After`. "
    "Errors are `{detail, code, errors: {field: reason}}`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    # The docs page loads Swagger UI from our own static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "coordination.api.schema.runtime_config_per_runtime",
    ],
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agents.models.Agent.Status",
        "TaskStatusEnum": "coordination.models.Task.Status",
        "WorkflowStatusEnum": "coordination.models.Workflow.Status",
        "SessionStatusEnum": "coordination.models.Session.Status",
        "DecisionStatusEnum": "coordination.models.Decision.Status",
    },
}
# Seconds the API may serve the same status/metrics/business-value figures (0 = always recompute).
HIVE_API_CACHE_SECONDS = env.float("HIVE_API_CACHE_SECONDS", default=2.0)

# --- Agent Hive -----------------------------------------------------------
HIVE = {
    # Seconds a claimed task stays leased to one daemon before another may reclaim it.
    "LEASE_SECONDS": env.int("HIVE_LEASE_SECONDS", default=30),
    # Seconds without a heartbeat after which a daemon or an agent counts as dead.
    "HEARTBEAT_TIMEOUT": env.int("HIVE_HEARTBEAT_TIMEOUT", default=30),
    # Attempts before a failing task is escalated to a human decision.
    "MAX_ATTEMPTS": env.int("HIVE_MAX_ATTEMPTS", default=3),
    # Base of the exponential retry backoff, in seconds.
    "RETRY_BACKOFF": env.float("HIVE_RETRY_BACKOFF", default=2.0),
    # Review rounds before a code review cycle raises a decision.
    "MAX_REVIEW_ROUNDS": env.int("HIVE_MAX_REVIEW_ROUNDS", default=3),
    # Hours a decision waits for a human before its default option applies.
    "DECISION_DEADLINE_HOURS": env.float("HIVE_DECISION_DEADLINE_HOURS", default=24.0),
    # Team spawned by run_coordinator at start-up (JSON file), empty for none.
    "TEAM_CONFIG": env.str("HIVE_TEAM_CONFIG", default=""),
    # Where session workspaces are created when a spawn request names none.
    "WORKSPACE_ROOT": env.path("HIVE_WORKSPACE_ROOT", default=BASE_DIR / "var" / "workspaces"),
    # Days of events the daemons keep: a daily prune removes older ones (0 or unset: keep everything).
    "EVENT_RETENTION_DAYS": env.int("HIVE_EVENT_RETENTION_DAYS", default=0),
    # Directory where the daily prune writes what it removes (events-<time>.jsonl.gz); empty: no archive.
    "EVENT_ARCHIVE_DIR": env.str("HIVE_EVENT_ARCHIVE_DIR", default=""),
    # Longest period a delivery report may span, in days.
    "REPORT_MAX_DAYS": env.int("HIVE_REPORT_MAX_DAYS", default=366),
}
if HIVE["EVENT_RETENTION_DAYS"] < 0:
    raise environ.ImproperlyConfigured("HIVE_EVENT_RETENTION_DAYS must be a number of days (0 keeps every event)")
# Directories a request may name as a workspace or a local repository (comma-separated absolute paths);
# anything outside them is refused, so an operator's request cannot make the server write elsewhere.
HIVE["WORKSPACE_ROOTS"] = [
    Path(root).expanduser()
    for root in env.list("HIVE_WORKSPACE_ROOTS", default=[str(HIVE["WORKSPACE_ROOT"])])
    if root.strip()
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# HTTPS: on by default in production, each one can be turned off on its own. Health probes
# (/healthz, /readyz) stay reachable over plain HTTP for load balancers and container checks.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Browser preload lists are a domain-wide commitment that is slow to undo: the operator's
# choice (SECURE_HSTS_PRELOAD=true), so `check --deploy` does not ask for it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
# Behind a proxy that terminates TLS: the header it sets on HTTPS requests, answered "https"
# (e.g. SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto). Set it only when the proxy always sets or
# strips that header; otherwise a client could claim HTTPS. Daphne's --proxy-headers does the
# same from X-Forwarded-Proto for requests that reach it through the proxy.
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", default="").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

# --- Access: API tokens, sign-in lockout, API throttling, session lifetime ---------------------
# API tokens are django-rest-knox tokens extended with a name, a scope and a last use
# (coordination.ApiToken): only a SHA-512 digest of the secret is kept.
KNOX_TOKEN_MODEL = "coordination.ApiToken"
# knox's own migrations would create its AuthToken table even though the model is swapped out;
# the app is used for its code only, so it has no migrations and no table here.
MIGRATION_MODULES = {"knox": None}
HIVE_TOKEN_TTL_DAYS = env.int("HIVE_TOKEN_TTL_DAYS", default=90)  # a new token's lifetime unless one is given
HIVE_TOKEN_MAX_TTL_DAYS = env.int("HIVE_TOKEN_MAX_TTL_DAYS", default=366)  # the longest lifetime allowed
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=HIVE_TOKEN_TTL_DAYS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# Sign-in lockout (django-axes) on the console and the admin login: after
# HIVE_LOGIN_FAILURE_LIMIT failures for one user name, or from one client address, sign-in
# is refused for HIVE_LOGIN_COOLOFF_MINUTES (each new failure restarts the wait).
# Operators unlock sooner in the admin (Axes › Access attempts › "Unlock") or with
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("HIVE_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("HIVE_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one alone locks
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "hive_project.signin.lockout_response"
# The client address is the connection's (REMOTE_ADDR); behind a reverse proxy run daphne
# with --proxy-headers so it is the client's, not the proxy's.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# Failures and lockouts are logged (WARNING) with the user name and address, which an
# operator needs to unlock; axes' per-attempt housekeeping lines (INFO) are not.
AXES_SENSITIVE_PARAMETERS = []
LOGGING["loggers"]["axes"] = {"level": "WARNING"}


def _rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as "1200/min"; "off" (or empty) turns that limit off."""
    value = env.str(name, default=default).strip()
    return None if value.lower() in ("", "off", "none") else value


# API rate limits (DRF throttles; coordination.access.throttling). Every request counts against its
# token's limit and its user's limit; going over answers 429 with Retry-After. Health and
# readiness probes and the Prometheus scrape are not limited.
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "coordination.access.throttling.TokenRateThrottle",
    "coordination.access.throttling.UserRateThrottle",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "token": _rate("HIVE_API_RATE_TOKEN", "1200/min"),
    "user": _rate("HIVE_API_RATE_USER", "2400/min"),
}
# Proxies are handled by daphne (--proxy-headers), never by trusting X-Forwarded-For here.
REST_FRAMEWORK["NUM_PROXIES"] = 0
# Counters live in Redis when there is one, so every web process counts against one limit.
# Short socket timeouts: an unreachable Redis costs a request half a second, then it is served.
CACHES["throttle"] = (
    {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hive-throttle",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hive-throttle"}
)

# Console sessions: a sign-in lasts at most HIVE_SESSION_AGE seconds and ends after
# HIVE_SESSION_IDLE_TIMEOUT seconds without a request (0: no idle limit). Sign-out deletes
# the session on the server. Production defaults: 12 hours and 1 hour; locally 14 days, no idle limit.
SESSION_COOKIE_AGE = env.int("HIVE_SESSION_AGE", default=12 * 3600 if PRODUCTION else 14 * 24 * 3600)
HIVE_SESSION_IDLE_TIMEOUT = env.int("HIVE_SESSION_IDLE_TIMEOUT", default=3600 if PRODUCTION else 0)
