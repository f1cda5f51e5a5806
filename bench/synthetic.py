"""A seeded synthetic ETF market in Tushare's layout, and a fast loader for it.

`generate_market(funds, bars)` draws N funds x M business-day bars: a
mean-reverting geometric random walk whose raw close starts between 1 and 5
CNY (rounded to the 0.001 tick), volume and amount, and a few adjustment-factor
events per fund (dividends x1.01-1.05, sometimes a split x2-5 or a merge x0.3)
with the raw close jumping accordingly. `Market.tables()` gives the four
Tushare tables the loopback server serves (ts_code and dates as text, like
Tushare); `load_market()` writes Fund and PriceBar rows straight into the
database (COPY on PostgreSQL) as if they had been synced already.

The same seed always gives the same market, so every run measures the same work.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

SEED = 20240601
START = date(2015, 1, 5)  # a Monday: 2,500 business days end in July 2024
REVERSION = 0.002  # daily pull of the log price back to its start: keeps prices near 1-5 CNY
DIVIDENDS = (2, 5)  # dividends per fund, inclusive range
SPLIT_CHANCE, MERGE_CHANCE = 0.3, 0.1
LOAD_CHUNK = 100  # funds per COPY batch when loading bars

DAILY_COLUMNS = [
    "ts_code", "trade_date", "pre_close", "open", "high", "low", "close", "change", "pct_chg",
    "vol", "amount",
]  # fmt: skip
BAR_COLUMNS = [
    "fund_id", "trade_date", "open", "high", "low", "close", "pre_close", "vol", "amount",
    "adj_factor",
]  # fmt: skip
PRICE_FIELDS = ["open", "high", "low", "close", "pre_close", "vol", "amount", "adj"]
FUND_COLUMNS = [
    "ts_code", "name", "exchange", "list_date", "delist_date", "active", "synced_until", "created",
]  # fmt: skip


@dataclass(frozen=True)
class Market:
    """Every fund's bars as (funds, days) arrays, raw prices as Tushare gives them."""

    codes: np.ndarray  # object: "510000.SH", ...
    names: np.ndarray  # object
    days: np.ndarray  # datetime64[D], business days, ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    pre_close: np.ndarray
    vol: np.ndarray  # lots of 100 shares
    amount: np.ndarray  # thousand CNY
    adj: np.ndarray  # cumulative adjustment factor, 3 decimals

    @property
    def n_funds(self) -> int:
        return int(self.codes.size)

    @property
    def n_days(self) -> int:
        return int(self.days.size)

    def head(self, funds: int) -> Market:
        """The market of only the first `funds` funds (the same bars)."""
        cut = slice(0, funds)
        return Market(
            codes=self.codes[cut],
            names=self.names[cut],
            days=self.days,
            **{name: getattr(self, name)[cut] for name in PRICE_FIELDS},
        )

    def day(self, index: int) -> date:
        """The business day at `index` (negative counts from the end)."""
        return self.days[index].item()

    def series(self, fund: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dates, raw close, adjustment factor) of one fund: the strategy kernel's input."""
        return self.days, self.close[fund], self.adj[fund]

    def anchors(self) -> np.ndarray:
        """Distinct adjustment factors per fund (the anchors `evaluate_history` prices at)."""
        changes = np.count_nonzero(np.diff(self.adj, axis=1), axis=1)
        return changes + 1

    def tables(self, stop: int | None = None) -> dict[str, pd.DataFrame]:
        """The four Tushare tables, with bars of the days before index `stop`."""
        return {
            "fund_basic": self.fund_basic(),
            "trade_cal": self.trade_cal(),
            "fund_daily": self.fund_daily(0, stop),
            "fund_adj": self.fund_adj(0, stop),
        }

    def fund_basic(self) -> pd.DataFrame:
        n = self.n_funds
        return pd.DataFrame(
            {
                "ts_code": self.codes,
                "name": self.names,
                "management": ["Bench AMC"] * n,
                "fund_type": ["ETF"] * n,
                "list_date": [_ymd(self.days[0])] * n,
                "delist_date": [None] * n,
                "status": ["L"] * n,
                "market": ["E"] * n,
            }
        )

    def trade_cal(self) -> pd.DataFrame:
        """Every calendar day from the first bar to the last; open on the bar days."""
        every = np.arange(self.days[0], self.days[-1] + np.timedelta64(1, "D"))
        is_open = np.isin(every, self.days)
        previous = np.searchsorted(self.days, every, side="left") - 1
        pretrade = [_ymd(self.days[p]) if p >= 0 else None for p in previous]
        return pd.DataFrame(
            {
                "exchange": "SSE",
                "cal_date": _ymd_array(every),
                "is_open": is_open.astype(int),
                "pretrade_date": pretrade,
            }
        )

    def fund_daily(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Bars of days [start, stop) for every fund, one row per fund and day."""
        cut = slice(start, stop)
        close, pre_close = self.close[:, cut], self.pre_close[:, cut]
        change = np.round(close - pre_close, 3)
        frame = self._keys(cut)
        frame["pre_close"] = pre_close.ravel()
        frame["open"] = self.open[:, cut].ravel()
        frame["high"] = self.high[:, cut].ravel()
        frame["low"] = self.low[:, cut].ravel()
        frame["close"] = close.ravel()
        frame["change"] = change.ravel()
        frame["pct_chg"] = np.round(change / pre_close * 100, 4).ravel()
        frame["vol"] = self.vol[:, cut].ravel()
        frame["amount"] = self.amount[:, cut].ravel()
        return frame[DAILY_COLUMNS]

    def fund_adj(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        cut = slice(start, stop)
        frame = self._keys(cut)
        frame["adj_factor"] = self.adj[:, cut].ravel()
        return frame

    def _keys(self, cut: slice) -> pd.DataFrame:
        days = _ymd_array(self.days[cut])
        return pd.DataFrame(
            {
                "ts_code": np.repeat(self.codes, days.size),
                "trade_date": np.tile(days, self.n_funds),
            }
        )


def generate_market(funds: int, bars: int, *, seed: int = SEED, start: date = START) -> Market:
    """N funds x M business-day bars, the same for the same arguments."""
    if funds < 1 or bars < 2:
        raise ValueError("need at least one fund and two bars")
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(start, periods=bars).values.astype("datetime64[D]")
    adj = np.round(np.cumprod(_event_factors(rng, funds, bars), axis=1), 3)
    level, previous, sigma = _price_walk(rng, funds, bars)  # adjusted to the first day's factor
    close = _tick(level / adj)
    pre_close = _tick(previous / adj)  # the exchange's ex-right reference price on event days
    noise = rng.standard_normal((3, funds, bars)) * (sigma[:, None] / 2)
    open_ = _tick(pre_close * np.exp(noise[0] / 2))
    high = _tick(np.maximum(open_, close) * (1 + np.abs(noise[1])))
    low = _tick(np.minimum(open_, close) * (1 - np.abs(noise[2])))
    vol = np.round(rng.lognormal(np.log(50_000), 1.0, size=(funds, bars)), 2)
    amount = np.round(vol * close / 10, 3)  # lots x 100 shares x price / 1000
    return Market(
        codes=fund_codes(funds),
        names=np.array([f"合成ETF{i:04d}" for i in range(funds)], dtype=object),
        days=days,
        open=open_,
        high=high,
        low=low,
        close=close,
        pre_close=pre_close,
        vol=vol,
        amount=amount,
        adj=adj,
    )


def fund_codes(funds: int) -> np.ndarray:
    """Distinct Tushare codes, alternating Shanghai 51xxxx and Shenzhen 159xxx."""
    codes = [
        f"{510000 + i // 2:06d}.SH" if i % 2 == 0 else f"{159000 + i // 2:06d}.SZ"
        for i in range(funds)
    ]
    return np.array(codes, dtype=object)


def _event_factors(rng: np.random.Generator, funds: int, bars: int) -> np.ndarray:
    """Per-day factor changes: 1 except on a dividend, split or merge day."""
    factors = np.ones((funds, bars))
    for fund in range(funds):
        changes = list(rng.uniform(1.01, 1.05, size=rng.integers(DIVIDENDS[0], DIVIDENDS[1] + 1)))
        if rng.random() < SPLIT_CHANCE:
            changes.append(float(rng.integers(2, 6)))
        if rng.random() < MERGE_CHANCE:
            changes.append(0.3)
        count = min(len(changes), bars - 1)
        on = rng.choice(np.arange(1, bars), size=count, replace=False)
        factors[fund, on] = changes[:count]
    return factors


def _price_walk(
    rng: np.random.Generator, funds: int, bars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log prices that wander around where they started: (level, previous level, sigma)."""
    first = np.log(rng.uniform(1.0, 5.0, size=funds))
    sigma = rng.uniform(0.008, 0.02, size=funds)
    shocks = rng.standard_normal((funds, bars)) * sigma[:, None]
    logs = np.empty((funds, bars))
    x = first.copy()
    for t in range(bars):
        x = x + REVERSION * (first - x) + shocks[:, t]
        logs[:, t] = x
    level = np.exp(logs)
    previous = np.concatenate([np.exp(first)[:, None], level[:, :-1]], axis=1)
    return level, previous, sigma


def _tick(prices: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(prices, 3), 0.001)


def _ymd(day: np.datetime64) -> str:
    return str(np.datetime_as_string(day, unit="D")).replace("-", "")


def _ymd_array(days: np.ndarray) -> np.ndarray:
    """datetime64[D] to 'YYYYMMDD' text, as an object array."""
    return np.char.replace(np.datetime_as_string(days, unit="D"), "-", "").astype(object)


# --- Loading into the database ------------------------------------------------------


@dataclass(frozen=True)
class LoadStats:
    funds: int
    bars: int
    seconds: float
    synced_until: date


def load_market(market: Market, *, funds: int | None = None, until: int = -1) -> LoadStats:
    """Store the first `funds` funds with their bars up to day index `until`, as synced.

    Needs Django set up. PostgreSQL gets COPY; another database gets executemany.
    Fund.synced_until is the day at `until`, so the job fetches no bar it already has.
    """
    from django.db import connection, transaction

    count = market.n_funds if funds is None else min(funds, market.n_funds)
    stop = market.n_days if until == -1 else until + 1
    synced = market.day(stop - 1)
    started = time.perf_counter()
    with transaction.atomic():
        _skip_foreign_key_checks()
        ids = _insert_funds(market, count, synced)
        rows = 0
        for first in range(0, count, LOAD_CHUNK):
            chunk = range(first, min(first + LOAD_CHUNK, count))
            frame = _bar_frame(market, chunk, ids, stop)
            if connection.vendor == "postgresql":
                _copy(connection, "signals_pricebar", BAR_COLUMNS, frame)
            else:
                _executemany(connection, "signals_pricebar", BAR_COLUMNS, frame)
            rows += len(frame)
    return LoadStats(count, rows, time.perf_counter() - started, synced)


def analyze(tables: tuple[str, ...] = ("signals_fund", "signals_pricebar")) -> None:
    """Refresh the planner's statistics, as autovacuum would after a bulk load."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def _skip_foreign_key_checks() -> None:
    """Skip the per-row foreign-key checks of this load, as pg_restore --disable-triggers does.

    The rows are consistent by construction, and checking 2.5 M bars at COMMIT costs ~10 s
    of setup. It needs a superuser; for anyone else the checks simply run.
    """
    from django.db import DatabaseError, connection, transaction

    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        pass


def _insert_funds(market: Market, count: int, synced: date) -> np.ndarray:
    """Fund rows for the first `count` codes; their primary keys in the same order."""
    from django.db import connection
    from django.utils import timezone

    codes = market.codes[:count]
    frame = pd.DataFrame(
        {
            "ts_code": codes,
            "name": market.names[:count],
            "exchange": [str(c).rpartition(".")[2] for c in codes],
            "list_date": market.day(0).isoformat(),
            "delist_date": None,
            "active": True,
            "synced_until": synced.isoformat(),
            "created": timezone.now().isoformat(),
        }
    )
    if connection.vendor == "postgresql":
        _copy(connection, "signals_fund", FUND_COLUMNS, frame)
    else:
        _executemany(connection, "signals_fund", FUND_COLUMNS, frame)
    with connection.cursor() as cursor:
        cursor.execute("SELECT ts_code, id FROM signals_fund")
        by_code = dict(cursor.fetchall())
    return np.array([by_code[c] for c in codes], dtype=np.int64)


def _bar_frame(market: Market, funds: range, ids: np.ndarray, stop: int) -> pd.DataFrame:
    rows = slice(funds.start, funds.stop)
    days = np.datetime_as_string(market.days[:stop], unit="D")

    def flat(array: np.ndarray) -> np.ndarray:
        return array[rows, :stop].ravel()

    return pd.DataFrame(
        {
            "fund_id": np.repeat(ids[rows], stop),
            "trade_date": np.tile(days, len(funds)),
            "open": flat(market.open),
            "high": flat(market.high),
            "low": flat(market.low),
            "close": flat(market.close),
            "pre_close": flat(market.pre_close),
            "vol": flat(market.vol),
            "amount": flat(market.amount),
            "adj_factor": flat(market.adj),
        }
    )


def _copy(
    connection: BaseDatabaseWrapper, table: str, columns: list[str], frame: pd.DataFrame
) -> None:
    buffer = io.StringIO()
    frame[columns].to_csv(buffer, index=False, header=False)
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:  # the psycopg cursor under Django's wrapper
            copy.write(buffer.getvalue())


def _executemany(
    connection: BaseDatabaseWrapper, table: str, columns: list[str], frame: pd.DataFrame
) -> None:
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(_rows(frame[columns])))


def _rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    for row in frame.itertuples(index=False, name=None):
        yield tuple(v.item() if isinstance(v, np.generic) else v for v in row)
