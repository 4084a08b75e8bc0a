"""Zenzefi Platform settings: one module driven by environment variables (12-factor).

With no environment set (and no `.env`), the platform runs on the *embedded default*:
SQLite, a file cache shared by every local process, and a file-system Celery broker.
`DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to Redis (cache, rate limits, broker).
Every setting is listed in `.env.example`.
"""

import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of the embedded default (SQLite file, file cache, broker folders, backups).
VAR_DIR = BASE_DIR / environ.Env().str("ZENZEFI_VAR_DIR", default="var")

env = environ.Env()
# A local `.env` (written by scripts/start) fills in what the real environment does not set.
# ZENZEFI_READ_DOTENV=false skips it: the test suite (pytest.ini) and the smoke test never read it.
if env.bool("ZENZEFI_READ_DOTENV", default=True) and (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY (or DEBUG=true for local work)."
        )
    SECRET_KEY = "insecure-debug-only-key-do-not-use-in-production-0123456789"


def _required_secret(name: str) -> str:
    """A key independent of SECRET_KEY: required when DEBUG is off, a fixed default only in DEBUG."""
    value = env.str(name, default="")
    if not value:
        if not DEBUG:
            raise ImproperlyConfigured(
                f"{name} is required when DEBUG is off. Set {name} (or DEBUG=true for local work); "
                "it is independent of SECRET_KEY, so rotating SECRET_KEY never changes it."
            )
        value = f"insecure-debug-only-{name.lower()}-do-not-use-in-production"
    return value


ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # refresh JWTs revoked on password change/deactivation
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets as static files: no CDN (issue 12)
    "django_filters",
    "django_celery_beat",
    "django_prometheus",
    "django_ratelimit",
    "accounts",
    "audit",
    "currency",
    "idempotency",
    "backups",
    "proxy",
    "tokens",
    "notifications",
    "webhooks",
    "analytics",
    "monitoring",
    "bundles",
    "payments",
    "referrals",
    "renewals",
    "gifts",
    "portal",
    "staff",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "zenzefi.request_id.RequestIdMiddleware",
    # Redis/cache unreachable → 503 service_unavailable with Retry-After (SPEC §9), not a 500.
    "zenzefi.outage.ServiceUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "zenzefi.middleware.ZenzefiLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "zenzefi.urls"
WSGI_APPLICATION = "zenzefi.wsgi.application"
ASGI_APPLICATION = "zenzefi.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.site",
            ],
        },
    }
]

# --- Database -----------------------------------------------------------------------------
# VAR_DIR (and the embedded broker's folders) are created at startup (zenzefi.startup), not here.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
SILENCED_SYSTEM_CHECKS: list[str] = []
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The covering index of proxy sessions (PostgreSQL INCLUDE) is a plain index on SQLite, as meant:
    # no warning at every start of the embedded default.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
    # Concurrent writers queue (BEGIN IMMEDIATE) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    }
else:
    # Persistent connections are per thread: bounded because every server runs Django on a fixed
    # number of threads (DJANGO_THREADS under ASGI, gunicorn's threads under WSGI).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Under ASGI (zenzefi/asgi.py) Django's pages and API run as WSGI on this many threads per worker
# process, which bounds its PostgreSQL connections; 0 = Django's own ASGI handler (a thread per request).
DJANGO_THREADS = env.int("DJANGO_THREADS", default=4)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (shared by every process: a revocation must reach all of them) -----------------
REDIS_URL = env.str("REDIS_URL", default="")
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="zz")
# Seconds to connect to / wait for Redis before the request answers 503 (SPEC §9).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
# Retry-After of the 503 answered while Redis (or the cache) is unreachable.
SERVICE_UNAVAILABLE_RETRY_AFTER = env.int("SERVICE_UNAVAILABLE_RETRY_AFTER", default=30)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # An unreachable Redis fails fast (→ 503), never hangs a worker.
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
    # The file cache is shared by every local process but its increments are not atomic
    # across processes; the embedded default accepts that for rate-limit counters
    # (production runs Redis). See README "Embedded default".
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/account/"

# --- I18N ---------------------------------------------------------------------------------
LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
# One date format per language on every page (zenzefi/formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["zenzefi.formats"]
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Cookies and security -----------------------------------------------------------------
COOKIE_SECURE = env.bool("COOKIE_SECURE", default=not DEBUG)
COOKIE_SAMESITE = env.str("COOKIE_SAMESITE", default="Lax")
SESSION_COOKIE_SECURE = COOKIE_SECURE
CSRF_COOKIE_SECURE = COOKIE_SECURE
SESSION_COOKIE_SAMESITE = COOKIE_SAMESITE
CSRF_COOKIE_SAMESITE = COOKIE_SAMESITE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "zenzefi.pagination.SkipLimitPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "zenzefi.errors.api_exception_handler",
    # Every operation documents every status it can answer (SPEC §13): zenzefi/schema.py.
    "DEFAULT_SCHEMA_CLASS": "zenzefi.schema.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # DRF's defaults, with a JSON parser that answers 400 (not 500) to too-deep nesting.
    "DEFAULT_PARSER_CLASSES": [
        "zenzefi.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # REST API limit by the caller's tier (API_RATE_LIMIT_* below); 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.TierRateThrottle"],
}
PAGINATION_MAX_LIMIT = env.int("PAGINATION_MAX_LIMIT", default=100)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": True,
    # Sessions never outlive a password (issue 11 item 5, docs/security.md): every refresh is
    # single-use (rotated, the old one blacklisted); accounts.services.user_sessions_revoke
    # blacklists all of a user's refresh JWTs; access JWTs carry a hash of the password hash
    # and stop working when it changes (and at once for inactive users).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Zenzefi Platform API",
    "DESCRIPTION": "Time-limited remote access to Zenzefi: accounts, ZNC balance, tokens, proxy.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    # The contract is JSON: clients receive application/json (the browsable API's HTML is for
    # people, not part of the contract); request bodies: zenzefi.schema.AutoSchema.map_parsers.
    "RENDERER_WHITELIST": ["rest_framework.renderers.JSONRenderer"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "zenzefi.schema.postprocess_schema",
    ],
    # Swagger UI and ReDoc load their assets from our static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to swagger.io's online validator either.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Rate limits (django-ratelimit; counters in the default cache) ------------------------
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
AUTH_RATE_LIMIT = env.str("AUTH_RATE_LIMIT", default="5/h")
# Payment provider callbacks (`POST webhooks/payment`) per client IP; 429 with Retry-After beyond.
PAYMENT_CALLBACK_RATE_LIMIT = env.str("PAYMENT_CALLBACK_RATE_LIMIT", default="120/m")

# --- Money and prices ---------------------------------------------------------------------
MOCK_PAYMENTS_ENABLED = env.bool("MOCK_PAYMENTS_ENABLED", default=DEBUG)
TOPUP_MIN_AMOUNT = Decimal(env.str("TOPUP_MIN_AMOUNT", default="1"))
TOPUP_MAX_AMOUNT = Decimal(env.str("TOPUP_MAX_AMOUNT", default="100000"))
TOKEN_PRICES = {
    1: Decimal(env.str("TOKEN_PRICE_1H", default="1")),
    12: Decimal(env.str("TOKEN_PRICE_12H", default="10")),
    24: Decimal(env.str("TOKEN_PRICE_24H", default="18")),
    168: Decimal(env.str("TOKEN_PRICE_168H", default="100")),
    720: Decimal(env.str("TOKEN_PRICE_720H", default="300")),
}
# Token validation cache: positive entries live at most this long (and never past expiry);
# negative answers (unknown token, inactive user) only briefly.
TOKEN_CACHE_TTL = env.int("TOKEN_CACHE_TTL", default=300)
TOKEN_NEGATIVE_CACHE_TTL = env.int("TOKEN_NEGATIVE_CACHE_TTL", default=10)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)

# --- Proxy and upstream ------------------------------------------------------------------
ZENZEFI_TARGET_URL = env.str("ZENZEFI_TARGET_URL", default="http://127.0.0.1:9000")
BACKEND_URL = env.str("BACKEND_URL", default="http://127.0.0.1:8000")
PROXY_CONNECT_TIMEOUT = env.float("PROXY_CONNECT_TIMEOUT", default=5.0)
PROXY_READ_TIMEOUT = env.float("PROXY_READ_TIMEOUT", default=30.0)
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=5)
# Requests per token per minute through the proxy (atomic counters in Redis / the shared cache).
PROXY_RATE_LIMIT_PER_MINUTE = env.int("PROXY_RATE_LIMIT_PER_MINUTE", default=1000)
# Waiting for a free upstream connection from the pool (seconds).
PROXY_POOL_TIMEOUT = env.float("PROXY_POOL_TIMEOUT", default=5.0)
# Upstream connections per worker process (the pool's limit) and how long idle ones are kept.
PROXY_MAX_CONNECTIONS = env.int("PROXY_MAX_CONNECTIONS", default=100)
PROXY_KEEPALIVE_SECONDS = env.float("PROXY_KEEPALIVE_SECONDS", default=15.0)
# Circuit breaker: after this many consecutive connection failures the proxy answers 503 at once
# for PROXY_CIRCUIT_COOLDOWN seconds, then lets one probe request through.
PROXY_CIRCUIT_FAILURES = env.int("PROXY_CIRCUIT_FAILURES", default=5)
PROXY_CIRCUIT_COOLDOWN = env.float("PROXY_CIRCUIT_COOLDOWN", default=10.0)
# Session counters (requests, bytes, last seen) are batched per worker and written to the kv
# this often (seconds; 0 = on every request). The flush job copies them into ProxySession rows.
PROXY_COUNTER_FLUSH_SECONDS = env.float("PROXY_COUNTER_FLUSH_SECONDS", default=1.0)
# Browser mode: the httponly cookie set by POST /api/v1/proxy/session and its lifetime cap.
PROXY_SESSION_COOKIE = env.str("PROXY_SESSION_COOKIE", default="zz_proxy")
PROXY_SESSION_COOKIE_MAX_AGE = env.int("PROXY_SESSION_COOKIE_MAX_AGE", default=12 * 3600)


def _other_loopback(url: str) -> str:
    """BACKEND_URL on the other loopback name (same scheme and port), "" for any other host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(parts.hostname or "")
    if not other:
        return ""
    return f"{parts.scheme}://{other}{f':{parts.port}' if parts.port else ''}"


# Browser mode's own origin (SPEC §8, docs/proxy-origin.md): requests whose Host is this origin's
# host[:port] go to the upstream, path for path; no platform page, API or cookie is reachable there.
# Default: BACKEND_URL on the other loopback name; production: a host name of its own (e.g.
# https://proxy.example.com). Empty (a non-loopback BACKEND_URL and no value): browser mode is off.
PROXY_ORIGIN = env.str("PROXY_ORIGIN", default="") or _other_loopback(BACKEND_URL)
# Lifetime of the one-time browser-mode link from POST /api/v1/proxy/session (seconds).
PROXY_ENTRY_TTL = env.int("PROXY_ENTRY_TTL", default=60)
# Longest silence while reading a proxied request body (seconds) -> 408 body_timeout.
PROXY_BODY_TIMEOUT = env.float("PROXY_BODY_TIMEOUT", default=15.0)
# Proxied requests in flight per token (429 too_many_concurrent beyond; 0 = no cap).
PROXY_MAX_CONCURRENT_PER_TOKEN = env.int("PROXY_MAX_CONCURRENT_PER_TOKEN", default=20)
# The async Redis connection pool per worker process (the proxy's hot path): its size, and how
# long a request waits for a free connection before it fails (503 service_unavailable).
REDIS_POOL_SIZE = env.int("REDIS_POOL_SIZE", default=100)
REDIS_POOL_TIMEOUT = env.float("REDIS_POOL_TIMEOUT", default=5.0)

# --- Jobs, retention, backups, webhooks --------------------------------------------------
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=30)
BACKUP_DIR = env.str("BACKUP_DIR", default=str(VAR_DIR / "backups"))
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
# Customer webhooks: per-attempt timeout (seconds), attempts per delivery (the first one
# included), exponential backoff with jitter between attempts, and after how many days of
# uninterrupted failure an endpoint is disabled. Secrets are derived from WEBHOOK_SIGNING_KEY
# (required when DEBUG is off; independent of SECRET_KEY) and never stored: changing it changes
# every endpoint's secret.
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30)
# Outbox: a webhook delivery / email row committed but never queued (crash between commit and
# enqueue) is queued by the sweepers once it is this old and never attempted.
OUTBOX_GRACE_SECONDS = env.int("OUTBOX_GRACE_SECONDS", default=60)
# Notification emails: attempts per email (the first one included) and the backoff between them
# (the same formula as webhooks, zenzefi.outbox.backoff_seconds: base × 2^(n−1), capped, + jitter).
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=6)
EMAIL_RETRY_BASE_SECONDS = env.int("EMAIL_RETRY_BASE_SECONDS", default=60)
EMAIL_RETRY_MAX_SECONDS = env.int("EMAIL_RETRY_MAX_SECONDS", default=3600)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600)
WEBHOOK_DISABLE_AFTER_DAYS = env.int("WEBHOOK_DISABLE_AFTER_DAYS", default=3)
WEBHOOK_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOK_MAX_ENDPOINTS_PER_USER", default=10)
WEBHOOK_SIGNING_KEY = _required_secret("WEBHOOK_SIGNING_KEY")
# Notifications: low-balance threshold (ZNC) and how long before expiry a token is announced.
LOW_BALANCE_THRESHOLD = Decimal(env.str("LOW_BALANCE_THRESHOLD", default="10"))
LOW_BALANCE_NOTIFY_EVERY_HOURS = env.int("LOW_BALANCE_NOTIFY_EVERY_HOURS", default=24)
TOKEN_EXPIRING_NOTIFY_HOURS = env.int("TOKEN_EXPIRING_NOTIFY_HOURS", default=24)
# Health checks (run by the beat job, read by /health): cached result lifetime (seconds), the
# upstream probe's timeout, and the response time above which a component counts as degraded.
HEALTH_CACHE_TTL = env.int("HEALTH_CACHE_TTL", default=120)
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=3.0)
HEALTH_DEGRADED_MS = env.int("HEALTH_DEGRADED_MS", default=1000)
# Public URL of the customer pages, used in emails.
SITE_URL = env.str("SITE_URL", default="") or BACKEND_URL

# --- Payments, referrals, gifts, tiers ---------------------------------------------------
# Top-up provider for new payments: "mock" (the local checkout page; only while
# MOCK_PAYMENTS_ENABLED) or "yookassa" (YooKassa's HTTP API v3).
PAYMENT_PROVIDER = env.str("PAYMENT_PROVIDER", default="mock")
# HMAC-SHA256 key of the mock provider's callbacks (header X-Payment-Signature: sha256=<hex>
# over the raw body). Required when DEBUG is off; independent of SECRET_KEY.
PAYMENT_WEBHOOK_SECRET = _required_secret("PAYMENT_WEBHOOK_SECRET")
# Where the provider sends the customer after paying (default: the payment's own return page,
# /payments/return/<uid>/, which checks the status with the provider at once).
PAYMENT_RETURN_URL = env.str("PAYMENT_RETURN_URL", default="")
YOOKASSA_SHOP_ID = env.str("YOOKASSA_SHOP_ID", default="")
YOOKASSA_SECRET_KEY = env.str("YOOKASSA_SECRET_KEY", default="")
YOOKASSA_API_URL = env.str("YOOKASSA_API_URL", default="https://api.yookassa.ru/v3")
YOOKASSA_TIMEOUT = env.float("YOOKASSA_TIMEOUT", default=10.0)
# The currency YooKassa charges when a top-up is asked for in ZNC (converted at the current rate).
YOOKASSA_CURRENCY = env.str("YOOKASSA_CURRENCY", default="RUB")
# Referral bonus (SPEC §6): PERCENT of the referred user's first top-up larger than MIN_TOPUP.
REFERRAL_BONUS_PERCENT = Decimal(env.str("REFERRAL_BONUS_PERCENT", default="10"))
REFERRAL_MIN_TOPUP = Decimal(env.str("REFERRAL_MIN_TOPUP", default="100"))
# Auto-renewal: tokens expiring within this many minutes are renewed (job every 5 minutes).
AUTO_RENEW_WINDOW_MINUTES = env.int("AUTO_RENEW_WINDOW_MINUTES", default=60)
# Gift codes expire this many days after purchase (no refund after expiry).
GIFT_CODE_TTL_DAYS = env.int("GIFT_CODE_TTL_DAYS", default=90)
# REST API requests per minute by tier (per user; anonymous callers per IP at the free rate).
# 0 = unlimited. Superusers are never limited.
API_RATE_LIMIT_FREE = env.int("API_RATE_LIMIT_FREE", default=100)
API_RATE_LIMIT_PREMIUM = env.int("API_RATE_LIMIT_PREMIUM", default=500)
API_RATE_LIMIT_ENTERPRISE = env.int("API_RATE_LIMIT_ENTERPRISE", default=0)
# Repeat offenders: over the limit in this many consecutive windows → banned for BAN_SECONDS.
API_RATE_LIMIT_BAN_AFTER = env.int("API_RATE_LIMIT_BAN_AFTER", default=3)
API_RATE_LIMIT_BAN_SECONDS = env.int("API_RATE_LIMIT_BAN_SECONDS", default=300)

# --- Email --------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Zenzefi <noreply@zenzefi.local>")

# --- Operations: logging, backups, metrics -----------------------------------------------
# Log lines: "json" (one JSON object per line, for log shippers) or "plain"; JSON unless DEBUG.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'plain', not {LOG_FORMAT!r}")
# Backup rotation (manage.py backup_db and the daily job): newest backup of each of the last N
# days, ISO weeks and months that have one.
BACKUP_KEEP_DAILY = env.int("BACKUP_KEEP_DAILY", default=7)
BACKUP_KEEP_WEEKLY = env.int("BACKUP_KEEP_WEEKLY", default=4)
BACKUP_KEEP_MONTHLY = env.int("BACKUP_KEEP_MONTHLY", default=3)
# Inside a container network Prometheus scrapes each web container by its IP address (DNS service
# discovery), which Django's host check would refuse: allow this host's own addresses too. The
# lookup runs at startup (zenzefi.startup), never at import.
ALLOWED_HOSTS_OWN_IPS = env.bool("ALLOWED_HOSTS_OWN_IPS", default=False)
# Prometheus multiprocess mode is switched on by the PROMETHEUS_MULTIPROC_DIR environment variable
# itself (read by prometheus_client at import time, so it is not a Django setting): gunicorn.conf.py
# and docker-compose.yml set it; see docs/monitoring.md.
# Graceful shutdown of Celery workers: a task is acknowledged after it ran (every job is
# idempotent, SPEC §10), a task whose worker process died is requeued, and a worker reserves one
# task at a time so a SIGTERM (warm shutdown) never strands prefetched ones.
CELERY_TASK_ACKS_LATE = env.bool("CELERY_TASK_ACKS_LATE", default=True)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)

# --- Celery -------------------------------------------------------------------------------
# "localhost" in the embedded broker's URL: the filesystem transport ignores it, and kombu warns without it.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery-broker"  # created at startup (zenzefi.startup)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# What a task prints (the console email backend's emails) is INFO in the worker's log, not WARNING.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# --- Logging ------------------------------------------------------------------------------
# WhiteNoise serves static files with a synchronous iterator; under ASGI Django warns about it on
# every file (harmless for small static files; the proxy and /health are raw ASGI, never this path).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# Every line carries the request id (zenzefi.request_id) and passes the redaction filter
# (Authorization, X-Access-Token, token=… never reach a log); LOG_FORMAT picks the formatter.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "zenzefi.logs.RequestIdFilter"},
        "redact": {"()": "zenzefi.logs.RedactFilter"},
    },
    "formatters": {
        "plain": {
            "()": "zenzefi.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "zenzefi.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
