"""Settings for Invest Alchemy: one file, every value read from the environment.

Defaults make a fresh checkout run with no set-up (SQLite, the bundled sample
prices, console email). Production switches behaviour with environment
variables; `.env.example` lists every one of them.
"""

from __future__ import annotations

import os
from datetime import time as _time
from pathlib import Path
from urllib.parse import urlsplit

import environ
from croniter import croniter
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# A local `.env` file, if there is one, fills in variables the environment lacks.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool) -> bool:
    value = os.getenv(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.getenv(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envfloat(name: str, default: float) -> float:
    value = os.getenv(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, not {number}")
    return number


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file that NAME_FILE points at."""
    path = os.getenv(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {e}") from None
    return os.getenv(name, default)


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if DEBUG:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-used-only-while-DEBUG-is-on"
elif len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    # The same bar as `check --deploy`: signed links in emails depend on it.
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters when DEBUG "
        "is off; make one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = [h.strip() for h in os.getenv("ALLOWED_HOSTS", "").split(",") if h.strip()]
if DEBUG and not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the site's host names (e.g. signals.example.com) when DEBUG is off"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "anymail",
    "django_ratelimit",
    "csp",
    "signals",
    "subscriptions",
]

MIDDLEWARE = [
    # First: answers /healthz before host checks and https redirects, so the
    # container's health probe works on any address.
    "invest_alchemy.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "invest_alchemy.urls"
WSGI_APPLICATION = "invest_alchemy.wsgi.application"

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

# SQLite in a local folder unless DATABASE_URL says otherwise (postgres://…).
DATABASE_URL = os.getenv("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"
try:
    DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
except Exception as e:  # django-environ raises several kinds for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {e}") from None
if not DATABASES["default"].get("ENGINE"):
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {DATABASE_URL!r}")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
# Keep connections between requests (opening one costs more than most pages),
# and check them before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = envint("DB_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates and numbers as each language writes them ("8 Jun 2023", "2023年6月8日").
FORMAT_MODULE_PATH = "invest_alchemy.formats"
TIME_ZONE = os.getenv("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Shared by every process, so rate limits hold across gunicorn workers: Redis
# when REDIS_URL is set, else a table in the database (`manage.py createcachetable`).
REDIS_URL = os.getenv("REDIS_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "invest_alchemy_cache",
            # Room for every fund page in both languages and four ranges.
            "OPTIONS": {"MAX_ENTRIES": envint("CACHE_MAX_ENTRIES", 20_000, minimum=100)},
        }
    )
}
# How often a process looks for a newer run (a new run shows within this).
SITE_RUN_CHECK_SECONDS = envint("SITE_RUN_CHECK_SECONDS", 2)
# django-ratelimit warns about any cache it does not list, Django's own
# RedisCache included (its increments are atomic, which is what it needs).
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if not REDIS_URL:
    # The database cache lacks atomic increments: two requests at the same
    # instant may count once. For a subscription form that is harmless; set
    # REDIS_URL for exact counts.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- Email ------------------------------------------------------------------
# Absolute links in emails start with this.
SITE_URL = os.getenv("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
_site = urlsplit(SITE_URL)
if _site.scheme not in ("http", "https") or not _site.netloc:
    raise ImproperlyConfigured(
        f"SITE_URL must be like https://signals.example.com, not {SITE_URL!r}"
    )
# Forms posted from the public address pass Django's origin check.
CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"]
# Behind a reverse proxy (Caddy, nginx) that sets X-Forwarded-Proto and
# X-Forwarded-For: trust them for https detection and the client's address.
BEHIND_PROXY = envbool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    RATELIMIT_IP_META_KEY = "subscriptions.views.client_ip"

# --- Security -------------------------------------------------------------
# A site whose public address is https gets secure cookies and HSTS; behind a
# proxy it also redirects plain http to https. Each can be overridden.
_https = _site.scheme == "https"
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", _https)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", _https and BEHIND_PROXY)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if _https else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _https)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", _https)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Every script, style, image and font comes from this site (no CDN, no inline
# code), so the policy can be strict. Charts are inline SVG, which needs nothing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ADMINS = [("Admin", a.strip()) for a in os.getenv("ADMINS", "").split(",") if a.strip()]
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "Invest Alchemy <signals@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# ANYMAIL_PROVIDER (e.g. "mailgun", "amazon_ses", "postmark") picks an anymail
# backend; its keys come from ANYMAIL_* variables (ANYMAIL_MAILGUN_API_KEY=… becomes
# ANYMAIL["MAILGUN_API_KEY"]). Otherwise EMAIL_URL picks a Django backend, as
# django-environ reads it: smtp://user:pass@host:587, smtp+tls://…, consolemail://,
# filemail:///path. With neither, emails are written to files in var/mail/.
ANYMAIL_PROVIDER = os.getenv("ANYMAIL_PROVIDER", "").strip().lower()
ANYMAIL: dict[str, str] = {}
for _key in os.environ:
    if _key.startswith("ANYMAIL_") and _key != "ANYMAIL_PROVIDER":
        _name = _key.removeprefix("ANYMAIL_").removesuffix("_FILE")
        ANYMAIL[_name] = envsecret(f"ANYMAIL_{_name}")
EMAIL_URL = os.getenv("EMAIL_URL", "")
if ANYMAIL_PROVIDER:
    if not ANYMAIL_PROVIDER.replace("_", "").isalnum():
        raise ImproperlyConfigured(f"ANYMAIL_PROVIDER {ANYMAIL_PROVIDER!r} is not a provider name")
    EMAIL_BACKEND = f"anymail.backends.{ANYMAIL_PROVIDER}.EmailBackend"
elif EMAIL_URL:
    try:
        _email = environ.Env.email_url_config(EMAIL_URL)
    except Exception as e:  # django-environ raises several kinds for a bad URL
        raise ImproperlyConfigured(f"EMAIL_URL is not an email URL: {e}") from None
    if not _email.get("EMAIL_BACKEND"):
        raise ImproperlyConfigured(f"EMAIL_URL is not an email URL: {EMAIL_URL!r}")
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
    EMAIL_PORT = _email.get("EMAIL_PORT") or 25
    EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
    EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
    EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
    EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
    # filemail:///srv/mail is the folder /srv/mail (django-environ drops the slash);
    # filemail://var/mail is var/mail in the project.
    _folder = urlsplit(EMAIL_URL).netloc + urlsplit(EMAIL_URL).path
    EMAIL_FILE_PATH = str(BASE_DIR / _folder) if _folder else str(BASE_DIR / "var" / "mail")
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(BASE_DIR / "var" / "mail")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30, minimum=1)

# --- Subscriptions ------------------------------------------------------------
SUBSCRIBE_CONFIRM_DAYS = envint("SUBSCRIBE_CONFIRM_DAYS", 3, minimum=1)
SUBSCRIBE_CONFIRMATIONS_PER_DAY = envint("SUBSCRIBE_CONFIRMATIONS_PER_DAY", 3, minimum=1)
SUBSCRIBE_RATE_PER_IP = os.getenv("SUBSCRIBE_RATE_PER_IP", "20/h")
# A confirm page opened this long after the email was sent confirms by itself
# (people are slow; link scanners open links as the mail arrives, which a
# greylisting server can delay by several minutes).
SUBSCRIBE_AUTOCONFIRM_AFTER = envint("SUBSCRIBE_AUTOCONFIRM_AFTER", 600)
RATELIMIT_VIEW = "subscriptions.views.rate_limited"
DIGEST_BATCH_SIZE = envint("DIGEST_BATCH_SIZE", 200, minimum=1)
# Messages per second at most; 0 means as fast as the provider takes them.
DIGEST_SEND_RATE = envfloat("DIGEST_SEND_RATE", 0)
DIGEST_MAX_ATTEMPTS = envint("DIGEST_MAX_ATTEMPTS", 5, minimum=1)
DIGEST_RETRY_SECONDS = envint("DIGEST_RETRY_SECONDS", 300)
# A batch that takes longer writes its results at least this often, so a
# process killed outright leaves only the last seconds' messages in doubt.
DIGEST_RECORD_SECONDS = envfloat("DIGEST_RECORD_SECONDS", 1.0)
# How the anymail provider writes an inline merge field, e.g. "%recipient.{}%";
# set it to batch-send with a provider this project does not know. Mailgun and
# SparkPost are known; others get one message per subscriber.
DIGEST_MERGE_FIELD_FORMAT = os.getenv("DIGEST_MERGE_FIELD_FORMAT", "")

# --- Prices and signals -----------------------------------------------------
# Which price provider to use: "auto" takes PRICE_CSV_DIR if set, else Tushare
# when TUSHARE_TOKEN is set, else the bundled sample; "tushare" or "csv" force one.
SIGNALS_PROVIDER = os.getenv("SIGNALS_PROVIDER", "auto").strip().lower()
if SIGNALS_PROVIDER not in {"auto", "tushare", "csv"}:
    raise ImproperlyConfigured(
        f"SIGNALS_PROVIDER must be auto, tushare or csv, not {SIGNALS_PROVIDER!r}"
    )
TUSHARE_TOKEN = envsecret("TUSHARE_TOKEN")
TUSHARE_API_URL = os.getenv("TUSHARE_API_URL", "http://api.waditu.com/dataapi")
TUSHARE_TIMEOUT = envfloat("TUSHARE_TIMEOUT", 30.0)
TUSHARE_MAX_TRIES = envint("TUSHARE_MAX_TRIES", 3, minimum=1)
TUSHARE_RETRY_WAIT = envfloat("TUSHARE_RETRY_WAIT", 2.0)
TUSHARE_RATE_LIMIT_WAIT = envfloat("TUSHARE_RATE_LIMIT_WAIT", 61.0)
SAMPLE_DATA_DIR = BASE_DIR / "signals" / "sample_data"
PRICE_CSV_DIR = os.getenv("PRICE_CSV_DIR", "")
# A run with more failed funds than this is marked failed and sends no digest.
SIGNALS_MAX_ERRORS = envint("SIGNALS_MAX_ERRORS", 5)

# Logs go to stdout, one line per event (tracebacks folded into the line), with
# the run date on every line a daily job writes. Admins are emailed when a page
# fails (Django's default) and when a scheduled task crashes; the job itself
# emails them when a run fails or the day's data never comes.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "task_failures": {"()": "invest_alchemy.logs.TaskFailures"},
    },
    "formatters": {
        "line": {"()": "invest_alchemy.logs.OneLineFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "line",
        },
        "mail_admins_task_failures": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "task_failures"],
        },
    },
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django-q": {"handlers": ["mail_admins_task_failures"], "level": "INFO"},
    },
}

# --- Scheduler --------------------------------------------------------------
# The daily job: when it runs (cron, in Asia/Shanghai time), and while the
# day's data is not published, how often it tries again and until when.
SIGNALS_SCHEDULE_CRON = os.getenv("SIGNALS_SCHEDULE_CRON", "30 18 * * 1-5")
SIGNALS_RETRY_MINUTES = envint("SIGNALS_RETRY_MINUTES", 30, minimum=1)
SIGNALS_LAST_TRY = os.getenv("SIGNALS_LAST_TRY", "22:30")
try:
    _time.fromisoformat(SIGNALS_LAST_TRY)
except ValueError:
    raise ImproperlyConfigured(
        f"SIGNALS_LAST_TRY must be a time like 22:30, not {SIGNALS_LAST_TRY!r}"
    ) from None
if not croniter.is_valid(SIGNALS_SCHEDULE_CRON):
    raise ImproperlyConfigured(
        f"SIGNALS_SCHEDULE_CRON is not a cron expression: {SIGNALS_SCHEDULE_CRON!r}"
    )
# /healthz answers 503 when the newest successful run's date is more than this
# many days old (the longest exchange closures, Spring Festival and National
# Day, with their weekends, last up to 11 days), or when the daily job is this
# many minutes past its time without having started (a stopped worker).
HEALTHZ_MAX_RUN_AGE_DAYS = envint("HEALTHZ_MAX_RUN_AGE_DAYS", 12, minimum=1)
HEALTHZ_SCHEDULE_GRACE_MINUTES = envint("HEALTHZ_SCHEDULE_GRACE_MINUTES", 60, minimum=1)

# django-q2. The database is the broker unless REDIS_URL is set; then Redis is,
# so that workers on several machines share the queue. A task may run for
# Q_TIMEOUT seconds; with the database broker, one not acknowledged within
# Q_RETRY of being fetched is handed out again. A worker fetches up to
# `queue_limit` tasks ahead, and a fetched task may wait for those before it
# and for the one running, so Q_RETRY must exceed Q_TIMEOUT × (queue_limit + 2)
# or a task still waiting or running would start twice. A task is tried once
# (the daily job schedules its own retries) and failures are acknowledged.
Q_WORKERS = envint("Q_WORKERS", 1, minimum=1)
Q_TIMEOUT = envint("Q_TIMEOUT", 1800, minimum=60)
Q_RETRY = envint("Q_RETRY", 6000, minimum=120)
Q_CLUSTER = {
    "name": "invest_alchemy",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
    "workers": Q_WORKERS,
    "queue_limit": Q_WORKERS,  # one task fetched ahead per worker
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "time_zone": "Asia/Shanghai",
}
# Seconds a task spends sending a digest before it leaves the rest to a
# follow-up task: inside Q_TIMEOUT, with room for the run before it.
DIGEST_SEND_SECONDS = envint("DIGEST_SEND_SECONDS", Q_TIMEOUT * 3 // 4, minimum=10)
if DIGEST_SEND_SECONDS >= Q_TIMEOUT:
    raise ImproperlyConfigured(
        f"DIGEST_SEND_SECONDS ({DIGEST_SEND_SECONDS}) must be less than Q_TIMEOUT ({Q_TIMEOUT})"
    )
if Q_RETRY <= Q_TIMEOUT * (Q_WORKERS + 2):
    raise ImproperlyConfigured(
        f"Q_RETRY ({Q_RETRY}) must be more than Q_TIMEOUT × (Q_WORKERS + 2) "
        f"({Q_TIMEOUT * (Q_WORKERS + 2)}), or a task still waiting or running would be "
        "handed to a second worker"
    )
