"""Settings for the Librarian: one file, every knob an environment variable.

The embedded default (no env) runs on SQLite, the ORM broker, polling for live
events, Qdrant local mode and local files. `REDIS_URL`, `DATABASE_URL`,
`QDRANT_URL` and `LIBRARIAN_STORAGE=s3` switch each part to its production engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url

from librarian import __version__
from librarian.env import envbool, envfloat, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = __version__

DEBUG = envbool("LIBRARIAN_DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or envbool("LIBRARIAN_TESTING", False):
        SECRET_KEY = "insecure-development-key-not-for-production"  # noqa: S105
    else:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SECRET_KEY must be set (make run sets a development key)")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

DATA_DIR = Path(envstr("LIBRARIAN_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_q",
    "channels",
    "librarian",
    "library",
    "ingestion",
]

MIDDLEWARE = [
    "librarian.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "librarian.security.SecurityHeadersMiddleware",
    # Before sessions, CSRF and auth: a CORS preflight carries no credentials.
    "librarian.security.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "librarian.db_unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "librarian.urls"
ASGI_APPLICATION = "librarian.asgi.application"
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

# Database: SQLite under the data folder unless DATABASE_URL names another.
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES: dict[str, Any] = {
        # Reused connections save a connect per request; health checks drop dead ones.
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
    # One test database per test run, so parallel runs on one server do not collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(envstr("LIBRARIAN_SQLITE_PATH", str(DATA_DIR / "librarian.sqlite3"))),
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE makes a
                # writer wait for the lock up front instead of failing mid-way.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A file (not memory) so server and worker processes in tests share it.
            "TEST": {"NAME": DATA_DIR / f"test-librarian-{os.getpid()}.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")

if REDIS_URL:
    CACHES: dict[str, Any] = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CHANNEL_LAYERS: dict[str, Any] = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 defaults to a 5 s socket timeout (idle
                        # consumers die) and a pool that raises when full.
                        "socket_timeout": None,
                        "max_connections": envint("LIBRARIAN_REDIS_MAX_CONNECTIONS", 10000),
                    }
                ],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "librarian_cache",
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

Q_CLUSTER: dict[str, Any] = {
    "name": "librarian",
    "workers": envint("LIBRARIAN_WORKERS", 2),
    "recycle": 500,
    "timeout": envint("LIBRARIAN_TASK_TIMEOUT_S", 600),
    "retry": envint("LIBRARIAN_TASK_TIMEOUT_S", 600) + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 200,
    "poll": 0.2,
    "orm": "default",
}
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
LIBRARIAN_SERVE_STATIC = envbool("LIBRARIAN_SERVE_STATIC", True)

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Files: the library tree lives under library/tier-x/ in the chosen storage.
LIBRARIAN_STORAGE = envstr("LIBRARIAN_STORAGE", "local")
MEDIA_ROOT = DATA_DIR / "files"
MEDIA_URL = "/files/"
STORAGES: dict[str, Any] = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "allow_overwrite": True},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if LIBRARIAN_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": envstr("AWS_STORAGE_BUCKET_NAME", "librarian"),
            "endpoint_url": envstr("AWS_S3_ENDPOINT_URL") or None,
            "region_name": envstr("AWS_S3_REGION_NAME", "us-east-1"),
            "access_key": envstr("AWS_ACCESS_KEY_ID") or None,
            "secret_key": envstr("AWS_SECRET_ACCESS_KEY") or None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
        },
    }

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"ingest": envstr("LIBRARIAN_INGEST_RATE", "120/min")},
    "EXCEPTION_HANDLER": "librarian.api_errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "The Librarian API",
    "DESCRIPTION": "Submit URLs, follow their progress live, browse and search the library.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Fetching: refuse private addresses unless an intranet install allows them.
LIBRARIAN_FETCH_ALLOW_PRIVATE = envbool("LIBRARIAN_FETCH_ALLOW_PRIVATE", False)
LIBRARIAN_FETCH_MAX_BYTES = envint("LIBRARIAN_FETCH_MAX_BYTES", 10 * 1024 * 1024)
LIBRARIAN_FETCH_CONNECT_TIMEOUT_S = envfloat("LIBRARIAN_FETCH_CONNECT_TIMEOUT_S", 5.0)
LIBRARIAN_FETCH_READ_TIMEOUT_S = envfloat("LIBRARIAN_FETCH_READ_TIMEOUT_S", 10.0)
LIBRARIAN_FETCH_TOTAL_TIMEOUT_S = envfloat("LIBRARIAN_FETCH_TOTAL_TIMEOUT_S", 30.0)
LIBRARIAN_FETCH_MAX_REDIRECTS = envint("LIBRARIAN_FETCH_MAX_REDIRECTS", 5)
LIBRARIAN_FETCH_USER_AGENT = envstr(
    "LIBRARIAN_FETCH_USER_AGENT", f"Mozilla/5.0 (compatible; Librarian/{__version__})"
)
LIBRARIAN_FETCH_PER_HOST = envint("LIBRARIAN_FETCH_PER_HOST", 2)

# Analysis and tiers.
LIBRARIAN_ANALYZER = envstr("LIBRARIAN_ANALYZER", "local")
LIBRARIAN_ANALYZER_FALLBACK = envbool("LIBRARIAN_ANALYZER_FALLBACK", True)
LIBRARIAN_MIN_WORDS = envint("LIBRARIAN_MIN_WORDS", 80)
LIBRARIAN_TIER_THRESHOLDS = [float(x) for x in envlist("LIBRARIAN_TIER_THRESHOLDS", "7.5,5.5,3.5")]
LIBRARIAN_MAX_TAGS = envint("LIBRARIAN_MAX_TAGS", 8)
LIBRARIAN_TAG_VOCABULARY = envstr("LIBRARIAN_TAG_VOCABULARY")
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = envstr("OPENAI_BASE_URL")
LIBRARIAN_LLM_MODEL = envstr("LIBRARIAN_LLM_MODEL", "gpt-4o-mini")
LIBRARIAN_LLM_TIMEOUT_S = envfloat("LIBRARIAN_LLM_TIMEOUT_S", 60.0)
LIBRARIAN_LLM_MAX_RETRIES = envint("LIBRARIAN_LLM_MAX_RETRIES", 3)

# Embeddings and the vector index.
LIBRARIAN_EMBEDDER = envstr("LIBRARIAN_EMBEDDER", "local")
LIBRARIAN_EMBEDDING_MODEL = envstr("LIBRARIAN_EMBEDDING_MODEL", "text-embedding-3-small")
LIBRARIAN_EMBEDDING_DIM = envint("LIBRARIAN_EMBEDDING_DIM", 0) or None
LIBRARIAN_NEAR_DUPLICATE_THRESHOLD = envfloat("LIBRARIAN_NEAR_DUPLICATE_THRESHOLD", 0.95)
LIBRARIAN_CATCH_UP_S = envfloat("LIBRARIAN_CATCH_UP_S", 5.0)
QDRANT_URL = envstr("QDRANT_URL")
QDRANT_API_KEY = envstr("QDRANT_API_KEY")
QDRANT_PATH = DATA_DIR / "qdrant"

# Queue and live events.
LIBRARIAN_LEASE_S = envint("LIBRARIAN_LEASE_S", 60)
LIBRARIAN_SWEEP_S = envint("LIBRARIAN_SWEEP_S", 60)
LIBRARIAN_NUDGE_AFTER_S = envint("LIBRARIAN_NUDGE_AFTER_S", 30)
LIBRARIAN_MAX_ATTEMPTS = envint("LIBRARIAN_MAX_ATTEMPTS", 3)
LIBRARIAN_WORKER_NICE = envint("LIBRARIAN_WORKER_NICE", 10)
LIBRARIAN_MAX_BACKLOG = envint("LIBRARIAN_MAX_BACKLOG", 10000)
LIBRARIAN_SSE_HEARTBEAT_S = envfloat("LIBRARIAN_SSE_HEARTBEAT_S", 15.0)
LIBRARIAN_SSE_POLL_S = envfloat("LIBRARIAN_SSE_POLL_S", 0.2)
LIBRARIAN_PUBLIC_LIBRARY = envbool("LIBRARIAN_PUBLIC_LIBRARY", False)
LIBRARIAN_CORS_ORIGINS = envlist("LIBRARIAN_CORS_ORIGINS")
LIBRARIAN_METRICS_TOKEN = envstr("LIBRARIAN_METRICS_TOKEN")

# Security headers: secure cookies and HSTS unless development mode. The CSP and
# CORS headers come from librarian/security.py (CORS from LIBRARIAN_CORS_ORIGINS).
SESSION_COOKIE_SECURE = envbool("LIBRARIAN_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# SecurityMiddleware sends HSTS only on https requests, so plain-http development
# never pins a browser to https.
SECURE_HSTS_SECONDS = envint("LIBRARIAN_HSTS_SECONDS", 0 if DEBUG else 31536000)
# The app runs behind a TLS-terminating proxy in production. A client that forges
# this header on plain http gains nothing: browsers ignore HSTS over http, and
# CSRF's referer check only gets stricter.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "librarian.logging.JsonFormatter"}},
    "filters": {"request_id": {"()": "librarian.request_id.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "django-q": {"level": envstr("LOG_LEVEL_QUEUE", "WARNING")},
    },
}
