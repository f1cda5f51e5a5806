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

import functools
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
    # For two lines that scale with the price (moving averages do): the raw,
    # unrounded lines. Lets `evaluate_history` rescale instead of recomputing.
    scaled_lines: Callable[[np.ndarray, Params], tuple[np.ndarray, np.ndarray]] | None = None
    # How many of the latest bars determine the latest bar's lines exactly, so the
    # daily run can extend yesterday's state from a window of recent bars. None
    # for lines that depend on the whole history (an exponential average, say):
    # the daily run then evaluates the fund's whole series.
    lookback: Callable[[Params], int | None] = lambda params: params.long

    def code(self, params: Params) -> str:
        """The identifier stored on each signal, e.g. "dma-11-22"."""
        return f"{self.key}-{params.short}-{params.long}"


def round_to_tick(values: np.ndarray) -> np.ndarray:
    """Round half up to 0.001, exactly at .0005 whatever the floating-point noise."""
    units = np.rint(values * _SNAP)
    step = _SNAP // TICKS_PER_UNIT
    return np.floor((units + step // 2) / step) / TICKS_PER_UNIT


def dma_lines(values: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    return talib.SMA(values, timeperiod=params.short), talib.SMA(values, timeperiod=params.long)


def dma_indicators(qfq: np.ndarray, params: Params) -> Indicators:
    """Simple moving averages of the adjusted close, rounded to the tick."""
    short_raw, long_raw = dma_lines(qfq, params)
    short_ma, long_ma = round_to_tick(short_raw), round_to_tick(long_raw)
    return Indicators(short_ma, long_ma, direction_of(short_ma, long_ma))


def direction_of(short_ma: np.ndarray, long_ma: np.ndarray) -> np.ndarray:
    """+1 above, -1 below, 0 equal or undefined (comparisons with NaN are False)."""
    return (short_ma > long_ma).astype(np.int8) - (short_ma < long_ma)


STRATEGIES: dict[str, Strategy] = {
    "dma": Strategy("dma", "Double moving average", dma_indicators, scaled_lines=dma_lines),
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
    index = np.where(direction != 0, _arange(direction.size), 0)
    np.maximum.accumulate(index, out=index)
    regime = direction[index].astype(np.int8)
    if seed:  # bars before the first non-zero direction keep the seed
        regime[regime == 0] = seed
    return regime


@functools.cache
def _cached_arange(n: int) -> np.ndarray:
    index = np.arange(n)
    index.flags.writeable = False
    return index


def _arange(n: int) -> np.ndarray:
    return _cached_arange(n) if n <= 10_000 else np.arange(n)


@dataclass(frozen=True)
class Regimes:
    """The regime side of an evaluation, per bar."""

    short_ma: np.ndarray
    long_ma: np.ndarray
    regime: np.ndarray  # int8
    cross: np.ndarray  # bool: the regime flipped on this bar
    last_cross: np.ndarray  # index of the latest cross so far, -1 if none
    first_defined: np.ndarray  # index of the first bar with a regime, per bar


def regimes(strategy: Strategy, params: Params, qfq: np.ndarray, seed_regime: int = 0) -> Regimes:
    short_ma, long_ma, direction = strategy.indicators(qfq, params)
    return _from_direction(direction, short_ma, long_ma, seed_regime)


def _from_direction(
    direction: np.ndarray, short_ma: np.ndarray, long_ma: np.ndarray, seed_regime: int = 0
) -> Regimes:
    regime = carry_forward(direction, seed_regime)
    # A regime never returns to undefined, so a flip is a product of -1.
    flips = np.empty(regime.size, dtype=np.int8)
    flips[:1] = regime[:1] * seed_regime
    np.multiply(regime[1:], regime[:-1], out=flips[1:])
    cross = flips == -1
    last_cross = np.maximum.accumulate(np.where(cross, _arange(regime.size), -1))
    defined = regime != 0
    first = int(defined.argmax()) if defined.any() else regime.size
    first_defined = np.broadcast_to(np.int64(first), regime.shape)
    return Regimes(short_ma, long_ma, regime, cross, last_cross, first_defined)


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
    found = regimes(strategy, params, qfq, seed.regime if seed else 0)
    return _states(params, dates, qfq, found, lambda at: qfq[at], seed, bars_before)


def evaluate_history(
    strategy: Strategy, params: Params, dates: np.ndarray, close: np.ndarray, adj: np.ndarray
) -> States:
    """Evaluate every bar as the run on that bar's own date would have.

    Forward-adjusted prices are anchored at the adjustment factor of the bar
    being evaluated, so after a dividend or split the earlier history is
    rescaled (and the averages' rounding can differ). The regime is worked
    out once per distinct way of rounding, which keeps this exact and
    O(bars) for the handful of events a fund has; the states are built once.
    """
    anchors, inverse = np.unique(adj, return_inverse=True)
    if anchors.size <= 1:
        anchor = float(adj[-1]) if adj.size else 1.0
        return evaluate(strategy, params, dates, close, adj, anchor=anchor)
    if strategy.scaled_lines is not None:
        found = _rescaled_regimes(strategy.scaled_lines, params, close * adj, adj, anchors, inverse)
    else:
        found = _regimes_per_anchor(strategy, params, close, adj, anchors, inverse)
    # Each bar is priced at its own factor: qfq_t = close_t, and the price at
    # `since` is rescaled to the factor of the bar being evaluated.
    qfq = close.astype(np.float64, copy=True)
    return _states(params, dates, qfq, found, lambda at: close[at] * adj[at] / adj, None, 0)


def _regimes_per_anchor(
    strategy: Strategy,
    params: Params,
    close: np.ndarray,
    adj: np.ndarray,
    anchors: np.ndarray,
    inverse: np.ndarray,
) -> Regimes:
    """One full regime pass per anchor, each over the bars up to its last use."""
    parts = {name: np.empty(close.size, dtype=dtype) for name, dtype in _REGIME_DTYPES.items()}
    for number, anchor in enumerate(anchors):
        members = np.flatnonzero(inverse == number)
        end = int(members[-1]) + 1
        found = regimes(strategy, params, close[:end] * adj[:end] / anchor)
        for name, array in parts.items():
            array[members] = getattr(found, name)[members]
    return Regimes(**parts)


def _rescaled_regimes(
    lines: Callable[[np.ndarray, Params], tuple[np.ndarray, np.ndarray]],
    params: Params,
    values: np.ndarray,
    adj: np.ndarray,
    anchors: np.ndarray,
    inverse: np.ndarray,
) -> Regimes:
    """Regimes for lines that scale with the price, computed once per rounding.

    Rounded to the tick, two lines more than one tick apart compare the same
    under every anchor; only bars closer than that are compared per anchor,
    and anchors that agree on all of them share one regime pass.
    """
    short_raw, long_raw = lines(values, params)
    short_ma, long_ma = round_to_tick(short_raw / adj), round_to_tick(long_raw / adj)
    with np.errstate(invalid="ignore"):
        base = direction_of(short_raw, long_raw)
        near = np.flatnonzero(np.abs(short_raw - long_raw) <= 0.0011 * anchors[-1])
    per_anchor = direction_of(
        round_to_tick(short_raw[near, None] / anchors),
        round_to_tick(long_raw[near, None] / anchors),
    )
    # The pass in which each near bar is compared under its own anchor gives
    # every anchor whose regime agrees with it on all bars before its last use.
    own = per_anchor[np.arange(near.size), inverse[near]]
    direction = base.copy()
    direction[near] = own
    found = _from_direction(direction, short_ma, long_ma)
    parts = {name: getattr(found, name).copy() for name in _REGIME_DTYPES}
    ends = np.zeros(anchors.size, dtype=np.int64)
    np.maximum.at(ends, inverse, np.arange(1, values.size + 1))
    last_differing = _last_differing(base, near, np.column_stack([per_anchor, own]), ends)
    firsts = np.full(anchors.size, values.size, dtype=np.int64)
    np.minimum.at(firsts, inverse, np.arange(values.size))
    # After a difference, the regimes meet again at the next bar whose direction
    # no rounding can change; a cross after that and before the anchor's first
    # day makes every state of its days the same as in the shared pass.
    away = base != 0
    away[near] = False
    events = np.flatnonzero(away)
    recovered = np.zeros(anchors.size, dtype=bool)
    if events.size:
        after = np.minimum(np.searchsorted(events, last_differing, side="right"), events.size - 1)
        meet = events[after]
        recovered = (meet > last_differing) & (parts["last_cross"][firsts] > meet)
    shared = (last_differing < 0) | recovered
    for number in np.flatnonzero(~shared):
        end = int(ends[number])
        relevant = near < end
        direction = base[:end].copy()
        direction[near[relevant]] = per_anchor[relevant, number]
        found = _from_direction(direction, short_ma[:end], long_ma[:end])
        members = np.flatnonzero(inverse == number)
        for name in ("regime", "cross", "last_cross", "first_defined"):
            parts[name][members] = getattr(found, name)[members]
    return Regimes(**parts)


def _last_differing(
    base: np.ndarray, near: np.ndarray, choices: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Per anchor, the last bar before its `ends` where its regime differs from
    the last column's, or -1.

    Away from the near bars every anchor has the same direction, so the
    regime anywhere follows from the regime at the latest near bar; comparing
    the regimes at the near bars alone is enough, and cheap.
    """
    if near.size == 0:
        return np.full(ends.size, -1, dtype=np.int64)
    away = base.copy()
    away[near] = 0
    last_event = np.maximum.accumulate(np.where(away != 0, _arange(away.size), -1))
    previous_near = np.concatenate(([-1], near[:-1]))
    # With no direction of its own, a near bar takes the regime of the latest
    # bar away from the near bars, if one came after the previous near bar.
    carried = np.where(last_event[near] > previous_near, away[np.maximum(last_event[near], 0)], 0)
    effective = np.where(choices != 0, choices, carried[:, None])
    index = np.where(effective != 0, _arange(near.size)[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    regime = np.take_along_axis(effective, index, axis=0)
    relevant = near[:, None] < ends[None, :]
    differs = (regime[:, :-1] != regime[:, -1:]) & relevant
    return np.where(differs, near[:, None], -1).max(axis=0)


_REGIME_DTYPES = {
    "short_ma": np.float64, "long_ma": np.float64, "regime": np.int8, "cross": bool,
    "last_cross": np.int64, "first_defined": np.int64,
}  # fmt: skip


def _states(
    params: Params,
    dates: np.ndarray,
    qfq: np.ndarray,
    found: Regimes,
    qfq_at: Callable[[np.ndarray], np.ndarray],
    seed: Seed | None,
    bars_before: int,
) -> States:
    """BUY/SELL/HOLD/EMPTY/INSUFFICIENT with since, days and change, per bar."""
    n = dates.size
    regime, cross = found.regime, found.cross
    enough = (np.arange(n) + 1 + bars_before) >= params.long + 1
    known = enough & (regime != 0)
    rising = regime > 0
    code = np.where(cross, np.where(rising, _BUY, _SELL), np.where(rising, _HOLD, _EMPTY))
    code[~known] = _INSUFFICIENT
    from_cross = found.last_cross >= 0
    since_index = np.minimum(np.where(from_cross, found.last_cross, found.first_defined), n - 1)
    since = dates[since_index].astype("datetime64[D]")
    since_qfq = qfq_at(since_index)
    since_start = ~from_cross
    if seed is not None:
        since = np.where(from_cross, since, seed.since)
        since_qfq = np.where(from_cross, since_qfq, seed.since_qfq)
        since_start = np.where(from_cross, False, seed.since_start)
    days = (dates.astype("datetime64[D]") - since).astype(np.int64)
    change = qfq / since_qfq - 1.0
    return States(
        state=STATE_NAMES[code],
        short_ma=found.short_ma,
        long_ma=found.long_ma,
        qfq=qfq,
        since=np.where(known, since, np.datetime64("NaT")),
        since_start=known & since_start,
        days=np.where(known, days, -1),
        change=np.where(known, change, np.nan),
    )
