"""Settings for every deployment, read from the environment (`.env.example` lists each variable).

With no variables set the platform runs embedded: SQLite, local-memory cache, in-memory channel layer,
in-process periodic jobs. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis. With
`HFT_ENV=production` the settings fail closed: no default secret, DEBUG off, hosts required.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HFT_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


HFT_ENV = os.environ.get("HFT_ENV", "development")
IS_PRODUCTION = HFT_ENV == "production"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when HFT_ENV=production")
    # Development only: a fixed, obviously insecure key so sessions survive restarts.
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

DEBUG = False if IS_PRODUCTION else env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if IS_PRODUCTION else "127.0.0.1,localhost,testserver,[::1]")
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when HFT_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "simple_history",
    "hftplatform",
    "apps.tiers",
    "apps.orderbook",
    "apps.microstructure",
    "apps.orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early: it begins an API request's rate-limit round trip, which then runs while the rest of the chain,
    # URL routing and DRF's set-up do (apps/tiers/authentication.py).
    "apps.tiers.middleware.RateLimitHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "hftplatform.urls"
ASGI_APPLICATION = "hftplatform.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    _db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=0))
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # psycopg 3's pool; Django requires CONN_MAX_AGE=0 with it.
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("HFT_DB_POOL_MIN", "2")),
            "max_size": int(os.environ.get("HFT_DB_POOL_MAX", "20")),
            "timeout": 10,
        }
    DATABASES = {"default": _db}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "hftplatform.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker, rate limits, usage counters -----------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hft",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL and not os.environ.get("CELERY_BROKER_URL")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"

# --- Platform -------------------------------------------------------------------------------------
# How the rate limiter behaves when Redis cannot be reached: "local" falls back to a per-process
# in-memory limiter (each process enforces the full limit, so a cluster of N processes may let up to
# N times through while Redis is down); "deny" refuses with 503. See README "Rate limiting".
HFT_RATELIMIT_ON_REDIS_DOWN = os.environ.get("HFT_RATELIMIT_ON_REDIS_DOWN", "local")
if HFT_RATELIMIT_ON_REDIS_DOWN not in {"local", "deny"}:
    raise ImproperlyConfigured("HFT_RATELIMIT_ON_REDIS_DOWN must be 'local' or 'deny'")
# Seconds between pushes of each process's usage counters to Redis (or the database when embedded).
HFT_USAGE_PUSH_S = float(os.environ.get("HFT_USAGE_PUSH_S", "2"))
# Push usage from a background thread of each process (tests turn it off and push by hand).
HFT_USAGE_BACKGROUND = env_bool("HFT_USAGE_BACKGROUND", True)
# Seconds between flushes of usage counters from Redis into PostgreSQL (Celery beat).
HFT_USAGE_FLUSH_S = float(os.environ.get("HFT_USAGE_FLUSH_S", "30"))
# Proxies whose X-Forwarded-For is believed when finding the client IP for allow-lists.
HFT_TRUSTED_PROXIES = env_list("HFT_TRUSTED_PROXIES")
# Largest Authorization / X-API-Key header accepted; longer is a 400, never parsed.
HFT_MAX_KEY_HEADER_BYTES = int(os.environ.get("HFT_MAX_KEY_HEADER_BYTES", "256"))
# django-ratelimit rate for unauthenticated surfaces (admin login, public pages), per client IP.
HFT_PUBLIC_RATE = os.environ.get("HFT_PUBLIC_RATE", "60/m")
HFT_LOGIN_RATE = os.environ.get("HFT_LOGIN_RATE", "10/m")
PORT = int(os.environ.get("PORT", "8000"))
# Freeze the start-up heap out of the garbage collector's full collections in ASGI server processes
# (hftplatform/asgi.py); off only to compare.
HFT_GC_FREEZE = env_bool("HFT_GC_FREEZE", True)
# Run Django's middleware chain and view in one hop on a reused thread (hftplatform/handler.py); 0 serves
# HTTP with Django's stock ASGIHandler (a thread per request, three hand-offs), kept for comparison.
HFT_SYNC_CHAIN_HANDLER = env_bool("HFT_SYNC_CHAIN_HANDLER", True)

# --- Market data ----------------------------------------------------------------------------------
# Venue feeds, JSON (see .env.example and README "Feeds"); unset: the built-in simulated venue.
HFT_FEEDS = os.environ.get("HFT_FEEDS", "")
# Events kept per book for delta history (the most any tier may read back).
HFT_DELTA_HISTORY = int(os.environ.get("HFT_DELTA_HISTORY", "100000"))
# The simulated venue of the embedded run: port, symbols (our symbols), updates per second.
HFT_SIM_PORT = int(os.environ.get("HFT_SIM_PORT", "9100"))
HFT_SIM_SYMBOLS = env_list("HFT_SIM_SYMBOLS", "BTC-USDT,ETH-USDT")
HFT_SIM_RATE = float(os.environ.get("HFT_SIM_RATE", "200"))
# A feed runner's Redis lease; the beat job restarts any feed whose lease lapsed.
HFT_FEED_LEASE_MS = int(os.environ.get("HFT_FEED_LEASE_MS", "15000"))

# --- Latency statistics and Prometheus ------------------------------------------------------------
# Seconds between a process's flushes of its latency histograms (to Redis, or memory when embedded);
# the background flush can be turned off (tests), leaving flushes to readers.
HFT_LATENCY_PUSH_S = float(os.environ.get("HFT_LATENCY_PUSH_S", "2"))
HFT_LATENCY_BACKGROUND = env_bool("HFT_LATENCY_BACKGROUND", True)
# Bearer token for GET /metrics. Unset: open in development, 404 in production (fails closed).
HFT_METRICS_TOKEN = os.environ.get("HFT_METRICS_TOKEN", "")
# Book WebSocket: frames a connection may fall behind before it is closed as a slow consumer (4008),
# heartbeat period, frames kept per stream depth for resume, and how long an unused depth stream is kept.
HFT_WS_MAX_QUEUE = int(os.environ.get("HFT_WS_MAX_QUEUE", "2000"))
HFT_WS_HEARTBEAT_S = float(os.environ.get("HFT_WS_HEARTBEAT_S", "1"))
HFT_WS_RESUME_FRAMES = int(os.environ.get("HFT_WS_RESUME_FRAMES", "10000"))
HFT_WS_IDLE_KEEP_S = float(os.environ.get("HFT_WS_IDLE_KEEP_S", "120"))

# --- Microstructure (README "Microstructure") -----------------------------------------------------------
# Top-of-book sampling period of the live windows (ms), and how long a window keeps trades and samples (s;
# the longest metric window, 5 min, plus a margin for the realised-spread horizon).
HFT_MICRO_SAMPLE_MS = int(os.environ.get("HFT_MICRO_SAMPLE_MS", "100"))
HFT_MICRO_KEEP_S = int(os.environ.get("HFT_MICRO_KEEP_S", "330"))
if HFT_MICRO_KEEP_S < 300:  # the windows keep what the longest metric window (5 m) needs
    raise ImproperlyConfigured("HFT_MICRO_KEEP_S must be at least 300 (the 5-minute metric window)")
# Book levels per side that depth metrics read (at most 400), and how long a computed result is reused by
# REST and WebSocket readers of the same book and window (ms).
HFT_MICRO_DEPTH = min(int(os.environ.get("HFT_MICRO_DEPTH", "400")), 400)
HFT_MICRO_CACHE_MS = int(os.environ.get("HFT_MICRO_CACHE_MS", "200"))
# Seconds between metric updates on WS /api/hft/ws/microstructure/{pair}.
HFT_MICRO_WS_INTERVAL_S = float(os.environ.get("HFT_MICRO_WS_INTERVAL_S", "1"))
# The recorder (trades and 1 s / 1 m bars to the database): a thread of the embedded run (turn it off with
# 0), `manage.py runmicro` or the Celery task `run_micro_recorder_task` (queue "feeds") under a Redis lease.
HFT_MICRO_EMBEDDED_RECORDER = env_bool("HFT_MICRO_EMBEDDED_RECORDER", True)
HFT_MICRO_LEASE_MS = int(os.environ.get("HFT_MICRO_LEASE_MS", "15000"))
# Seconds between trade batches written, and the most trades held while the database is unreachable.
HFT_MICRO_TRADE_FLUSH_S = float(os.environ.get("HFT_MICRO_TRADE_FLUSH_S", "1"))
HFT_MICRO_TRADE_BUFFER = int(os.environ.get("HFT_MICRO_TRADE_BUFFER", "100000"))
# Retention of metric bars in seconds (0 = keep forever); the history API reads at most this many rows.
HFT_MICRO_BARS_1S_KEEP_S = int(os.environ.get("HFT_MICRO_BARS_1S_KEEP_S", "3600"))
HFT_MICRO_BARS_1M_KEEP_S = int(os.environ.get("HFT_MICRO_BARS_1M_KEEP_S", str(7 * 86400)))
HFT_MICRO_TRADES_KEEP_S = int(os.environ.get("HFT_MICRO_TRADES_KEEP_S", str(30 * 86400)))
HFT_MICRO_HISTORY_MAX_ROWS = int(os.environ.get("HFT_MICRO_HISTORY_MAX_ROWS", "1000"))

# --- Live venues (docs/live-venues.md) --------------------------------------------------------------
# Fernet key(s) encrypting customers' venue secrets, comma-separated (the first encrypts, any decrypts: key
# rotation). Unset: derived from DJANGO_SECRET_KEY (development only); production refuses to start without.
HFT_CREDENTIALS_KEY = os.environ.get("HFT_CREDENTIALS_KEY", "")
if IS_PRODUCTION and not HFT_CREDENTIALS_KEY:
    raise ImproperlyConfigured("HFT_CREDENTIALS_KEY must be set when HFT_ENV=production")
# Venues that take live orders, each with its adapter and REST base URL (tests point them at loopback).
HFT_LIVE_VENUES: dict[str, dict[str, str]] = {
    "binance": {
        "adapter": "binance_spot",
        "base_url": os.environ.get("HFT_LIVE_BINANCE_URL", "https://api.binance.com"),
    },
    "binance_us": {
        "adapter": "binance_spot",
        "base_url": os.environ.get("HFT_LIVE_BINANCE_US_URL", "https://api.binance.us"),
    },
}
_live_slugs = env_list("HFT_LIVE_VENUE_SLUGS", "binance,binance_us")
if not set(_live_slugs) <= set(HFT_LIVE_VENUES):
    raise ImproperlyConfigured(f"HFT_LIVE_VENUE_SLUGS may name only {sorted(HFT_LIVE_VENUES)}")
HFT_LIVE_VENUES = {slug: HFT_LIVE_VENUES[slug] for slug in _live_slugs}
# Seconds a live venue request may take before the order is left UNKNOWN (never re-sent); Binance's
# recvWindow in ms; seconds of clock skew allowed on top before an order the venue does not know is final.
HFT_LIVE_TIMEOUT_S = float(os.environ.get("HFT_LIVE_TIMEOUT_S", "5"))
HFT_LIVE_RECV_WINDOW_MS = int(os.environ.get("HFT_LIVE_RECV_WINDOW_MS", "5000"))
HFT_LIVE_RECONCILE_GRACE_S = float(os.environ.get("HFT_LIVE_RECONCILE_GRACE_S", "2"))
# Seconds between Celery beat runs of the reconciliation of UNKNOWN live orders.
HFT_LIVE_RECONCILE_S = float(os.environ.get("HFT_LIVE_RECONCILE_S", "10"))

# --- Paper engine (apps/orders/services/engine, docs/paper-engine.md) ----------------------------------
# Embedded, run the engine in the web process (off: order placement answers engine_unavailable).
HFT_PAPER_ENGINE = env_bool("HFT_PAPER_ENGINE", True)
# A batch of order updates, fills and balances is flushed at once when a command waits on it, else after
# this many ms or this many items.
HFT_PAPER_FLUSH_MS = float(os.environ.get("HFT_PAPER_FLUSH_MS", "5"))
HFT_PAPER_MAX_BATCH = int(os.environ.get("HFT_PAPER_MAX_BATCH", "500"))
# How long placement waits for the engine's report (s); an order not reported stays PENDING and executes once.
HFT_PAPER_REPLY_TIMEOUT_S = float(os.environ.get("HFT_PAPER_REPLY_TIMEOUT_S", "2"))
# Paper orders execute on this venue's book of their instrument ("consolidated" or a venue slug), up to
# this many levels deep.
HFT_PAPER_BOOK_VENUE = os.environ.get("HFT_PAPER_BOOK_VENUE", "consolidated")
HFT_PAPER_DEPTH = int(os.environ.get("HFT_PAPER_DEPTH", "200"))
# After a start, PENDING orders wait up to this long (s) for their book before executing (else NO_MARKET).
HFT_PAPER_START_GRACE_S = float(os.environ.get("HFT_PAPER_START_GRACE_S", "5"))
# Period of the dead man's switch watcher in the engine's process (ms; 0 turns it off).
HFT_PAPER_DEADMAN_MS = float(os.environ.get("HFT_PAPER_DEADMAN_MS", "200"))
# With Redis: the engine's lease (`manage.py runpaper` or the Celery task on queue "feeds"; beat restarts it).
HFT_PAPER_LEASE_MS = int(os.environ.get("HFT_PAPER_LEASE_MS", "15000"))
# Play money a customer starts with, per currency, granted on the first use of that currency (a JSON object of
# decimal strings; apps/orders/services/balances.py). Invalid JSON or amounts fail at start-up.
HFT_PAPER_GRANTS: dict[str, str] = json.loads(
    os.environ.get("HFT_PAPER_GRANTS")
    or '{"USDT": "100000", "USDC": "100000", "USD": "100000", "EUR": "100000", "BTC": "2", "ETH": "20"}'
)
if not isinstance(HFT_PAPER_GRANTS, dict) or not all(
    isinstance(amount, str) and amount.replace(".", "", 1).isdigit() for amount in HFT_PAPER_GRANTS.values()
):
    raise ImproperlyConfigured('HFT_PAPER_GRANTS must be a JSON object of decimal strings, e.g. {"USDT": "100000"}')

RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "hftplatform.views.ratelimited"
if not REDIS_URL:
    # Local memory is per process; django-ratelimit warns that it is not shared. Embedded mode is one
    # process, so the limit is exact there.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

CELERY_BEAT_SCHEDULE = {
    "flush-usage": {"task": "apps.tiers.tasks.flush_usage_task", "schedule": HFT_USAGE_FLUSH_S},
    "supervise-feeds": {"task": "apps.orderbook.tasks.supervise_feeds", "schedule": HFT_FEED_LEASE_MS / 1000},
    "supervise-paper-engine": {
        "task": "apps.orders.tasks.supervise_paper_engine",
        "schedule": HFT_PAPER_LEASE_MS / 1000,
    },
    "reconcile-live-orders": {
        "task": "apps.orders.services.live.tasks.reconcile_unknown_orders_task",
        "schedule": HFT_LIVE_RECONCILE_S,
    },
    "supervise-microstructure": {
        "task": "apps.microstructure.tasks.supervise_microstructure",
        "schedule": HFT_MICRO_LEASE_MS / 1000,
    },
}
# Feed runners are long-lived tasks on their own queue, acknowledged on receipt (a lease, not a redelivery,
# guarantees a single holder), one per worker process.
# The live-order reconciliation task lives beside its service, outside the autodiscovered apps/*/tasks.py.
CELERY_IMPORTS = ["apps.orders.services.live.tasks"]
CELERY_TASK_ROUTES = {
    "apps.orderbook.tasks.run_feed_task": {"queue": "feeds"},
    "apps.orderbook.tasks.run_consolidator_task": {"queue": "feeds"},
    "apps.orders.tasks.run_paper_engine_task": {"queue": "feeds"},
    "apps.microstructure.tasks.run_micro_recorder_task": {"queue": "feeds"},
}

# --- DRF and OpenAPI ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.tiers.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.tiers.permissions.HasKeyPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hftplatform.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "hftplatform API",
    "DESCRIPTION": (
        "Market data and order entry for trading firms. Authenticate every call with an API key in "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>`. Every response carries rate-limit headers."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- Static files, i18n ---------------------------------------------------------------------------
STATIC_URL = "/static/"
# Production serves collected files (`manage.py collectstatic`); development serves from the apps.
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or (str(BASE_DIR / "staticfiles") if IS_PRODUCTION else None)
# The JavaScript stream client, for customers' pages: /static/hftclient/hftclient.js.
STATICFILES_DIRS = [("hftclient", BASE_DIR / "clients" / "js")]
# Serve straight from the apps' static folders in development so no collectstatic is needed.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("HFT_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
