"""Tests of the fake Tushare server through the real ``tushare`` client (no Django)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import requests
import tushare as ts  # type: ignore[import-untyped]
from tushare.pro.client import DataApi  # type: ignore[import-untyped]

from tests.tushare_server import Call, Fault, TushareServer

TOKEN = "test-token"
DAY = "20230608"


def _daily_rows(codes: list[str], dates: list[str]) -> pd.DataFrame:
    rows = [
        {"ts_code": code, "trade_date": date, "close": 1.0 + i / 1000, "vol": 100.0 * (i + 1)}
        for i, (code, date) in enumerate((c, d) for c in codes for d in dates)
    ]
    return pd.DataFrame(rows)


def _tables() -> dict[str, pd.DataFrame]:
    codes = [f"{i:06d}.SH" for i in range(510000, 512500)]  # 2500 funds
    small = _daily_rows(
        ["159001.SZ", "510300.SH", "510500.SH"], ["20230605", "20230606", "20230607"]
    )
    return {
        # Shuffled so the server's sorting is exercised.
        "fund_daily": pd.concat([_daily_rows(codes, [DAY]), small]).sample(frac=1, random_state=1),
        "fund_adj": small.rename(columns={"close": "adj_factor"})
        .drop(columns="vol")
        .sample(frac=1, random_state=2),
        "fund_basic": pd.DataFrame(
            {
                "ts_code": ["510300.SH", "510500.SH", "000001.OF", "159001.SZ"],
                "name": ["300ETF", "500ETF", "华夏成长", "货币ETF"],
                "market": ["E", "E", "O", "E"],
                "status": ["L", "L", "L", "D"],
                "m_fee": [0.5, 0.5, np.nan, 0.3],
            }
        ),
        "trade_cal": pd.DataFrame(
            {
                "exchange": ["SSE"] * 5 + ["SZSE"] * 5,
                "cal_date": ["20230605", "20230606", "20230607", "20230608", "20230610"] * 2,
                "is_open": np.array([1, 1, 1, 1, 0] * 2, dtype=np.int64),
            }
        ),
    }


@pytest.fixture
def server() -> Iterator[TushareServer]:
    with TushareServer(_tables(), token=TOKEN) as srv:
        yield srv


def _pro(server: TushareServer, token: str = TOKEN, timeout: float = 5.0) -> DataApi:
    pro = ts.pro_api(token, timeout=timeout)
    pro._DataApi__http_url = server.url
    return pro


def test_paging_caps_at_max_rows_and_follows_offset(server: TushareServer) -> None:
    pro = _pro(server)
    first = pro.fund_daily(trade_date=DAY)
    second = pro.fund_daily(trade_date=DAY, offset=2000)
    assert (len(first), len(second)) == (2000, 500)
    assert first["ts_code"].is_monotonic_increasing
    assert set(first["ts_code"]).isdisjoint(second["ts_code"])
    assert first["ts_code"].iloc[-1] < second["ts_code"].iloc[0]
    assert len(pro.fund_daily(trade_date=DAY, offset="100", limit="10")) == 10
    assert len(pro.fund_daily(trade_date=DAY, limit=5000)) == 2000


def test_fund_daily_filters_by_trade_date(server: TushareServer) -> None:
    pro = _pro(server)
    df = pro.fund_daily(trade_date="20230607")
    assert list(df["ts_code"]) == ["159001.SZ", "510300.SH", "510500.SH"]
    assert set(pro.fund_daily(trade_date=DAY)["trade_date"]) == {DAY}
    assert pro.fund_daily(trade_date="20230101").empty


@pytest.mark.parametrize("api", ["fund_daily", "fund_adj"])
def test_ts_code_list_and_date_range_sorted_like_tushare(server: TushareServer, api: str) -> None:
    df = _pro(server).query(
        api, ts_code="510500.SH,159001.SZ", start_date="20230606", end_date="20230607"
    )
    assert list(zip(df["ts_code"], df["trade_date"], strict=True)) == [
        ("159001.SZ", "20230607"),
        ("159001.SZ", "20230606"),
        ("510500.SH", "20230607"),
        ("510500.SH", "20230606"),
    ]


def test_fields_selection_keeps_request_order_and_drops_unknown(server: TushareServer) -> None:
    pro = _pro(server)
    df = pro.fund_daily(trade_date=DAY, fields="trade_date,ts_code,no_such_field", limit=3)
    assert list(df.columns) == ["trade_date", "ts_code"]
    assert list(pro.fund_daily(trade_date=DAY, fields="", limit=1).columns) == [
        "ts_code",
        "trade_date",
        "close",
        "vol",
    ]


def test_fund_basic_filters_and_nan_becomes_null(server: TushareServer) -> None:
    pro = _pro(server)
    df = pro.fund_basic(market="E", status="L")
    assert sorted(df["ts_code"]) == ["510300.SH", "510500.SH"]
    assert pro.fund_basic(ts_code="000001.OF")["m_fee"].isna().all()
    raw = requests.post(
        f"{server.url}/fund_basic",
        timeout=5,
        json={
            "api_name": "fund_basic",
            "token": TOKEN,
            "params": {"market": "O"},
            "fields": "m_fee",
        },
    )
    assert json.loads(raw.text)["data"]["items"] == [[None]]


def test_trade_cal_defaults_to_sse_and_sorts_descending(server: TushareServer) -> None:
    pro = _pro(server)
    df = pro.trade_cal(start_date="20230606", end_date="20230610")
    assert list(df["cal_date"]) == ["20230610", "20230608", "20230607", "20230606"]
    assert set(df["exchange"]) == {"SSE"}
    open_days = pro.trade_cal(exchange="SZSE", is_open="1", end_date="20230606")
    assert list(open_days["cal_date"]) == ["20230606", "20230605"]
    assert open_days["is_open"].tolist() == [1, 1]


def test_wrong_token_and_unknown_api_raise(server: TushareServer) -> None:
    with pytest.raises(Exception, match="您的token不对"):
        _pro(server, token="bad").fund_daily(trade_date=DAY)
    with pytest.raises(Exception, match="no_such_api"):
        _pro(server).no_such_api()


def test_code_and_rate_limit_faults_raise_with_message(server: TushareServer) -> None:
    pro = _pro(server)
    server.inject(Fault.code(50101, "服务器繁忙"))
    with pytest.raises(Exception, match="服务器繁忙"):
        pro.fund_daily(trade_date=DAY)
    server.inject(Fault.rate_limit("fund_daily"))
    assert len(pro.trade_cal()) == 5  # aimed at fund_daily only
    with pytest.raises(Exception, match="每分钟最多访问该接口"):
        pro.fund_daily(trade_date=DAY)
    assert len(pro.fund_daily(trade_date=DAY)) == 2000


def test_http_and_empty_faults_give_empty_frames(server: TushareServer) -> None:
    pro = _pro(server)
    server.inject(Fault.http(500))
    server.inject(Fault.empty())
    assert pro.fund_daily(trade_date=DAY).empty
    empty = pro.fund_daily(trade_date=DAY, fields="ts_code,close")
    assert empty.empty and list(empty.columns) == ["ts_code", "close"]
    assert server.pending_faults() == 0


def test_delay_fault_times_out_client_and_server_still_stops_fast() -> None:
    with TushareServer(_tables(), token=TOKEN) as server:
        server.inject(Fault.delay(5.0))
        with pytest.raises(requests.exceptions.Timeout):
            _pro(server, timeout=0.2).trade_cal()
        assert len(_pro(server, timeout=0.2).trade_cal()) == 5  # fault was consumed
        started = time.monotonic()
    assert time.monotonic() - started < 1.0


def test_faults_are_fifo_per_matching_api(server: TushareServer) -> None:
    pro = _pro(server)
    server.inject(Fault.code(1, "daily-1"), api_name="fund_daily")
    server.inject(Fault.code(2, "any-2"))
    server.inject(Fault.code(3, "daily-3"), api_name="fund_daily", times=2)
    assert server.pending_faults() == 4
    for api, msg in [
        ("trade_cal", "any-2"),
        ("fund_daily", "daily-1"),
        ("fund_daily", "daily-3"),
        ("fund_daily", "daily-3"),
    ]:
        with pytest.raises(Exception, match=msg):
            pro.query(api)
    assert server.pending_faults() == 0
    assert len(pro.trade_cal()) == 5


def test_calls_are_recorded_counted_and_reset(server: TushareServer) -> None:
    pro = _pro(server)
    server.inject(Fault.http(503), api_name="fund_adj")
    pro.fund_daily(trade_date=DAY, limit=1)
    pro.fund_adj(ts_code="510300.SH")
    pro.trade_cal()
    assert [c.api_name for c in server.calls] == ["fund_daily", "fund_adj", "trade_cal"]
    assert server.calls[0].params["trade_date"] == DAY
    assert server.calls[1] == Call("fund_adj", {"ts_code": "510300.SH", "ts_type_name": server.url})
    assert (server.count(), server.count("fund_adj"), server.count("fund_basic")) == (3, 1, 0)
    server.reset_calls()
    assert server.calls == [] and server.count() == 0


def test_start_stop_and_url_lifecycle() -> None:
    server = TushareServer({}, token=TOKEN)
    with pytest.raises(RuntimeError):
        _ = server.url
    url = server.start().url
    assert url.startswith("http://127.0.0.1:")
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{url}/trade_cal", json={}, timeout=1)
