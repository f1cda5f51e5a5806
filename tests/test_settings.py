"""Settings come from the environment; bad values stop the start with a clear error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "import json, invest_alchemy.settings as s; "
    "print(json.dumps({k: str(getattr(s, k, '')) for k in "
    "['EMAIL_BACKEND', 'EMAIL_HOST', 'EMAIL_PORT', 'EMAIL_HOST_USER', 'EMAIL_USE_TLS', "
    "'EMAIL_FILE_PATH', 'ANYMAIL', 'DEBUG', 'SECRET_KEY', 'DATABASES', 'CACHES', "
    "'CSRF_TRUSTED_ORIGINS', 'SECURE_PROXY_SSL_HEADER', 'RATELIMIT_IP_META_KEY', "
    "'Q_CLUSTER']}))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANYMAIL_", "EMAIL_"))}
    clean.pop("DATABASE_URL", None)
    clean.update({"SECRET_KEY": "x" * 50, "DEBUG": "0", **env})
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def loaded(**env: str) -> dict:
    result = settings_with(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_writes_email_to_files_by_default():
    values = loaded()
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert values["EMAIL_FILE_PATH"].endswith("var/mail")


def test_email_url_chooses_smtp():
    values = loaded(EMAIL_URL="smtp+tls://bot:p%40ss@smtp.example.com:587")
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (values["EMAIL_HOST"], values["EMAIL_PORT"]) == ("smtp.example.com", "587")
    assert values["EMAIL_HOST_USER"] == "bot"
    assert values["EMAIL_USE_TLS"] == "True"


def test_email_url_chooses_console_and_file_backends():
    assert "console" in loaded(EMAIL_URL="consolemail://")["EMAIL_BACKEND"]
    values = loaded(EMAIL_URL="filemail:///tmp/outbox")
    assert values["EMAIL_FILE_PATH"] == "/tmp/outbox"


def test_anymail_provider_and_keys_choose_an_anymail_backend(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("key-from-file\n")
    values = loaded(
        ANYMAIL_PROVIDER="mailgun",
        ANYMAIL_MAILGUN_API_KEY_FILE=str(key_file),
        ANYMAIL_WEBHOOK_SECRET="hook:secret",
    )
    assert values["EMAIL_BACKEND"] == "anymail.backends.mailgun.EmailBackend"
    assert "'MAILGUN_API_KEY': 'key-from-file'" in values["ANYMAIL"]
    assert "'WEBHOOK_SECRET': 'hook:secret'" in values["ANYMAIL"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"SIGNALS_MAX_ERRORS": "many"}, "SIGNALS_MAX_ERRORS must be a whole number"),
        ({"SIGNALS_PROVIDER": "yahoo"}, "SIGNALS_PROVIDER must be auto, tushare or csv"),
        ({"ANYMAIL_PROVIDER": "../../etc"}, "is not a provider name"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL is not a database URL"),
        ({"EMAIL_URL": "gopher://x"}, "EMAIL_URL is not an email URL"),
        ({"SITE_URL": "signals.example.com"}, "SITE_URL must be like https://"),
        ({"SIGNALS_LAST_TRY": "late"}, "SIGNALS_LAST_TRY must be a time"),
        ({"SIGNALS_SCHEDULE_CRON": "every evening"}, "is not a cron expression"),
        ({"Q_TIMEOUT": "2400", "Q_RETRY": "2400"}, "Q_TIMEOUT (2400) must be less than Q_RETRY"),
    ],
)
def test_bad_values_stop_the_start_with_a_clear_error(env, message):
    result = settings_with(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_debug_gives_a_development_key_and_local_hosts():
    values = loaded(DEBUG="1", SECRET_KEY="")
    assert values["DEBUG"] == "True"
    assert values["SECRET_KEY"].startswith("insecure-development-key")


def test_databases_and_caches_follow_their_urls():
    values = loaded(DATABASE_URL="postgres://u:p@db.example:5432/ia", REDIS_URL="redis://r:6379/0")
    assert "django.db.backends.postgresql" in values["DATABASES"]
    assert "RedisCache" in values["CACHES"]
    assert "DatabaseCache" in loaded()["CACHES"]


def test_redis_url_makes_redis_the_task_broker():
    assert "'redis': 'redis://r:6379/1'" in loaded(REDIS_URL="redis://r:6379/1")["Q_CLUSTER"]
    default = loaded()["Q_CLUSTER"]
    assert "'orm': 'default'" in default and "redis" not in default


def test_the_public_address_and_a_proxy_are_trusted():
    values = loaded(SITE_URL="https://signals.example.com/", BEHIND_PROXY="1")
    assert values["CSRF_TRUSTED_ORIGINS"] == "['https://signals.example.com']"
    assert "HTTP_X_FORWARDED_PROTO" in values["SECURE_PROXY_SSL_HEADER"]
    assert values["RATELIMIT_IP_META_KEY"] == "subscriptions.views.client_ip"
    assert loaded()["SECURE_PROXY_SSL_HEADER"] == ""
