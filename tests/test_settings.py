"""Settings come from the environment; bad values stop the start with a clear error."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEY = "settings-test-key-0123456789-abcdefghijklmnopqrstuvwxyz"
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
    clean.update({"SECRET_KEY": KEY, "DEBUG": "0", "ALLOWED_HOSTS": "signals.example.com", **env})
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
    assert loaded(EMAIL_URL="filemail://var/outbox")["EMAIL_FILE_PATH"] == str(ROOT / "var/outbox")
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
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set to a random value"),
        ({"SECRET_KEY": "x" * 60}, "SECRET_KEY must be set to a random value"),
        ({"SECRET_KEY": "django-insecure-" + KEY}, "SECRET_KEY must be set to a random value"),
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS must name the site's host names"),
        ({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS must be a whole number"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"SIGNALS_MAX_ERRORS": "many"}, "SIGNALS_MAX_ERRORS must be a whole number"),
        ({"SIGNALS_PROVIDER": "yahoo"}, "SIGNALS_PROVIDER must be auto, tushare or csv"),
        ({"ANYMAIL_PROVIDER": "../../etc"}, "is not a provider name"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL is not a database URL"),
        ({"EMAIL_URL": "gopher://x"}, "EMAIL_URL is not an email URL"),
        ({"SITE_URL": "signals.example.com"}, "SITE_URL must be like https://"),
        ({"SIGNALS_LAST_TRY": "late"}, "SIGNALS_LAST_TRY must be a time"),
        ({"SIGNALS_SCHEDULE_CRON": "every evening"}, "is not a cron expression"),
        ({"Q_TIMEOUT": "1800", "Q_RETRY": "5400"}, "Q_RETRY (5400) must be more than Q_TIMEOUT"),
        ({"Q_WORKERS": "2", "Q_RETRY": "7000"}, "Q_RETRY (7000) must be more than Q_TIMEOUT"),
    ],
)
def test_bad_values_stop_the_start_with_a_clear_error(env, message):
    result = settings_with(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_debug_gives_a_development_key_and_local_hosts():
    assert loaded(DEBUG="1", SECRET_KEY="short")["SECRET_KEY"] == "short"
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


def production_env() -> dict[str, str]:
    """The production `.env` the README documents, with a random SECRET_KEY filled in."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- production-env")[1].split("```sh\n")[1].split("```")[0]
    env = {}
    for line in block.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    assert env["DEBUG"] == "0" and env["SECRET_KEY"] == ""
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def test_the_documented_production_environment_passes_check_deploy():
    # Only the documented variables: nothing from the test run (DJANGO_*, EMAIL_*, …).
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(production_env())
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_sets_secure_cookies_hsts_and_the_https_redirect():
    show = (
        "import json, invest_alchemy.settings as s; print(json.dumps({k: getattr(s, k) for k in "
        "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'CSRF_TRUSTED_ORIGINS', 'ALLOWED_HOSTS']}))"
    )

    def values(**env: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", show],
            cwd=ROOT,
            env={**os.environ, "SECRET_KEY": KEY, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    production = values(**production_env())
    assert production == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "CSRF_TRUSTED_ORIGINS": ["https://signals.example.com"],
        "ALLOWED_HOSTS": ["signals.example.com"],
    }
    local = values(DEBUG="1", SITE_URL="http://127.0.0.1:8000", ALLOWED_HOSTS="")
    assert not local["SESSION_COOKIE_SECURE"] and not local["SECURE_SSL_REDIRECT"]
    assert local["SECURE_HSTS_SECONDS"] == 0


def test_manage_py_names_a_bad_setting_in_one_line():
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(DEBUG="0", SECRET_KEY="short", ALLOWED_HOSTS="signals.example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Configuration error: SECRET_KEY must be set")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_env_example_lists_every_variable_the_settings_read():
    source = (ROOT / "invest_alchemy" / "settings.py").read_text(encoding="utf-8")
    read = set(
        re.findall(r'(?:envbool|envint|envfloat|envsecret|os\.getenv)\("([A-Z][A-Z0-9_]*)"', source)
    )
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert len(read) > 40
    assert read - listed == set()
