"""Keeping stored price bars up to date: fetch only what is missing.

The daily increment asks the provider for all funds of one trade date at once
(`fund_daily` + `fund_adj` by `trade_date`); a fund seen for the first time, or
one far behind, is backfilled with per-fund date ranges instead, whichever
needs fewer calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from signals.models import Fund, PriceBar
from signals.providers import Provider, ProviderError

logger = logging.getLogger(__name__)

BAR_FIELDS = ["open", "high", "low", "close", "pre_close", "vol", "amount"]
# Where a new fund's history starts when its listing date is unknown.
HISTORY_START = date(2005, 1, 1)


class CalendarError(Exception):
    pass


@dataclass(frozen=True)
class Calendar:
    """The exchange's open and closed days over the range the provider gave."""

    days: tuple[date, ...]
    open: frozenset[date]

    @classmethod
    def load(cls, provider: Provider, start: date, end: date) -> Calendar:
        frame = provider.trade_cal(start, end)
        days = tuple(frame["cal_date"])
        return cls(days, frozenset(frame.loc[frame["is_open"], "cal_date"]))

    def covers(self, day: date) -> bool:
        return bool(self.days) and self.days[0] <= day <= self.days[-1]

    def is_open(self, day: date) -> bool:
        if not self.covers(day):
            span = f"{self.days[0]} to {self.days[-1]}" if self.days else "no days"
            raise CalendarError(f"the exchange calendar has no data for {day} (it covers {span})")
        return day in self.open

    def open_days(self, start: date, end: date) -> list[date]:
        return sorted(d for d in self.open if start <= d <= end)


@dataclass
class SyncReport:
    mode: str = "none"
    dates: list[date] = field(default_factory=list)
    bars: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    adj_missing: list[date] = field(default_factory=list)


def prices_sync(
    *, provider: Provider, funds: Sequence[Fund], calendar: Calendar, until: date
) -> SyncReport:
    """Fetch every bar missing from the stored history of `funds` up to `until`."""
    report = SyncReport()
    funds = [f for f in funds if f.list_date is None or f.list_date <= until]  # listed by then
    new = [f for f in funds if f.synced_until is None]
    behind = [f for f in funds if f.synced_until is not None and f.synced_until < until]
    incomplete = _incomplete_days(funds, until)
    gaps: dict[int, set[date]] = {f.pk: set() for f in behind}
    for fund in behind:
        assert fund.synced_until is not None
        start = fund.synced_until + timedelta(days=1)
        gaps[fund.pk].update(calendar.open_days(start, until))
    for fund_id, days in incomplete.items():
        gaps.setdefault(fund_id, set()).update(days)
    gaps = {k: v for k, v in gaps.items() if v}
    dates = sorted(set().union(*gaps.values())) if gaps else []
    gapped = [f for f in funds if f.pk in gaps]

    if dates and len(dates) <= len(gapped):
        report.mode = "by-date"
        report.dates = dates
        for day in dates:
            _sync_day(provider, day, gapped, report)
        Fund.objects.filter(pk__in=[f.pk for f in behind]).update(synced_until=until)
        for fund in behind:
            fund.synced_until = until
    else:
        new = new + gapped
    if new:
        report.mode = "per-fund" if report.mode == "none" else f"{report.mode}+per-fund"
        for fund in new:
            start = min(gaps.get(fund.pk, ()), default=None) or fund.list_date or HISTORY_START
            _sync_fund(provider, fund, start, until, report)
    return report


def _incomplete_days(funds: Sequence[Fund], until: date) -> dict[int, set[date]]:
    rows = PriceBar.objects.filter(
        fund__in=funds, adj_factor__isnull=True, trade_date__lte=until
    ).values_list("fund_id", "trade_date")
    out: dict[int, set[date]] = {}
    for fund_id, day in rows:
        out.setdefault(fund_id, set()).add(day)
    return out


def _sync_day(provider: Provider, day: date, funds: Sequence[Fund], report: SyncReport) -> None:
    """All funds' bars of one trade date: two calls, whatever the number of funds."""
    daily = provider.fund_daily(trade_date=day)
    try:
        adj = provider.fund_adj(trade_date=day)
    except ProviderError as e:
        if e.permanent:
            raise
        logger.warning("adjustment factors for %s are not available yet: %s", day, e)
        adj = pd.DataFrame(columns=["ts_code", "trade_date", "adj_factor"])
        report.adj_missing.append(day)
    report.bars += _store(daily, adj, funds)


def _sync_fund(
    provider: Provider, fund: Fund, start: date, until: date, report: SyncReport
) -> None:
    """One fund's bars over a date range (a backfill)."""
    try:
        daily = provider.fund_daily(ts_code=fund.ts_code, start=start, end=until)
        adj = provider.fund_adj(ts_code=fund.ts_code, start=start, end=until)
    except ProviderError as e:
        if e.permanent:
            raise
        report.errors[fund.ts_code] = str(e)
        return
    report.bars += _store(daily, adj, [fund])
    fund.synced_until = until
    Fund.objects.filter(pk=fund.pk).update(synced_until=until)


def _store(daily: pd.DataFrame, adj: pd.DataFrame, funds: Iterable[Fund]) -> int:
    """Upsert bars of `funds`; a bar without its factor keeps any factor stored."""
    by_code = {f.ts_code: f for f in funds}
    daily = daily[daily["ts_code"].isin(by_code)]
    if daily.empty:
        return 0
    merged = daily.merge(
        adj[["ts_code", "trade_date", "adj_factor"]].drop_duplicates(["ts_code", "trade_date"]),
        on=["ts_code", "trade_date"],
        how="left",
    ).drop_duplicates(["ts_code", "trade_date"])
    merged = merged.astype(object).where(merged.notna(), None)
    complete: list[PriceBar] = []
    partial: list[PriceBar] = []
    for record in merged.to_dict("records"):
        bar = PriceBar(
            fund=by_code[str(record["ts_code"])],
            trade_date=record["trade_date"],
            adj_factor=record["adj_factor"],
            **{name: record[name] for name in BAR_FIELDS},
        )
        (complete if bar.adj_factor is not None else partial).append(bar)
    for bars, fields in ((complete, [*BAR_FIELDS, "adj_factor"]), (partial, BAR_FIELDS)):
        PriceBar.objects.bulk_create(
            bars,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["fund", "trade_date"],
            update_fields=fields,
        )
    return len(merged)
