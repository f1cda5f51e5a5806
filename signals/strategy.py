"""Trading strategies as pure functions over price arrays.

Nothing here knows about Django, settings or the clock. A strategy turns a
series of forward-adjusted closes into two indicator lines and a *regime*
(+1 in the market, -1 out of it, 0 not yet defined); `evaluate` turns any
regime into the per-day states BUY, SELL, HOLD, EMPTY and INSUFFICIENT with
their `since`, `days` and `change`. Everything is vectorised: one pass over a
fund's series gives the state of every day.

The exact definition of the default double moving average (DMA) strategy is
in the README ("How signals are defined").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import talib

BUY, SELL, HOLD, EMPTY, INSUFFICIENT = "BUY", "SELL", "HOLD", "EMPTY", "INSUFFICIENT"
# Integer codes used inside the arrays; STATE_NAMES maps them back.
_INSUFFICIENT, _BUY, _SELL, _HOLD, _EMPTY = 0, 1, 2, 3, 4
STATE_NAMES = np.array([INSUFFICIENT, BUY, SELL, HOLD, EMPTY], dtype=object)

# Averages are rounded half up to the ETF tick, 0.001 CNY, before they are compared.
TICKS_PER_UNIT = 1000
# Floating-point sums carry noise that depends on where a series starts; snapping
# to 1e-7 first makes the rounding the same whatever history was passed in.
_SNAP = 10_000_000


class Params(NamedTuple):
    short: int
    long: int


class Indicators(NamedTuple):
    short_ma: np.ndarray  # float64, NaN where not yet defined
    long_ma: np.ndarray
    direction: np.ndarray  # int8: +1 short above long, -1 below, 0 equal or undefined


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    indicators: Callable[[np.ndarray, Params], Indicators]

    def code(self, params: Params) -> str:
        """The identifier stored on each signal, e.g. "dma-11-22"."""
        return f"{self.key}-{params.short}-{params.long}"


def round_to_tick(values: np.ndarray) -> np.ndarray:
    """Round half up to 0.001, exactly at .0005 whatever the floating-point noise."""
    units = np.rint(values * _SNAP)
    step = _SNAP // TICKS_PER_UNIT
    return np.floor((units + step // 2) / step) / TICKS_PER_UNIT


def dma_indicators(qfq: np.ndarray, params: Params) -> Indicators:
    """Simple moving averages of the adjusted close, rounded to the tick."""
    short_ma = round_to_tick(talib.SMA(qfq, timeperiod=params.short))
    long_ma = round_to_tick(talib.SMA(qfq, timeperiod=params.long))
    with np.errstate(invalid="ignore"):
        direction = np.nan_to_num(np.sign(short_ma - long_ma)).astype(np.int8)
    return Indicators(short_ma, long_ma, direction)


STRATEGIES: dict[str, Strategy] = {
    "dma": Strategy("dma", "Double moving average", dma_indicators),
}


def validate_params(params: Params) -> None:
    if params.short < 1 or params.long < 2:
        raise ValueError("moving-average windows must be at least 1 and 2 days")
    if params.short >= params.long:
        raise ValueError("the short window must be shorter than the long window")


@dataclass(frozen=True)
class Seed:
    """What the previous evaluation knew at the bar just before a window.

    Lets the daily run extend yesterday's state by one bar without rereading
    the whole history: the regime carries over ties, and `since` carries over
    when no cross happens inside the window.
    """

    regime: int  # +1 or -1
    since: np.datetime64
    since_qfq: float
    since_start: bool


@dataclass(frozen=True)
class States:
    """Per-bar results, aligned with the input arrays."""

    state: np.ndarray  # object array of state names
    short_ma: np.ndarray
    long_ma: np.ndarray
    qfq: np.ndarray
    since: np.ndarray  # datetime64[D], NaT where INSUFFICIENT
    since_start: np.ndarray  # bool
    days: np.ndarray  # int64, -1 where INSUFFICIENT
    change: np.ndarray  # float64, NaN where INSUFFICIENT


def carry_forward(direction: np.ndarray, seed: int = 0) -> np.ndarray:
    """Regime: the last non-zero direction so far (a tie changes nothing)."""
    index = np.where(direction != 0, np.arange(direction.size), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, direction[np.maximum(index, 0)], seed).astype(np.int8)


def evaluate(
    strategy: Strategy,
    params: Params,
    dates: np.ndarray,
    close: np.ndarray,
    adj: np.ndarray,
    *,
    anchor: float | None = None,
    seed: Seed | None = None,
    bars_before: int = 0,
) -> States:
    """Evaluate every bar with one forward-adjustment anchor.

    `anchor` is the adjustment factor prices are scaled to (default: the last
    bar's, which is what the definition asks for on the last bar). `seed` and
    `bars_before` describe the history before `dates[0]` when only a window of
    recent bars is passed in.
    """
    anchor = float(adj[-1]) if anchor is None else anchor
    qfq = close * adj / anchor
    short_ma, long_ma, direction = strategy.indicators(qfq, params)
    seed_regime = seed.regime if seed else 0
    regime = carry_forward(direction, seed_regime)
    previous = np.concatenate(([seed_regime], regime[:-1])).astype(np.int8)
    cross = (regime != 0) & (previous != 0) & (regime != previous)

    n = dates.size
    index = np.arange(n)
    last_cross = np.maximum.accumulate(np.where(cross, index, -1))
    defined = np.flatnonzero(regime)
    first_defined = int(defined[0]) if defined.size else n
    enough = (index + 1 + bars_before) >= params.long + 1
    known = enough & (regime != 0)

    code = np.select(
        [~known, cross & (regime > 0), cross & (regime < 0), regime > 0],
        [_INSUFFICIENT, _BUY, _SELL, _HOLD],
        default=_EMPTY,
    )
    from_cross = last_cross >= 0
    since_index = np.where(from_cross, last_cross, first_defined)
    since = dates[np.minimum(since_index, n - 1)].astype("datetime64[D]")
    since_qfq = qfq[np.minimum(since_index, n - 1)]
    since_start = ~from_cross
    if seed is not None:
        since = np.where(from_cross, since, seed.since)
        since_qfq = np.where(from_cross, since_qfq, seed.since_qfq)
        since_start = np.where(from_cross, False, seed.since_start)

    days = (dates.astype("datetime64[D]") - since).astype(np.int64)
    change = qfq / since_qfq - 1.0
    return States(
        state=STATE_NAMES[code],
        short_ma=short_ma,
        long_ma=long_ma,
        qfq=qfq,
        since=np.where(known, since, np.datetime64("NaT")),
        since_start=known & since_start,
        days=np.where(known, days, -1),
        change=np.where(known, change, np.nan),
    )


def evaluate_history(
    strategy: Strategy, params: Params, dates: np.ndarray, close: np.ndarray, adj: np.ndarray
) -> States:
    """Evaluate every bar as the run on that bar's own date would have.

    Forward-adjusted prices are anchored at the adjustment factor of the bar
    being evaluated, so after a dividend or split the earlier history is
    rescaled. One pass per distinct factor keeps this exact and O(bars) for
    the handful of events a fund has.
    """
    if adj.size == 0:
        return evaluate(strategy, params, dates, close, np.ones(0), anchor=1.0)
    anchors, inverse = np.unique(adj, return_inverse=True)
    if anchors.size == 1:
        return evaluate(strategy, params, dates, close, adj)
    parts: list[tuple[np.ndarray, States]] = []
    for number, anchor in enumerate(anchors):
        members = np.flatnonzero(inverse == number)
        end = int(members[-1]) + 1
        states = evaluate(
            strategy, params, dates[:end], close[:end], adj[:end], anchor=float(anchor)
        )
        parts.append((members, states))
    return _assemble(dates.size, parts)


def _assemble(n: int, parts: list[tuple[np.ndarray, States]]) -> States:
    first = parts[0][1]
    out = {
        name: np.empty(n, dtype=getattr(first, name).dtype) for name in States.__dataclass_fields__
    }
    for members, states in parts:
        for name, array in out.items():
            array[members] = getattr(states, name)[members]
    return States(**out)


def evaluate_empty(n: int) -> States:
    """States for `n` bars that cannot be evaluated at all."""
    return States(
        state=np.full(n, INSUFFICIENT, dtype=object),
        short_ma=np.full(n, np.nan),
        long_ma=np.full(n, np.nan),
        qfq=np.full(n, np.nan),
        since=np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"),
        since_start=np.zeros(n, dtype=bool),
        days=np.full(n, -1, dtype=np.int64),
        change=np.full(n, np.nan),
    )
