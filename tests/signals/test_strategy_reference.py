"""The DMA strategy against a plain reference, on every bar of the bundled sample.

The reference below is written straight from DESIGN.md ("The double moving
average (DMA) signal — exact definition") with Python loops. It shares no code
with `signals.strategy` and does not use TA-Lib.

It works in exact rational arithmetic (`Fraction`) on the prices as the CSV
files write them. Floating-point means cannot settle an average that lies
exactly on a half tick (x.xxx5), and a 22-day mean of 3-decimal closes does so
on about one bar in twenty: whether the float lands a hair above or below
depends on how it was summed. On this sample, TA-Lib's SMA with
`np.round(..., 3)` and `pandas.rolling(n).mean().round(3)` disagree on 693
bars, every one an exact half tick, and 187 states follow. The strategy
rounds half up (`round_to_tick`, after snapping to 1e-7), so the reference
rounds the exact mean half up. The two could only differ on a mean within
5e-8 of a half tick without being on it; the nearest such mean in the sample
is 1.7e-7 away.
"""

import math
from datetime import date
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.test import SimpleTestCase

from signals.strategy import STRATEGIES, Params, evaluate_history

SHORT, LONG = 11, 22
HALF = Fraction(1, 2)


def load_sample() -> dict[str, pd.DataFrame]:
    """Each bundled fund's bars as text (trade_date, close, adj_factor), oldest first."""
    folder = Path(settings.SAMPLE_DATA_DIR)
    daily = pd.read_csv(folder / "fund_daily.csv", dtype=str)
    adj = pd.read_csv(folder / "fund_adj.csv", dtype=str)
    bars = daily.merge(adj, on=["ts_code", "trade_date"], how="inner", validate="1:1")
    bars = bars.sort_values(["ts_code", "trade_date"])
    return {
        code: frame[["trade_date", "close", "adj_factor"]].reset_index(drop=True)
        for code, frame in bars.groupby("ts_code")
    }


def moving_average_ticks(values: list[Fraction], n: int) -> list[int | None]:
    """The n-day mean of each bar, in whole ticks of 0.001, rounded half up."""
    ticks: list[int | None] = []
    total = Fraction(0)
    for t, value in enumerate(values):
        total += value
        if t >= n:
            total -= values[t - n]
        ticks.append(math.floor(total / n * 1000 + HALF) if t >= n - 1 else None)
    return ticks


def regimes(short_ma: list[int | None], long_ma: list[int | None]) -> list[int]:
    """+1 short above long, -1 below, the previous one on a tie, 0 until they differ."""
    result = []
    current = 0
    for short, long in zip(short_ma, long_ma, strict=True):
        if short is not None and long is not None and short != long:
            current = 1 if short > long else -1
        result.append(current)
    return result


def reference_day_states(bars: pd.DataFrame, short: int, long: int) -> list[dict]:
    """What a run on each bar's own date reports for that bar, per DESIGN.md.

    For a day T the prices are forward-adjusted to T's factor, so everything
    depends on the anchor adj_T. Everything below is causal (a bar only looks
    at bars before it), so one pass over the bars up to the *last* bar having
    a given factor gives, for every bar with that factor, exactly what
    recomputing on that bar's own prefix would.
    """
    dates = [date.fromisoformat(day) for day in bars["trade_date"]]
    close = [Fraction(text) for text in bars["close"]]
    adj = [Fraction(text) for text in bars["adj_factor"]]
    results: list[dict] = [{} for _ in dates]
    for anchor in dict.fromkeys(adj):  # each distinct factor once
        members = {i for i, factor in enumerate(adj) if factor == anchor}
        end = max(members) + 1
        qfq = [c * a / anchor for c, a in zip(close[:end], adj[:end], strict=True)]
        short_ma = moving_average_ticks(qfq, short)
        long_ma = moving_average_ticks(qfq, long)
        regime = regimes(short_ma, long_ma)

        first_defined = None
        latest_cross = None
        for t in range(end):
            previous = regime[t - 1] if t > 0 else 0
            if regime[t] != 0 and first_defined is None:
                first_defined = t
            crossed = previous != 0 and regime[t] != previous
            if crossed:
                latest_cross = t
            if t not in members:
                continue
            row = {
                "qfq": float(qfq[t]),
                "short_ma": math.nan if short_ma[t] is None else short_ma[t] / 1000,
                "long_ma": math.nan if long_ma[t] is None else long_ma[t] / 1000,
            }
            if t + 1 < long + 1 or regime[t] == 0:
                row.update(state="INSUFFICIENT", since=None, since_start=False, days=-1)
                row["change"] = math.nan
            else:
                if crossed:
                    state = "BUY" if regime[t] > 0 else "SELL"
                else:
                    state = "HOLD" if regime[t] > 0 else "EMPTY"
                since = latest_cross if latest_cross is not None else first_defined
                row.update(
                    state=state,
                    since=dates[since],
                    since_start=latest_cross is None,
                    days=(dates[t] - dates[since]).days,
                    change=float(qfq[t] / qfq[since] - 1),
                )
            results[t] = row
    return results


def same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def differences(code: str, expected: list[dict], states) -> list[str]:
    """One line per bar where the strategy and the reference disagree."""
    found = []
    for t, want in enumerate(expected):
        got = {
            "state": states.state[t],
            "since": None if np.isnat(states.since[t]) else states.since[t].item(),
            "since_start": bool(states.since_start[t]),
            "days": int(states.days[t]),
            "change": float(states.change[t]),
            "qfq": float(states.qfq[t]),
            "short_ma": float(states.short_ma[t]),
            "long_ma": float(states.long_ma[t]),
        }
        exact = ("state", "since", "since_start", "days")
        numbers = ("change", "qfq", "short_ma", "long_ma")
        if any(got[k] != want[k] for k in exact) or not all(
            same_number(got[k], want[k]) for k in numbers
        ):
            found.append(f"{code} bar {t}: expected {want}, got {got}")
    return found


class DmaReferenceTestCase(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.funds = load_sample()

    def test_it_uses_the_whole_sample(self):
        self.assertEqual(len(self.funds), 16)
        self.assertEqual(sum(len(bars) for bars in self.funds.values()), 35186)

    def test_it_matches_the_reference_on_every_bar_of_every_fund(self):
        compared = 0
        found = []
        for code, bars in self.funds.items():
            states = evaluate_history(
                STRATEGIES["dma"],
                Params(SHORT, LONG),
                np.array(bars["trade_date"].map(date.fromisoformat), dtype="datetime64[D]"),
                bars["close"].astype(np.float64).to_numpy(),
                bars["adj_factor"].astype(np.float64).to_numpy(),
            )
            found += differences(code, reference_day_states(bars, SHORT, LONG), states)
            compared += len(bars)
        self.assertEqual(compared, 35186)
        self.assertEqual(found[:5], [], f"{len(found)} of {compared} bars differ")
