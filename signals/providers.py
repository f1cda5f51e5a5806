"""Price providers: the only code that talks to Tushare or reads price CSVs.

A provider answers four questions in Tushare's own vocabulary: which funds
exist (`fund_basic`), which days the exchange was open (`trade_cal`), the bars
of one day or of one fund over a range (`fund_daily`) and their adjustment
factors (`fund_adj`). Both providers return the same normalised frames, so
everything downstream is provider-blind.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from django.conf import settings

logger = logging.getLogger(__name__)

DAILY_COLUMNS = [
    "ts_code",
    "trade_date",
    "open",
    "high",
    "low",
    "close",
    "pre_close",
    "vol",
    "amount",
]
ADJ_COLUMNS = ["ts_code", "trade_date", "adj_factor"]
BASIC_COLUMNS = ["ts_code", "name", "list_date", "delist_date"]
RATE_LIMIT_MARK = "每分钟最多访问"
PERMANENT_MARKS = ("token不对", "没有访问该接口的权限", "权限不足", "请求的接口不存在")


class ProviderError(Exception):
    """A provider call failed; `permanent` says whether trying later can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Provider(Protocol):
    name: str

    def fund_basic(self) -> pd.DataFrame: ...

    def trade_cal(self, start: date, end: date) -> pd.DataFrame: ...

    def fund_daily(
        self,
        *,
        trade_date: date | None = None,
        ts_code: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pd.DataFrame: ...

    def fund_adj(
        self,
        *,
        trade_date: date | None = None,
        ts_code: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pd.DataFrame: ...


def ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def parse_ymd(column: pd.Series) -> pd.Series:
    """YYYYMMDD strings (or numbers) to `datetime.date`, blanks to None."""
    text = column.astype("string").str.strip().str.slice(0, 8)
    parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    return pd.Series(
        [d.date() if pd.notna(d) else None for d in parsed], index=column.index, dtype=object
    )


def _normalise(frame: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ProviderError(f"{what}: missing columns {', '.join(missing)}", permanent=True)
    frame = frame[columns].copy()
    for column in ("trade_date", "list_date", "delist_date"):
        if column in frame:
            frame[column] = parse_ymd(frame[column])
    numeric = [
        c for c in columns if c not in {"ts_code", "trade_date", "name", "list_date", "delist_date"}
    ]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "trade_date" in frame and frame["trade_date"].isna().any():
        raise ProviderError(f"{what}: unreadable trade_date values", permanent=True)
    return frame.reset_index(drop=True)


def _normalise_cal(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if not {"cal_date", "is_open"} <= set(frame.columns):
        raise ProviderError(f"{what}: expected columns cal_date, is_open", permanent=True)
    out = pd.DataFrame(
        {
            "cal_date": parse_ymd(frame["cal_date"]),
            "is_open": pd.to_numeric(frame["is_open"], errors="coerce").fillna(0).astype(int) == 1,
        }
    )
    return out.dropna(subset=["cal_date"]).sort_values("cal_date").reset_index(drop=True)


class TushareProvider:
    """Tushare Pro through the `tushare` package, with retries and paging."""

    name = "tushare"

    def __init__(
        self,
        token: str,
        *,
        url: str,
        timeout: float = 30.0,
        max_tries: int = 3,
        retry_wait: float = 2.0,
        rate_limit_wait: float = 61.0,
        page_size: int = 2000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise ProviderError("TUSHARE_TOKEN is not set", permanent=True)
        import tushare

        self.api = tushare.pro_api(token, timeout=timeout)
        # The client keeps its base URL private; mirrors and tests need another.
        self.api._DataApi__http_url = url.rstrip("/")
        self.max_tries = max_tries
        self.retry_wait = retry_wait
        self.rate_limit_wait = rate_limit_wait
        self.page_size = page_size
        self.sleep = sleep

    def fund_basic(self) -> pd.DataFrame:
        frame = self._query_all("fund_basic", required=True, market="E")
        return _normalise(frame, BASIC_COLUMNS, "fund_basic")

    def trade_cal(self, start: date, end: date) -> pd.DataFrame:
        frame = self._query_all(
            "trade_cal", required=True, exchange="SSE", start_date=ymd(start), end_date=ymd(end)
        )
        return _normalise_cal(frame, "trade_cal")

    def fund_daily(self, **query: Any) -> pd.DataFrame:
        # One day's answer for the market cannot be empty; a fund's range can.
        required = query.get("trade_date") is not None
        frame = self._query_all("fund_daily", required=required, **self._params(**query))
        return _normalise(frame, DAILY_COLUMNS, "fund_daily")

    def fund_adj(self, **query: Any) -> pd.DataFrame:
        required = query.get("trade_date") is not None
        frame = self._query_all("fund_adj", required=required, **self._params(**query))
        return _normalise(frame, ADJ_COLUMNS, "fund_adj")

    @staticmethod
    def _params(
        *,
        trade_date: date | None = None,
        ts_code: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> dict[str, str]:
        if trade_date is not None:
            return {"trade_date": ymd(trade_date)}
        params = {"ts_code": ts_code or ""}
        if start:
            params["start_date"] = ymd(start)
        if end:
            params["end_date"] = ymd(end)
        return params

    def _query_all(self, api_name: str, *, required: bool, **params: Any) -> pd.DataFrame:
        """Every page of one query; answers are capped at `page_size` rows."""
        pages = []
        offset = 0
        while True:
            page = self._query(api_name, required=required and offset == 0, offset=offset, **params)
            pages.append(page)
            if len(page) < self.page_size:
                break
            offset += len(page)
        return pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]

    def _query(self, api_name: str, *, required: bool, **params: Any) -> pd.DataFrame:
        """One page, tried up to `max_tries` times with backoff.

        On an HTTP error status the client returns a frame without even column
        names: that is retried on every page. An empty answer where data must
        exist (the first page of a required query) is retried too.
        """
        described = f"{api_name}({', '.join(f'{k}={v}' for k, v in params.items() if v)})"
        reason = ""
        for attempt in range(1, self.max_tries + 1):
            wait = self.retry_wait * 2 ** (attempt - 1)
            try:
                frame = self.api.query(api_name, limit=self.page_size, **params)
            except Exception as e:  # the client raises bare Exception for API errors
                reason = str(e) or type(e).__name__
                if RATE_LIMIT_MARK in reason:
                    wait = max(wait, self.rate_limit_wait)
                elif any(mark in reason for mark in PERMANENT_MARKS):
                    raise ProviderError(f"Tushare {described}: {reason}", permanent=True) from e
            else:
                if frame.columns.empty:  # the client's answer to an HTTP error status
                    reason = "HTTP error (an answer with no fields)"
                elif required and frame.empty:
                    reason = "empty answer (data not published yet?)"
                else:
                    return frame
            logger.warning(
                "Tushare %s try %d/%d failed: %s", described, attempt, self.max_tries, reason
            )
            if attempt < self.max_tries:
                self.sleep(wait)
        raise ProviderError(f"Tushare {described} failed after {self.max_tries} tries: {reason}")


class CsvProvider:
    """Files in Tushare's column layout: the bundled sample, or a user's own.

    The folder holds fund_daily.csv, fund_adj.csv and fund_basic.csv, and
    optionally trade_cal.csv (without it, a day is open when any fund traded).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.name = f"csv:{self.directory}"
        if not (self.directory / "fund_daily.csv").is_file():
            raise ProviderError(f"{self.directory} has no fund_daily.csv", permanent=True)

    def _table(self, name: str) -> pd.DataFrame:
        path = self.directory / f"{name}.csv"
        if not path.is_file():
            raise ProviderError(f"{self.directory} has no {name}.csv", permanent=True)
        return _read_csv(path, path.stat().st_mtime_ns)

    def fund_basic(self) -> pd.DataFrame:
        frame = self._table("fund_basic")
        if "market" in frame:
            frame = frame[frame["market"].fillna("E") == "E"]
        return _normalise(frame, BASIC_COLUMNS, "fund_basic.csv")

    def trade_cal(self, start: date, end: date) -> pd.DataFrame:
        calendar = self._calendar()
        mask = (calendar["cal_date"] >= start) & (calendar["cal_date"] <= end)
        return calendar[mask].reset_index(drop=True)

    def _calendar(self) -> pd.DataFrame:
        if (self.directory / "trade_cal.csv").is_file():
            return _normalise_cal(self._table("trade_cal"), "trade_cal.csv")
        days = sorted(set(self._daily()["trade_date"]))
        if not days:
            return pd.DataFrame({"cal_date": [], "is_open": []})
        every = pd.date_range(days[0], days[-1]).date
        return pd.DataFrame({"cal_date": every, "is_open": [d in set(days) for d in every]})

    def _daily(self) -> pd.DataFrame:
        return _normalise(self._table("fund_daily"), DAILY_COLUMNS, "fund_daily.csv")

    def fund_daily(self, **query: Any) -> pd.DataFrame:
        return self._required(self._select(self._daily(), **query), "fund_daily.csv", query)

    def fund_adj(self, **query: Any) -> pd.DataFrame:
        frame = _normalise(self._table("fund_adj"), ADJ_COLUMNS, "fund_adj.csv")
        return self._required(self._select(frame, **query), "fund_adj.csv", query)

    def _required(self, frame: pd.DataFrame, name: str, query: dict[str, Any]) -> pd.DataFrame:
        """As with Tushare, a whole market's day cannot be empty when the exchange
        was open: the files have not caught up (a day of trade_cal.csv beyond the
        bars), and the day must not be taken for one without trades."""
        day = query.get("trade_date")
        if frame.empty and day is not None:
            calendar = self.trade_cal(day, day)
            if bool(calendar["is_open"].any()):
                raise ProviderError(f"{name} has no rows for {day}, an open day (not added yet?)")
        return frame

    @staticmethod
    def _select(
        frame: pd.DataFrame,
        *,
        trade_date: date | None = None,
        ts_code: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        if trade_date is not None:
            mask &= frame["trade_date"] == trade_date
        if ts_code:
            mask &= frame["ts_code"].isin(ts_code.split(","))
        if start:
            mask &= frame["trade_date"] >= start
        if end:
            mask &= frame["trade_date"] <= end
        return frame[mask].reset_index(drop=True)


@functools.lru_cache(maxsize=16)
def _read_csv(path: Path, mtime_ns: int) -> pd.DataFrame:
    """Read once per file version; callers copy before changing anything."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ProviderError(f"cannot read {path}: {e}", permanent=True) from e


def last_open_day(provider: Provider, on_or_before: date, *, lookback_days: int = 30) -> date:
    """The latest trading day on or before a date, by the provider's calendar."""
    calendar = provider.trade_cal(on_or_before - timedelta(days=lookback_days), on_or_before)
    open_days = calendar.loc[calendar["is_open"], "cal_date"]
    if open_days.empty and isinstance(provider, CsvProvider):
        # Files end where their data ends: take their last open day.
        everything = provider.trade_cal(date.min, on_or_before)
        open_days = everything.loc[everything["is_open"], "cal_date"]
    if open_days.empty:
        raise ProviderError(f"no trading day found on or before {on_or_before}")
    return max(open_days)


def get_provider(name: str | None = None) -> Provider:
    """The configured provider; `name` ("tushare" or "csv") forces one."""
    choice = (name or settings.SIGNALS_PROVIDER).lower()
    if choice == "auto":
        if settings.PRICE_CSV_DIR:
            choice = "csv"
        elif settings.TUSHARE_TOKEN:
            choice = "tushare"
        else:
            return CsvProvider(settings.SAMPLE_DATA_DIR)
    if choice == "csv":
        return CsvProvider(settings.PRICE_CSV_DIR or settings.SAMPLE_DATA_DIR)
    if choice == "tushare":
        return TushareProvider(
            settings.TUSHARE_TOKEN,
            url=settings.TUSHARE_API_URL,
            timeout=settings.TUSHARE_TIMEOUT,
            max_tries=settings.TUSHARE_MAX_TRIES,
            retry_wait=settings.TUSHARE_RETRY_WAIT,
            rate_limit_wait=settings.TUSHARE_RATE_LIMIT_WAIT,
        )
    raise ProviderError(f"unknown provider {name!r}: use tushare or csv", permanent=True)
