"""Reading stored signals for the website, the feeds and the digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from signals.history import load_series
from signals.models import DEFAULT_LONG, DEFAULT_SHORT, Fund, FundList, Signal, SignalRun
from signals.services import group_by_list, sort_signals
from signals.strategy import BUY, SELL, STRATEGIES, Params, States, Strategy, evaluate_history


def latest_run() -> SignalRun | None:
    """The newest successful run: what the home page and the API show."""
    return (
        SignalRun.objects.filter(status=SignalRun.Status.SUCCESS)
        .order_by("-run_date", "-finished_at")
        .first()
    )


def last_finished_run() -> SignalRun | None:
    """The run that last wrote signals: a run of any date changes a fund's history
    and the feeds, so answers built from those are kept under this run's key."""
    runs = SignalRun.objects.filter(status=SignalRun.Status.SUCCESS, finished_at__isnull=False)
    return runs.order_by("-finished_at").first()


def run_key(run: SignalRun | None) -> str:
    """Names a run and when it finished: a new run is a new cache key."""
    return f"{run.pk}:{run.finished_at:%Y%m%d%H%M%S%f}" if run and run.finished_at else "none"


def run_for_date(run_date: date) -> SignalRun | None:
    return (
        SignalRun.objects.filter(status=SignalRun.Status.SUCCESS, run_date=run_date)
        .order_by("-finished_at")
        .first()
    )


def published_dates() -> list[date]:
    """Every run date with a successful run, newest first."""
    rows = SignalRun.objects.filter(status=SignalRun.Status.SUCCESS).values_list(
        "run_date", flat=True
    )
    return sorted(set(rows), reverse=True)


def signals_by_list(run_date: date) -> list[tuple[FundList, list[Signal]]]:
    """Each fund list with its stored signals of a date: BUY, SELL, HOLD, EMPTY, …"""
    stored = Signal.objects.filter(run_date=run_date).select_related("fund")
    return group_by_list(FundList.objects.prefetch_related("items"), stored)


def actions_by_date(dates: list[date]) -> dict[date, list[Signal]]:
    """Each date's BUY and SELL signals, as Day.load finds them, in three queries."""
    lists = list(FundList.objects.prefetch_related("items"))
    stored = Signal.objects.filter(run_date__in=dates, state__in=(BUY, SELL))
    by_date: dict[date, list[Signal]] = {day: [] for day in dates}
    for signal in stored.select_related("fund"):
        by_date[signal.run_date].append(signal)
    return {day: _actions(group_by_list(lists, found)) for day, found in by_date.items()}


def _actions(groups: list[tuple[FundList, list[Signal]]]) -> list[Signal]:
    """The BUY and SELL signals of the lists, each once, in the order the pages show."""
    seen: set[int] = set()
    actions = []
    for _fund_list, signals in groups:
        for signal in signals:
            if signal.state in (BUY, SELL) and signal.pk not in seen:
                seen.add(signal.pk)
                actions.append(signal)
    return sort_signals(actions)


@dataclass
class Day:
    """One run date as the pages show it."""

    run_date: date
    run: SignalRun | None
    groups: list[tuple[FundList, list[Signal]]]
    actions: list[Signal] = field(default_factory=list)  # BUY and SELL, shown first
    stale: int = 0

    @classmethod
    def load(cls, run_date: date, run: SignalRun | None = None) -> Day:
        groups = [(fl, signals) for fl, signals in signals_by_list(run_date) if signals]
        stale = len({s.fund_id for _fl, signals in groups for s in signals if s.stale})
        return cls(run_date, run, groups, _actions(groups), stale)


@dataclass(frozen=True)
class RoundTrip:
    buy: date
    sell: date | None  # None: still holding
    days: int
    change: float


@dataclass
class FundHistory:
    """A fund's whole evaluated history, priced at today's adjustment."""

    fund: Fund
    strategy_code: str
    params: Params
    dates: np.ndarray
    qfq: np.ndarray  # forward-adjusted to the last bar
    short_ma: np.ndarray
    long_ma: np.ndarray
    states: States  # each day as that day's run saw it
    trips: list[RoundTrip]

    @property
    def closed_trips(self) -> list[RoundTrip]:
        return [t for t in self.trips if t.sell is not None]

    @property
    def win_rate(self) -> float | None:
        closed = self.closed_trips
        return sum(t.change > 0 for t in closed) / len(closed) if closed else None

    @property
    def cumulative(self) -> float | None:
        """Compounded return of the round trips, the open one at today's price."""
        if not self.trips:
            return None
        return float(np.prod([1 + t.change for t in self.trips]) - 1)

    @property
    def buy_and_hold(self) -> float | None:
        """Holding from the first BUY to the last bar, for comparison."""
        if not self.trips:
            return None
        first = int(np.searchsorted(self.dates, np.datetime64(self.trips[0].buy)))
        return float(self.qfq[-1] / self.qfq[first] - 1)


def fund_strategy(fund: Fund) -> tuple[Strategy, Params]:
    """The strategy of the fund's first list, or the default."""
    fund_list = fund.lists.order_by("position", "name").first()
    if fund_list is None:
        return STRATEGIES["dma"], Params(DEFAULT_SHORT, DEFAULT_LONG)
    return fund_list.strategy_impl, fund_list.params


def fund_history(fund: Fund, *, until: date | None = None) -> FundHistory | None:
    strategy, params = fund_strategy(fund)
    series = load_series([fund.pk], until=until or date.max).get(fund.pk)
    if series is None:
        return None
    states = evaluate_history(strategy, params, series.dates, series.close, series.adj)
    qfq = series.close * series.adj / series.adj[-1]
    # The chart's averages on today's prices (rounded as today's run does).
    lines = strategy.indicators(qfq, params)
    return FundHistory(
        fund=fund,
        strategy_code=strategy.code(params),
        params=params,
        dates=series.dates,
        qfq=qfq,
        short_ma=lines.short_ma,
        long_ma=lines.long_ma,
        states=states,
        trips=round_trips(series.dates, qfq, states.state),
    )


def round_trips(dates: np.ndarray, qfq: np.ndarray, state: np.ndarray) -> list[RoundTrip]:
    """Each BUY with the SELL that closed it (or today's price if still open)."""
    trips = []
    opened: int | None = None
    for index in np.flatnonzero((state == BUY) | (state == SELL)):
        if state[index] == BUY and opened is None:
            opened = int(index)
        elif state[index] == SELL and opened is not None:
            trips.append(_trip(dates, qfq, opened, int(index), closed=True))
            opened = None
    if opened is not None:
        trips.append(_trip(dates, qfq, opened, dates.size - 1, closed=False))
    return trips


def _trip(dates: np.ndarray, qfq: np.ndarray, start: int, end: int, *, closed: bool) -> RoundTrip:
    buy, sell = dates[start].item(), dates[end].item()
    return RoundTrip(
        buy=buy,
        sell=sell if closed else None,
        days=(sell - buy).days,
        change=float(qfq[end] / qfq[start] - 1),
    )
