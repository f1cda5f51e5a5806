from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pandas as pd
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import translation

from signals.views import page_memory
from tests.base import unavailable
from tests.smtp_server import SmtpSink
from tests.tushare_server import TushareServer

SAMPLE = Path(django_settings.SAMPLE_DATA_DIR)


def read_sample(name: str) -> pd.DataFrame:
    """A bundled sample table as Tushare serves it: every column as text."""
    return pd.read_csv(SAMPLE / f"{name}.csv", dtype=str, keep_default_na=False)


@pytest.fixture(autouse=True)
def _default_language():
    """A request activates its language for the thread; the next test starts afresh."""
    yield
    translation.deactivate()
    page_memory.clear()  # pages rendered for one test's runs


@pytest.fixture(scope="session")
def sample_tables() -> dict[str, pd.DataFrame]:
    return {
        name: read_sample(name) for name in ("fund_basic", "trade_cal", "fund_daily", "fund_adj")
    }


@pytest.fixture
def tushare(sample_tables: dict[str, pd.DataFrame], settings) -> Iterator[TushareServer]:
    """A loopback Tushare server over the sample data, and settings that use it."""
    with TushareServer({k: v.copy() for k, v in sample_tables.items()}) as server:
        settings.SIGNALS_PROVIDER = "tushare"
        settings.TUSHARE_TOKEN = server.token
        settings.TUSHARE_API_URL = server.url
        settings.TUSHARE_RETRY_WAIT = 0
        settings.TUSHARE_RATE_LIMIT_WAIT = 0
        settings.TUSHARE_TIMEOUT = 5
        yield server


@pytest.fixture
def smtp(settings) -> Iterator[SmtpSink]:
    """A loopback SMTP server, and settings that send email to it."""
    with SmtpSink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = sink.host, sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        yield sink


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright; with CI=true it must be there."""
    from playwright.sync_api import sync_playwright

    from tests.browser_setup import ARGS, chromium

    # Playwright's synchronous API keeps an event loop in this thread; the
    # Django calls the tests make between page actions are synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    path = chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing and could not be installed (apt-get install chromium)")
        pytest.skip("Chromium is not installed here: apt-get install chromium to run browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def test_database_url() -> str:
    """The test database as a DATABASE_URL for the subprocess."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        unavailable(
            f"this test needs PostgreSQL (the {connection.vendor} test database is not "
            "visible to another process): set DATABASE_URL=postgres://…"
        )
    user = quote(db["USER"] or "", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db["HOST"] or ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}{query}"
