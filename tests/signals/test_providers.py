"""Price providers through the real `tushare` client against the loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings as django_settings

from signals.models import Fund, PriceBar
from signals.prices import Calendar, prices_sync
from signals.providers import (
    CsvProvider,
    ProviderError,
    TushareProvider,
    get_provider,
    last_open_day,
)
from tests.tushare_server import Fault, TushareServer

DAY = date(2023, 6, 8)  # the last day of the bundled sample, a Thursday
SYNC_CODES = ("510300.SH", "513100.SH", "512100.SH")


def make_provider(server: TushareServer, **options) -> tuple[TushareProvider, list[float]]:
    """A provider over `server` whose sleep only records the waits it was asked for."""
    waits: list[float] = []
    options = {"retry_wait": 0, "rate_limit_wait": 0, "timeout": 5, **options}
    return TushareProvider(server.token, url=server.url, sleep=waits.append, **options), waits


def make_tables(funds: int, day: str = "20230608") -> dict[str, pd.DataFrame]:
    """fund_daily and fund_adj with `funds` synthetic funds on one trade date."""
    codes = [f"{500000 + i:06d}.SH" for i in range(funds)]
    bar = {"open": 1.0, "high": 1.1, "low": 0.9, "close": 1.05, "pre_close": 1.0}
    daily = pd.DataFrame({"ts_code": codes, "trade_date": day, **bar, "vol": 10.0, "amount": 9.9})
    adj = pd.DataFrame({"ts_code": codes, "trade_date": day, "adj_factor": 1.5})
    return {"fund_daily": daily, "fund_adj": adj}


@pytest.fixture
def big_server() -> Iterator[TushareServer]:
    with TushareServer(make_tables(2300)) as server:
        yield server


def write_csv(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.csv").write_text(text.strip() + "\n", encoding="utf-8")


DAILY_CSV = """
ts_code,trade_date,pre_close,open,high,low,close,vol,amount
510300.SH,20230602,3.90,3.91,3.95,3.89,3.93,1000,393
510300.SH,20230605,3.93,3.94,3.96,3.90,3.92,1100,431
513100.SH,20230605,1.20,1.21,1.23,1.19,1.22,500,61
510300.SH,20230606,3.92,3.92,3.94,3.88,3.90,900,351
"""


# Paging


def test_it_pages_past_2000_rows(big_server: TushareServer) -> None:
    provider, _ = make_provider(big_server)
    frame = provider.fund_daily(trade_date=DAY)
    assert len(frame) == 2300
    assert frame["ts_code"].is_unique
    assert [c.params["offset"] for c in big_server.calls] == [0, 2000]
    assert all(c.params["trade_date"] == "20230608" for c in big_server.calls)


def test_it_stops_after_an_empty_page_following_a_full_one() -> None:
    with TushareServer(make_tables(2000)) as server:
        provider, waits = make_provider(server)
        assert len(provider.fund_adj(trade_date=DAY)) == 2000
    assert [c.params["offset"] for c in server.calls] == [0, 2000]
    assert waits == []


def test_it_does_not_truncate_when_a_later_page_fails(big_server: TushareServer) -> None:
    # The first page answers normally; the second gets an HTTP 500, which the
    # client turns into a column-less empty frame: that is an error, not the end.
    big_server.inject(Fault.delay(0), "fund_daily")
    big_server.inject(Fault.http(500), "fund_daily")
    provider, _ = make_provider(big_server)
    assert len(provider.fund_daily(trade_date=DAY)) == 2300


# Retries


@pytest.mark.parametrize(
    "fault",
    [Fault.code(50101, "系统内部错误"), Fault.http(500), Fault.empty(), Fault.delay(1.0)],
    ids=["code", "http-500", "empty", "timeout"],
)
def test_it_retries_a_failed_call(tushare: TushareServer, fault: Fault) -> None:
    tushare.inject(fault, "fund_daily")
    provider, waits = make_provider(tushare, timeout=0.3, retry_wait=1)
    frame = provider.fund_daily(trade_date=DAY)
    assert len(frame) == 16
    assert tushare.count("fund_daily") == 2
    assert waits == [1]


def test_it_waits_out_a_rate_limit(tushare: TushareServer) -> None:
    tushare.inject(Fault.rate_limit("fund_adj"))
    provider, waits = make_provider(tushare, retry_wait=1, rate_limit_wait=61)
    assert len(provider.fund_adj(trade_date=DAY)) == 16
    assert tushare.count("fund_adj") == 2
    assert waits == [61]


def test_it_gives_up_after_the_last_try(tushare: TushareServer) -> None:
    tushare.inject(Fault.http(502), "fund_daily", times=2)
    tushare.inject(Fault.code(50101, "系统内部错误"), "fund_daily")
    provider, waits = make_provider(tushare, max_tries=3, retry_wait=1)
    with pytest.raises(ProviderError) as caught:
        provider.fund_daily(trade_date=DAY)
    message = str(caught.value)
    assert "fund_daily(trade_date=20230608)" in message
    assert "3 tries" in message and "系统内部错误" in message
    assert caught.value.permanent is False
    assert waits == [1, 2]  # backoff grows; no sleep after the last try
    assert tushare.count("fund_daily") == 3


def test_it_does_not_retry_a_wrong_token(tushare: TushareServer) -> None:
    waits: list[float] = []
    provider = TushareProvider("wrong", url=tushare.url, retry_wait=0, sleep=waits.append)
    with pytest.raises(ProviderError, match="token不对") as caught:
        provider.fund_daily(trade_date=DAY)
    assert caught.value.permanent is True
    assert tushare.count() == 1 and waits == []


# Normalised frames


def test_it_normalises_daily_bars(tushare: TushareServer) -> None:
    provider, _ = make_provider(tushare)
    frame = provider.fund_daily(ts_code="510300.SH", start=date(2023, 6, 5), end=DAY)
    assert list(frame.columns) == [
        "ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol", "amount"
    ]  # fmt: skip
    assert sorted(frame["trade_date"]) == [date(2023, 6, d) for d in (5, 6, 7, 8)]
    assert all(type(d) is date for d in frame["trade_date"])
    assert all(pd.api.types.is_float_dtype(frame[c]) for c in ("open", "close", "vol"))
    adj = provider.fund_adj(trade_date=DAY)
    assert pd.api.types.is_float_dtype(adj["adj_factor"]) and set(adj["trade_date"]) == {DAY}


def test_it_returns_the_calendar_ascending(tushare: TushareServer) -> None:
    provider, _ = make_provider(tushare)
    cal = provider.trade_cal(date(2023, 6, 1), DAY)
    assert list(cal["cal_date"]) == [date(2023, 6, d) for d in range(1, 9)]
    assert cal["is_open"].dtype == bool
    assert list(cal["is_open"]) == [True, True, False, False, True, True, True, True]


# get_provider and CsvProvider


def test_it_needs_a_token_for_tushare(settings) -> None:
    settings.SIGNALS_PROVIDER, settings.TUSHARE_TOKEN = "tushare", ""
    with pytest.raises(ProviderError, match="TUSHARE_TOKEN is not set"):
        get_provider()


def test_it_uses_tushare_when_configured(tushare: TushareServer) -> None:
    provider = get_provider()
    assert isinstance(provider, TushareProvider)
    assert len(provider.fund_daily(trade_date=DAY)) == 16


def test_it_falls_back_to_the_sample(settings) -> None:
    settings.SIGNALS_PROVIDER, settings.TUSHARE_TOKEN, settings.PRICE_CSV_DIR = "auto", "", ""
    provider = get_provider()
    assert isinstance(provider, CsvProvider)
    assert provider.directory == Path(django_settings.SAMPLE_DATA_DIR)


def test_it_prefers_a_csv_folder(settings, tmp_path: Path) -> None:
    write_csv(tmp_path, "fund_daily", DAILY_CSV)
    settings.SIGNALS_PROVIDER, settings.TUSHARE_TOKEN = "auto", "some-token"
    settings.PRICE_CSV_DIR = str(tmp_path)
    provider = get_provider()
    assert isinstance(provider, CsvProvider) and provider.directory == tmp_path


def test_it_rejects_a_folder_without_fund_daily(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="no fund_daily.csv") as caught:
        CsvProvider(tmp_path)
    assert caught.value.permanent is True


def test_it_rejects_a_malformed_csv(tmp_path: Path) -> None:
    write_csv(tmp_path, "fund_daily", "ts_code,trade_date,close\n510300.SH,20230602,3.93")
    with pytest.raises(ProviderError, match="fund_daily.csv: missing columns open, high"):
        CsvProvider(tmp_path).fund_daily(trade_date=date(2023, 6, 2))


def test_it_filters_csv_bars(tmp_path: Path) -> None:
    write_csv(tmp_path, "fund_daily", DAILY_CSV)
    provider = CsvProvider(tmp_path)
    by_day = provider.fund_daily(trade_date=date(2023, 6, 5))
    assert sorted(by_day["ts_code"]) == ["510300.SH", "513100.SH"]
    by_fund = provider.fund_daily(ts_code="510300.SH", start=date(2023, 6, 3), end=date(2023, 6, 6))
    assert list(by_fund["trade_date"]) == [date(2023, 6, 5), date(2023, 6, 6)]
    assert list(by_fund["close"]) == [3.92, 3.90]


def test_it_derives_the_calendar_from_csv_bars(tmp_path: Path) -> None:
    write_csv(tmp_path, "fund_daily", DAILY_CSV)
    cal = CsvProvider(tmp_path).trade_cal(date(2023, 6, 1), date(2023, 6, 30))
    assert list(cal["cal_date"]) == [date(2023, 6, d) for d in range(2, 7)]
    assert list(cal["is_open"]) == [True, False, False, True, True]


# last_open_day


def test_it_finds_the_friday_before_a_weekend(tushare: TushareServer, tmp_path: Path) -> None:
    provider, _ = make_provider(tushare)
    assert last_open_day(provider, date(2023, 6, 4)) == date(2023, 6, 2)
    write_csv(tmp_path, "fund_daily", DAILY_CSV)
    assert last_open_day(CsvProvider(tmp_path), date(2023, 6, 4)) == date(2023, 6, 2)


def test_it_ends_where_the_sample_ends() -> None:
    provider = CsvProvider(django_settings.SAMPLE_DATA_DIR)
    assert last_open_day(provider, date(2023, 9, 1)) == DAY


# prices_sync


@pytest.fixture
def synced(db, tushare: TushareServer) -> tuple[TushareProvider, Calendar]:
    """Three funds backfilled up to the day before DAY; the server's call log cleared."""
    for code in SYNC_CODES:
        Fund.objects.create(ts_code=code, name=code)
    provider, _ = make_provider(tushare)
    calendar = Calendar.load(provider, date(2023, 5, 1), DAY)
    report = sync(provider, calendar, date(2023, 6, 7))
    assert report.mode == "per-fund" and report.errors == {}
    # 510300 (2683 bars) and 513100 (2449) need two pages each, 512100 (1602) one.
    assert (tushare.count("fund_daily"), tushare.count("fund_adj")) == (5, 5)
    assert all("trade_date" not in c.params for c in tushare.calls if c.api_name != "trade_cal")
    assert PriceBar.objects.count() == 2683 + 2449 + 1602 == report.bars
    tushare.reset_calls()
    return provider, calendar


def sync(provider: TushareProvider, calendar: Calendar, until: date):
    funds = list(Fund.objects.all())  # fresh rows, as the service loads them
    return prices_sync(provider=provider, funds=funds, calendar=calendar, until=until)


def test_it_fetches_a_missing_day_by_date(synced, tushare: TushareServer, sample_tables) -> None:
    report = sync(*synced, DAY)
    assert (report.mode, report.dates, report.bars) == ("by-date", [DAY], 3)
    assert [(c.api_name, c.params["trade_date"]) for c in tushare.calls] == [
        ("fund_daily", "20230608"),
        ("fund_adj", "20230608"),
    ]
    assert set(Fund.objects.values_list("synced_until", flat=True)) == {DAY}
    bar = PriceBar.objects.get(fund__ts_code="510300.SH", trade_date=DAY)
    daily, adj = (sample_tables[name] for name in ("fund_daily", "fund_adj"))
    raw = daily[(daily.ts_code == "510300.SH") & (daily.trade_date == "20230608")].iloc[0]
    factor = adj[(adj.ts_code == "510300.SH") & (adj.trade_date == "20230608")].iloc[0]
    assert (bar.close, bar.open, bar.vol) == (float(raw.close), float(raw.open), float(raw.vol))
    assert bar.adj_factor == float(factor.adj_factor)

    tushare.reset_calls()
    assert sync(*synced, DAY).mode == "none"
    assert tushare.count() == 0


def test_a_fund_far_behind_is_fetched_alone_and_the_rest_by_date(
    synced, tushare: TushareServer
) -> None:
    Fund.objects.filter(ts_code="512100.SH").update(synced_until=date(2023, 5, 4))
    report = sync(*synced, DAY)
    assert report.mode == "by-date+per-fund" and report.dates == [DAY]
    calls = [(c.api_name, c.params.get("trade_date") or c.params["ts_code"]) for c in tushare.calls]
    assert calls == [
        ("fund_daily", "20230608"),
        ("fund_adj", "20230608"),
        ("fund_daily", "512100.SH"),
        ("fund_adj", "512100.SH"),
    ]
    assert set(Fund.objects.values_list("synced_until", flat=True)) == {DAY}
    assert PriceBar.objects.filter(trade_date=DAY).count() == 3


def test_it_refetches_a_day_without_factors(synced, tushare: TushareServer) -> None:
    tushare.inject(Fault.empty(), "fund_adj", times=3)
    report = sync(*synced, DAY)
    assert report.adj_missing == [DAY] and report.bars == 3
    assert (tushare.count("fund_daily"), tushare.count("fund_adj")) == (1, 3)
    missing = PriceBar.objects.filter(trade_date=DAY, adj_factor__isnull=True)
    assert missing.count() == 3

    tushare.reset_calls()
    report = sync(*synced, DAY)
    assert (report.mode, report.dates, report.adj_missing) == ("by-date", [DAY], [])
    assert (tushare.count("fund_daily"), tushare.count("fund_adj")) == (1, 1)
    assert not PriceBar.objects.filter(adj_factor__isnull=True).exists()
    assert PriceBar.objects.filter(trade_date=DAY).count() == 3
