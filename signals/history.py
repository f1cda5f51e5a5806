"""Computing and storing signals from stored price bars.

`extend` gives one run date its signals. Where yesterday's signal exists and
no dividend or split happened since, it reads only the last few weeks of bars
and carries yesterday's regime forward; otherwise it evaluates the fund's
whole history. `backfill` evaluates every bar once and stores the signal of
every trading day in a range, with PostgreSQL's COPY where available.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from signals.models import PriceBar, Signal, SignalRun
from signals.strategy import (
    BUY,
    EMPTY,
    HOLD,
    SELL,
    Seed,
    States,
    evaluate,
    evaluate_history,
)

if TYPE_CHECKING:
    from signals.services import Target

REGIME_STATES = {BUY: 1, HOLD: 1, SELL: -1, EMPTY: -1}
CHUNK = 100  # funds whose full history is held in memory at once
SIGNAL_COLUMNS = [
    "fund_id", "strategy", "run_date", "bar_date", "state", "stale", "note", "close",
    "qfq_close", "short_ma", "long_ma", "since", "since_start", "days", "change", "run_id",
]  # fmt: skip

T = TypeVar("T")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class ProgressBar(Protocol):
    """What a progress bar needs here; a `tqdm` instance is one."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...
    def update(self, n: float = 1) -> Any: ...


Progress = Callable[[int, str], ProgressBar]


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None


def _no_progress(total: int, desc: str) -> ProgressBar:
    return _NoProgress()


@dataclass
class Series:
    dates: np.ndarray  # datetime64[D]
    close: np.ndarray
    adj: np.ndarray


@dataclass
class ComputeResult:
    signals: list[Signal] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    stored: int = 0


def load_series(
    fund_ids: Iterable[int], *, until: date, since: date | None = None
) -> dict[int, Series]:
    """Complete bars (those with an adjustment factor) per fund, oldest first."""
    bars = PriceBar.objects.filter(
        fund_id__in=list(fund_ids), trade_date__lte=until, adj_factor__isnull=False
    )
    if since is not None:
        bars = bars.filter(trade_date__gte=since)
    rows = list(
        bars.order_by("fund_id", "trade_date").values_list(
            "fund_id", "trade_date", "close", "adj_factor"
        )
    )
    if not rows:
        return {}
    fund_col, date_col, close_col, adj_col = zip(*rows, strict=True)
    fund_ids_arr = np.array(fund_col, dtype=np.int64)
    # Day numbers from ordinals: much cheaper than numpy parsing date objects.
    ordinals = np.fromiter((d.toordinal() for d in date_col), np.int64, len(date_col))
    dates = (ordinals - _EPOCH_ORDINAL).astype("datetime64[D]")
    close = np.array(close_col, dtype=np.float64)
    adj = np.array(adj_col, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, fund_ids_arr[1:] != fund_ids_arr[:-1]])
    ends = np.r_[starts[1:], fund_ids_arr.size]
    return {
        int(fund_ids_arr[a]): Series(dates[a:b], close[a:b], adj[a:b])
        for a, b in zip(starts, ends, strict=True)
    }


def extend(targets: Sequence[Target], run_date: date, run: SignalRun) -> ComputeResult:
    """Compute and store the signals of one run date."""
    result = ComputeResult()
    unpublished = set(
        PriceBar.objects.filter(
            fund__in=[t.fund for t in targets], trade_date=run_date, adj_factor__isnull=True
        ).values_list("fund_id", flat=True)
    )
    for code, group in _by_code(targets).items():
        previous = _previous_signals(code, [t.fund.pk for t in group], run_date)
        windowed = {t.fund.pk: n for t in group if (n := t.strategy.lookback(t.params)) is not None}
        full = [t for t in group if t.fund.pk not in previous or t.fund.pk not in windowed]
        seeded = [t for t in group if t.fund.pk in previous and t.fund.pk in windowed]
        if seeded:
            longest = max(windowed[t.fund.pk] for t in seeded)
            since = min(previous[t.fund.pk].bar_date for t in seeded) - timedelta(
                days=2 * longest + 20
            )
            windows = load_series([t.fund.pk for t in seeded], since=since, until=run_date)
            for target in seeded:
                signal = _guarded(
                    result,
                    target,
                    _extend_one,
                    target,
                    previous[target.fund.pk],
                    windows.get(target.fund.pk),
                    run_date,
                    run,
                )
                if signal is None and target.fund.ts_code not in result.errors:
                    full.append(target)
                elif signal is not None:
                    result.signals.append(signal)
        for chunk in _chunks(full, CHUNK):
            series = load_series([t.fund.pk for t in chunk], until=run_date)
            for target in chunk:
                signal = _guarded(
                    result,
                    target,
                    _evaluate_last,
                    target,
                    series.get(target.fund.pk),
                    run_date,
                    run,
                )
                if signal is not None:
                    result.signals.append(signal)
    for signal in result.signals:
        if signal.stale:
            signal.note = _stale_note(signal, unpublished)
    with transaction.atomic():
        Signal.objects.bulk_create(
            result.signals,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["fund", "strategy", "run_date"],
            update_fields=[c.removesuffix("_id") for c in SIGNAL_COLUMNS[3:]],
        )
    result.stored = len(result.signals)
    return result


def backfill(
    targets: Sequence[Target],
    days: Sequence[date],
    run: SignalRun,
    *,
    progress: Progress | None = None,
) -> ComputeResult:
    """Compute and store the signals of every trading day in `days` (ascending)."""
    result = ComputeResult()
    if not days:
        return result
    day_array = np.array(days, dtype="datetime64[D]")
    bar = (progress or _no_progress)(len(targets), f"backfill {len(days)} days")
    with bar, transaction.atomic():
        for code, group in _by_code(targets).items():
            Signal.objects.filter(
                fund_id__in=[t.fund.pk for t in group],
                strategy=code,
                run_date__range=(days[0], days[-1]),
            ).delete()
        # Bars are read first: once the COPY starts, the connection is busy
        # taking rows, which the server stores while the next chunk is computed.
        series: dict[int, Series] = {}
        for fund_ids in _chunks(sorted({t.fund.pk for t in targets}), CHUNK):
            series.update(load_series(fund_ids, until=days[-1]))
        tally = _Tally()
        with _signal_writer() as write:
            for chunk in _chunks(targets, CHUNK):
                frames = []
                for target in chunk:
                    frame = _guarded(
                        result,
                        target,
                        _history_frame,
                        target,
                        series.pop(target.fund.pk, None),
                        day_array,
                        run,
                    )
                    if frame is not None and len(frame):
                        frames.append(frame)
                    bar.update(1)
                if frames:
                    frame = pd.concat(frames, ignore_index=True)
                    tally.add(frame)
                    result.stored += write(frame)
        # Each earlier day gets a run record of its own, as if the job had run
        # that day; the rows point at the run that wrote them, this one.
        tally.record_days(run, days, result.errors)
    result.signals = list(Signal.objects.filter(run=run, run_date=days[-1]).select_related("fund"))
    return result


class _Tally:
    """Counts per day and state, summed over the chunks a backfill writes."""

    def __init__(self) -> None:
        self.states: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.stale: dict[date, int] = defaultdict(int)
        self.funds: dict[date, int] = defaultdict(int)

    def add(self, frame: pd.DataFrame) -> None:
        counts = frame.groupby(["run_date", "state"]).size()
        for (day, state), count in zip(counts.index, counts.to_numpy(), strict=True):
            self.states[pd.Timestamp(day).date()][str(state)] += int(count)
        per_day = frame.groupby("run_date").agg(stale=("stale", "sum"), funds=("state", "size"))
        for day, stale, funds in zip(
            per_day.index, per_day["stale"], per_day["funds"], strict=True
        ):
            self.stale[pd.Timestamp(day).date()] += int(stale)
            self.funds[pd.Timestamp(day).date()] += int(funds)

    def record_days(self, run: SignalRun, days: Sequence[date], errors: dict[str, str]) -> None:
        """A finished run per backfilled day before `run`'s own, replacing earlier ones."""
        earlier = [d for d in days if d != run.run_date]
        # Only records of the same scope: a list's backfill leaves the whole market's.
        SignalRun.objects.filter(
            run_date__in=earlier, scope__startswith="backfill ", scope__endswith=f"; {run.scope}"
        ).delete()
        failed = len(errors) > settings.SIGNALS_MAX_ERRORS
        listed = [{"ts_code": code, "error": text} for code, text in sorted(errors.items())]
        now = timezone.now()
        scope = f"backfill {days[0]} to {days[-1]}; {run.scope}"
        SignalRun.objects.bulk_create(
            (self._run(run, day, listed, failed, now, scope) for day in earlier), batch_size=1000
        )

    def _run(
        self,
        run: SignalRun,
        day: date,
        errors: list[dict[str, str]],
        failed: bool,
        now: datetime,
        scope: str,
    ) -> SignalRun:
        states = self.states[day]
        return SignalRun(
            run_date=day,
            strategy=run.strategy,
            provider=run.provider,
            scope=scope,
            backfill_from=run.backfill_from,
            started_at=run.started_at,
            finished_at=now,
            status=SignalRun.Status.FAILED if failed else SignalRun.Status.SUCCESS,
            funds=self.funds[day] + len(errors),
            buy=states[BUY],
            sell=states[SELL],
            hold=states[HOLD],
            empty=states[EMPTY],
            insufficient=states["INSUFFICIENT"],
            stale=self.stale[day],
            error_count=len(errors),
            errors=errors,
        )


def _guarded(result: ComputeResult, target: Target, func: Callable[..., T], *args: Any) -> T | None:
    """Run one fund's step; a failure is recorded against the fund, not the run."""
    try:
        return func(*args)
    except Exception as e:  # one broken fund must not stop the others
        result.errors[target.fund.ts_code] = f"{type(e).__name__}: {e}"
        return None


def _extend_one(
    target: Target, previous: Signal, series: Series | None, run_date: date, run: SignalRun
) -> Signal | None:
    """Yesterday's state carried forward over the new bars, or None to recompute."""
    regime = REGIME_STATES.get(previous.state)
    if regime is None or series is None or previous.change is None or previous.since is None:
        return None
    last = np.datetime64(previous.bar_date, "D")
    j = int(np.searchsorted(series.dates, last, side="right"))
    if j == 0 or series.dates[j - 1] != last:
        return None
    if j == series.dates.size:  # no new bar: yesterday's signal, now stale
        signal = Signal(**{f: getattr(previous, f) for f in _COPIED})
        signal.pk, signal.run_date, signal.run, signal.stale = None, run_date, run, True
        return signal
    lookback = target.strategy.lookback(target.params)
    assert lookback is not None  # `extend` evaluates the others from their whole series
    start = j - lookback + 1
    if start < 0 or not np.all(series.adj[j - 1 :] == series.adj[j - 1]):
        return None  # not enough bars in the window, or a dividend/split rescaled history
    seed = Seed(
        regime=regime,
        since=np.datetime64(previous.since, "D"),
        since_qfq=float(previous.qfq_close or 0) / (1.0 + previous.change),
        since_start=previous.since_start,
    )
    window = Series(series.dates[start:], series.close[start:], series.adj[start:])
    states = evaluate(
        target.strategy, target.params, window.dates, window.close, window.adj,
        seed=seed, bars_before=lookback,
    )  # fmt: skip
    return _make_signal(target, window, states, run_date, run)


_COPIED = [
    "fund", "strategy", "bar_date", "state", "close", "qfq_close", "short_ma", "long_ma",
    "since", "since_start", "days", "change",
]  # fmt: skip


def _evaluate_last(
    target: Target, series: Series | None, run_date: date, run: SignalRun
) -> Signal | None:
    if series is None or series.dates.size == 0:
        if target.fund.list_date and target.fund.list_date > run_date:
            return None  # not listed yet: no signal, and no error
        raise ValueError(f"no complete price bar on or before {run_date}")
    states = evaluate(target.strategy, target.params, series.dates, series.close, series.adj)
    return _make_signal(target, series, states, run_date, run)


def _make_signal(
    target: Target, series: Series, states: States, run_date: date, run: SignalRun
) -> Signal:
    bar_date = series.dates[-1].item()
    return Signal(
        fund=target.fund,
        strategy=target.code,
        run_date=run_date,
        bar_date=bar_date,
        state=str(states.state[-1]),
        stale=bar_date < run_date,
        close=float(series.close[-1]),
        qfq_close=_number(states.qfq[-1]),
        short_ma=_number(states.short_ma[-1]),
        long_ma=_number(states.long_ma[-1]),
        since=None if np.isnat(states.since[-1]) else states.since[-1].item(),
        since_start=bool(states.since_start[-1]),
        days=None if states.days[-1] < 0 else int(states.days[-1]),
        change=_number(states.change[-1]),
        run=run,
    )


def _history_frame(
    target: Target, series: Series | None, days: np.ndarray, run: SignalRun
) -> pd.DataFrame | None:
    """One row per day in `days` from the fund's first bar on: the day's signal."""
    if series is None or series.dates.size == 0:
        if target.fund.list_date and target.fund.list_date > days[-1].item():
            return None
        raise ValueError(f"no complete price bar on or before {days[-1]}")
    states = evaluate_history(
        target.strategy, target.params, series.dates, series.close, series.adj
    )
    position = np.searchsorted(series.dates, days, side="right") - 1
    listed = position >= 0
    at, day = position[listed], days[listed]
    bar_dates = series.dates[at]
    stale = bar_dates < day
    return pd.DataFrame(
        {
            "fund_id": target.fund.pk,
            "strategy": target.code,
            "run_date": day,
            "bar_date": bar_dates,
            "state": states.state[at],
            "stale": stale,
            "note": np.where(stale, "no trade on this day", ""),
            "close": series.close[at],
            "qfq_close": states.qfq[at],
            "short_ma": states.short_ma[at],
            "long_ma": states.long_ma[at],
            "since": states.since[at],
            "since_start": states.since_start[at],
            "days": _nullable_days(states.days[at]),
            "change": states.change[at],
            "run_id": run.pk,
        }
    )


@contextmanager
def _signal_writer() -> Iterator[Callable[[pd.DataFrame], int]]:
    """A function that stores frames of signal rows: one streaming COPY on PostgreSQL."""
    if connection.vendor != "postgresql":
        yield _bulk_create
        return
    columns = ", ".join(f'"{c}"' for c in SIGNAL_COLUMNS)
    sql = (
        f"COPY {Signal._meta.db_table} ({columns}) FROM STDIN "
        "WITH (FORMAT csv, FORCE_NOT_NULL (strategy, state, note))"
    )
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:

        def write(frame: pd.DataFrame) -> int:
            buffer = io.StringIO()
            _ordered(frame).to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d")
            copy.write(buffer.getvalue())
            return len(frame)

        yield write


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """By date, so the date index is written in order."""
    return frame[SIGNAL_COLUMNS].sort_values(["run_date", "fund_id"], kind="stable")


def _bulk_create(frame: pd.DataFrame) -> int:
    rows = _ordered(frame).itertuples(index=False)
    Signal.objects.bulk_create((_row_to_signal(row) for row in rows), batch_size=500)
    return len(frame)


def _row_to_signal(row: Any) -> Signal:
    values = {name: getattr(row, name) for name in SIGNAL_COLUMNS}
    for name in ("run_date", "bar_date", "since"):
        values[name] = None if pd.isna(values[name]) else pd.Timestamp(values[name]).date()
    for name in ("close", "qfq_close", "short_ma", "long_ma", "change"):
        values[name] = _number(values[name])
    values["days"] = None if pd.isna(values["days"]) else int(values["days"])
    values["stale"], values["since_start"] = bool(values["stale"]), bool(values["since_start"])
    return Signal(**values)


def _stale_note(signal: Signal, unpublished: set[int]) -> str:
    if signal.fund_id in unpublished:
        return f"adjustment factor for {signal.run_date} not published yet"
    return f"no trade on {signal.run_date}; last bar {signal.bar_date}"


def _previous_signals(code: str, fund_ids: list[int], run_date: date) -> dict[int, Signal]:
    earlier = Signal.objects.filter(strategy=code, fund_id__in=fund_ids, run_date__lt=run_date)
    latest = earlier.order_by("-run_date").values_list("run_date", flat=True).first()
    if latest is None:
        return {}
    return {s.fund_id: s for s in earlier.filter(run_date=latest)}


def _by_code(targets: Iterable[Target]) -> dict[str, list[Target]]:
    groups: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        groups[target.code].append(target)
    return groups


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _nullable_days(days: np.ndarray) -> pd.api.extensions.ExtensionArray:
    out = pd.array(days, dtype="Int64")
    out[days < 0] = pd.NA
    return out


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
