"""The DMA strategy on small synthetic series (DESIGN.md, "exact definition").

Most tests use 2- and 4-day averages so the numbers can be checked by hand.
Bars fall on business days from Monday 1 January 2024: bar 0 is Mon 1 Jan,
bar 4 Fri 5 Jan, bar 5 Mon 8 Jan, bar 9 Fri 12 Jan, bar 10 Mon 15 Jan.
"""

import math

import numpy as np
from django.test import SimpleTestCase

from signals.strategy import (
    BUY,
    EMPTY,
    HOLD,
    INSUFFICIENT,
    SELL,
    STRATEGIES,
    Params,
    Seed,
    States,
    carry_forward,
    dma_indicators,
    evaluate,
    evaluate_history,
    validate_params,
)

DMA = STRATEGIES["dma"]
SMALL = Params(2, 4)
DEFAULT = Params(11, 22)

# Down, up, down again. With 2/4-day averages (short, long):
# bar 3  (10.5, 11.25)  first defined day, below
# bar 5  (11.5, 11)     crosses up: BUY
# bar 8  (11.5, 12)     crosses down: SELL
V_CLOSES = [12, 12, 11, 10, 11, 12, 13, 12, 11, 10, 10]

# Rising from bar 3 on: short above long since the first defined day.
RISING_CLOSES = [10, 10, 11, 12, 13, 14]


def make_dates(n: int) -> np.ndarray:
    """`n` business days from Monday 2024-01-01."""
    return np.busday_offset(np.datetime64("2024-01-01"), np.arange(n), roll="forward")


def make_series(closes, adj=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close = np.array(closes, dtype=np.float64)
    factors = np.ones(close.size) if adj is None else np.array(adj, dtype=np.float64)
    return make_dates(close.size), close, factors


def run(closes, params: Params = SMALL, adj=None) -> States:
    return evaluate(DMA, params, *make_series(closes, adj))


def summary(states: States, i: int) -> tuple[str, str, bool, int]:
    """(state, since, since_start, days) of bar `i`."""
    return (
        str(states.state[i]),
        str(states.since[i]),
        bool(states.since_start[i]),
        int(states.days[i]),
    )


def as_text(days: np.ndarray) -> list[str]:
    return [str(day) for day in days]


def seed_at(states: States, dates: np.ndarray, i: int) -> Seed:
    """What the evaluation `states` knew at bar `i`, as the daily run keeps it."""
    since_index = int(np.searchsorted(dates, states.since[i]))
    return Seed(
        regime=1 if states.state[i] in (BUY, HOLD) else -1,
        since=states.since[i],
        since_qfq=float(states.qfq[since_index]),
        since_start=bool(states.since_start[i]),
    )


def fields(states: States, i: int = -1) -> tuple:
    """Every field of bar `i`, NaN as None so that tuples compare equal."""

    def plain(value):
        value = float(value)
        return None if math.isnan(value) else value

    return (
        *summary(states, i),
        plain(states.change[i]),
        plain(states.short_ma[i]),
        plain(states.long_ma[i]),
        plain(states.qfq[i]),
    )


class BuyTestCase(SimpleTestCase):
    def test_it_buys_on_the_bar_the_short_average_crosses_above(self):
        states = run(V_CLOSES)
        self.assertEqual(summary(states, 5), (BUY, "2024-01-08", False, 0))
        self.assertEqual(states.change[5], 0.0)
        self.assertEqual((states.short_ma[5], states.long_ma[5]), (11.5, 11.0))

    def test_it_buys_only_on_the_crossing_bar(self):
        states = run(V_CLOSES)
        self.assertEqual(list(states.state[4:8]), [EMPTY, BUY, HOLD, HOLD])

    def test_it_buys_with_the_default_windows(self):
        # 11 bars at 10, 11 at 9: on bar 21 the short average (9) is below
        # the long one (9.5). Bar 22 jumps to 20: short 110/11 = 10, long
        # 219/22 = 9.9545... rounded to 9.955.
        states = run([10] * 11 + [9] * 11 + [20, 20], DEFAULT)
        self.assertEqual((states.short_ma[21], states.long_ma[21]), (9.0, 9.5))
        self.assertEqual(summary(states, 22), (BUY, "2024-01-31", False, 0))
        self.assertEqual((states.short_ma[22], states.long_ma[22]), (10.0, 9.955))
        # Bar 23: short 121/11 = 11, long 229/22 = 10.409...
        self.assertEqual(summary(states, 23), (HOLD, "2024-01-31", False, 1))
        self.assertEqual((states.short_ma[23], states.long_ma[23]), (11.0, 10.409))
        self.assertEqual(states.change[23], 0.0)


class SellTestCase(SimpleTestCase):
    def test_it_sells_on_the_bar_the_short_average_crosses_below(self):
        states = run(V_CLOSES)
        self.assertEqual(summary(states, 8), (SELL, "2024-01-11", False, 0))
        self.assertEqual(states.change[8], 0.0)
        self.assertEqual((states.short_ma[8], states.long_ma[8]), (11.5, 12.0))

    def test_it_sells_only_on_the_crossing_bar(self):
        states = run(V_CLOSES)
        self.assertEqual(list(states.state[7:]), [HOLD, SELL, EMPTY, EMPTY])


class HoldTestCase(SimpleTestCase):
    def test_it_holds_after_a_buy_since_the_buy_day(self):
        states = run(V_CLOSES)
        # Bar 6, Tue 9 Jan: close 13, bought at 12.
        self.assertEqual(summary(states, 6), (HOLD, "2024-01-08", False, 1))
        self.assertAlmostEqual(states.change[6], 13 / 12 - 1)
        self.assertEqual((states.short_ma[6], states.long_ma[6]), (12.5, 11.5))
        # Bar 7, Wed 10 Jan: back to the buying price.
        self.assertEqual(summary(states, 7), (HOLD, "2024-01-08", False, 2))
        self.assertEqual(states.change[7], 0.0)

    def test_it_counts_calendar_days(self):
        # Bought on bar 14 (Fri 19 Jan); bar 15 is the next Monday.
        states = run([12, 12, 11, 10, 11, 10, 9, 8, 8, 8, 8, 8, 8, 7, 12, 13])
        self.assertEqual(summary(states, 14), (BUY, "2024-01-19", False, 0))
        self.assertEqual(summary(states, 15), (HOLD, "2024-01-19", False, 3))
        self.assertAlmostEqual(states.change[15], 13 / 12 - 1)


class EmptyTestCase(SimpleTestCase):
    def test_it_is_empty_after_a_sell_since_the_sell_day(self):
        states = run(V_CLOSES)
        # Bar 9, Fri 12 Jan: close 10, sold at 11.
        self.assertEqual(summary(states, 9), (EMPTY, "2024-01-11", False, 1))
        self.assertAlmostEqual(states.change[9], 10 / 11 - 1)
        # Bar 10 is the next Monday.
        self.assertEqual(summary(states, 10), (EMPTY, "2024-01-11", False, 4))
        self.assertAlmostEqual(states.change[10], 10 / 11 - 1)
        self.assertEqual((states.short_ma[10], states.long_ma[10]), (10.0, 10.75))


class SinceStartTestCase(SimpleTestCase):
    def test_it_holds_since_the_first_defined_day(self):
        states = run(RISING_CLOSES)
        # Bar 3 (Thu 4 Jan) is the first day both averages exist: 11.5 > 10.75.
        self.assertEqual((states.short_ma[3], states.long_ma[3]), (11.5, 10.75))
        self.assertEqual(summary(states, 4), (HOLD, "2024-01-04", True, 1))
        self.assertAlmostEqual(states.change[4], 13 / 12 - 1)
        self.assertEqual(summary(states, 5), (HOLD, "2024-01-04", True, 4))
        self.assertAlmostEqual(states.change[5], 14 / 12 - 1)

    def test_it_is_empty_since_the_first_defined_day(self):
        states = run(V_CLOSES)
        self.assertEqual(summary(states, 4), (EMPTY, "2024-01-04", True, 1))
        self.assertAlmostEqual(states.change[4], 11 / 10 - 1)

    def test_it_stops_counting_from_the_start_after_the_first_cross(self):
        states = run(V_CLOSES)
        self.assertEqual(list(states.since_start[4:]), [True] + [False] * 6)

    def test_it_starts_the_regime_where_the_averages_first_differ(self):
        # Flat: the averages are equal on bars 3 and 4, so the regime is
        # undefined there; it starts on bar 5 (10.5 > 10.25), and that first
        # regime is not a cross.
        states = run([10, 10, 10, 10, 10, 11, 12])
        self.assertEqual(list(states.state), [INSUFFICIENT] * 5 + [HOLD, HOLD])
        self.assertEqual(summary(states, 5), (HOLD, "2024-01-08", True, 0))
        self.assertEqual(summary(states, 6), (HOLD, "2024-01-08", True, 1))
        self.assertAlmostEqual(states.change[6], 12 / 11 - 1)


class TieTestCase(SimpleTestCase):
    # Bought on bar 5 at 12; on bar 6 (close 9) both averages are 10.5.
    BOUGHT_THEN_TIE = [12, 12, 11, 10, 11, 12, 9]

    def test_it_keeps_the_regime_on_a_tie(self):
        states = run(self.BOUGHT_THEN_TIE)
        self.assertEqual((states.short_ma[6], states.long_ma[6]), (10.5, 10.5))
        self.assertEqual(summary(states, 6), (HOLD, "2024-01-08", False, 1))
        self.assertAlmostEqual(states.change[6], 9 / 12 - 1)

    def test_it_does_not_signal_on_a_touch_and_return(self):
        # Bar 7 (close 16): short 12.5 above long 12 again.
        states = run([*self.BOUGHT_THEN_TIE, 16])
        self.assertEqual((states.short_ma[7], states.long_ma[7]), (12.5, 12.0))
        self.assertEqual(list(states.state[5:]), [BUY, HOLD, HOLD])
        self.assertEqual(summary(states, 7), (HOLD, "2024-01-08", False, 2))
        self.assertAlmostEqual(states.change[7], 16 / 12 - 1)

    def test_it_signals_on_the_bar_after_a_tie_that_goes_through(self):
        # Bar 7 (close 10): short 9.5 below long 10.5. The cross is bar 7,
        # not the tie on bar 6.
        states = run([*self.BOUGHT_THEN_TIE, 10])
        self.assertEqual((states.short_ma[7], states.long_ma[7]), (9.5, 10.5))
        self.assertEqual(list(states.state[5:]), [BUY, HOLD, SELL])
        self.assertEqual(summary(states, 7), (SELL, "2024-01-10", False, 0))

    def test_it_keeps_an_empty_regime_on_a_tie(self):
        # Out since bar 3; on bar 5 (close 11) both averages are 10.5, on
        # bar 6 (close 8) short 9.5 is below long 9.75 again.
        states = run([12, 12, 11, 10, 10, 11, 8])
        self.assertEqual((states.short_ma[5], states.long_ma[5]), (10.5, 10.5))
        self.assertEqual((states.short_ma[6], states.long_ma[6]), (9.5, 9.75))
        self.assertEqual(list(states.state[4:]), [EMPTY, EMPTY, EMPTY])
        self.assertEqual(summary(states, 6), (EMPTY, "2024-01-04", True, 5))


class InsufficientTestCase(SimpleTestCase):
    def test_it_is_insufficient_with_fewer_than_long_plus_one_bars(self):
        # Bar 3 already has both averages (10.5 < 11.25) but only 4 bars.
        states = run(V_CLOSES[:4])
        self.assertEqual(list(states.state), [INSUFFICIENT] * 4)
        self.assertEqual((states.short_ma[3], states.long_ma[3]), (10.5, 11.25))
        self.assertTrue(np.isnat(states.since).all())
        self.assertFalse(states.since_start.any())
        self.assertEqual(list(states.days), [-1] * 4)
        self.assertTrue(np.isnan(states.change).all())

    def test_it_decides_with_exactly_long_plus_one_bars(self):
        states = run(V_CLOSES[:5])
        self.assertEqual(summary(states, 4), (EMPTY, "2024-01-04", True, 1))

    def test_it_leaves_undefined_averages_as_nan(self):
        states = run(V_CLOSES[:4])
        self.assertTrue(np.isnan(states.short_ma[0]))
        self.assertEqual(states.short_ma[1], 12.0)
        self.assertTrue(np.isnan(states.long_ma[:3]).all())

    def test_it_needs_twenty_three_bars_with_the_default_windows(self):
        closes = [10] * 11 + [9] * 11 + [20]
        self.assertEqual(list(run(closes[:22], DEFAULT).state), [INSUFFICIENT] * 22)
        self.assertEqual(run(closes, DEFAULT).state[-1], BUY)


class RoundingTestCase(SimpleTestCase):
    # In the market since bar 4 (10.5 > 10.25), then bar 5 closes at `x`:
    # short (11 + x) / 2, long (31 + x) / 4, so short - long = (x - 9) / 4.
    IN_THE_MARKET = [10, 10, 10, 10, 11]

    def test_it_ties_averages_that_differ_by_less_than_half_a_tick(self):
        # x = 8.9992: short 9.9996 below long 9.9998 before rounding, both
        # 10.000 after, so this is a tie and not a SELL.
        states = run([*self.IN_THE_MARKET, 8.9992])
        self.assertEqual((states.short_ma[5], states.long_ma[5]), (10.0, 10.0))
        self.assertEqual(dma_indicators(states.qfq, SMALL).direction[5], 0)
        self.assertEqual(summary(states, 5), (HOLD, "2024-01-05", True, 3))

    def test_it_crosses_when_the_rounded_averages_differ(self):
        # x = 8.996: short 9.998 below long 9.999.
        states = run([*self.IN_THE_MARKET, 8.996])
        self.assertEqual((states.short_ma[5], states.long_ma[5]), (9.998, 9.999))
        self.assertEqual(summary(states, 5), (SELL, "2024-01-08", False, 0))

    def test_it_rounds_an_exact_half_tick_up(self):
        # (1.002 + 1.002 + 1.003 + 1.003) / 4 = 1.0025 exactly.
        states = run([1.002, 1.002, 1.003, 1.003])
        self.assertEqual(states.long_ma[3], 1.003)

    def test_it_rounds_the_same_whatever_history_precedes_the_window(self):
        # 70 of these 297 four-day means are exactly on a half tick, where
        # TA-Lib's running sum lands a hair above or below depending on where
        # the series starts (plain np.round gave 18 windows a different
        # tick). Every 4-bar window must round like the full series does.
        closes = np.round(1 + 0.05 * np.sin(np.arange(300) / 3), 3)
        full = dma_indicators(closes, SMALL).long_ma
        windows = [dma_indicators(closes[t - 3 : t + 1], SMALL).long_ma[-1] for t in range(3, 300)]
        self.assertEqual(windows, list(full[3:]))


class SplitTestCase(SimpleTestCase):
    # Rising by 0.5 a day; on bar 6 a 1-for-5 split divides the raw close by
    # 5 and multiplies the adjustment factor by 5.
    PLAIN = [10, 10.5, 11, 11.5, 12, 12.5, 13, 13.5, 14, 14.5]
    SPLIT = [10, 10.5, 11, 11.5, 12, 12.5, 2.6, 2.7, 2.8, 2.9]
    SPLIT_ADJ = [1, 1, 1, 1, 1, 1, 5, 5, 5, 5]

    def test_it_gives_a_smooth_adjusted_series(self):
        states = run(self.SPLIT, adj=self.SPLIT_ADJ)
        np.testing.assert_allclose(states.qfq, np.array(self.PLAIN) / 5, rtol=0, atol=1e-12)

    def test_it_does_not_signal_on_a_split(self):
        plain = run(self.PLAIN)
        split = run(self.SPLIT, adj=self.SPLIT_ADJ)
        self.assertEqual(list(split.state), [INSUFFICIENT] * 4 + [HOLD] * 6)
        self.assertEqual(list(split.state), list(plain.state))
        self.assertEqual(as_text(split.since), as_text(plain.since))
        self.assertEqual(list(split.since_start), list(plain.since_start))
        self.assertEqual(list(split.days), list(plain.days))
        np.testing.assert_allclose(split.change, plain.change, rtol=0, atol=1e-12)
        # Prices are in post-split units: a fifth of the unsplit ones.
        np.testing.assert_allclose(split.short_ma * 5, plain.short_ma, rtol=0, atol=1e-12)
        np.testing.assert_allclose(split.long_ma * 5, plain.long_ma, rtol=0, atol=1e-12)
        self.assertEqual(summary(split, 9), (HOLD, "2024-01-04", True, 8))
        self.assertAlmostEqual(split.change[9], 14.5 / 11.5 - 1)

    def test_it_would_sell_on_the_raw_closes(self):
        # Without the factor the split looks like a crash: short 7.55, long 9.65.
        states = run(self.SPLIT)
        self.assertEqual((states.short_ma[6], states.long_ma[6]), (7.55, 9.65))
        self.assertEqual(states.state[6], SELL)

    def test_it_does_not_signal_on_a_split_day_by_day(self):
        plain = evaluate_history(DMA, SMALL, *make_series(self.PLAIN))
        split = evaluate_history(DMA, SMALL, *make_series(self.SPLIT, self.SPLIT_ADJ))
        self.assertEqual(list(split.state), list(plain.state))
        self.assertEqual(as_text(split.since), as_text(plain.since))
        self.assertEqual(list(split.days), list(plain.days))
        np.testing.assert_allclose(split.change, plain.change, rtol=0, atol=1e-12)
        # Before the split each day is priced as it was then; after it, in
        # post-split units.
        np.testing.assert_array_equal(split.long_ma[:6], plain.long_ma[:6])
        np.testing.assert_allclose(split.long_ma[6:] * 5, plain.long_ma[6:], rtol=0, atol=1e-12)
        self.assertEqual(list(split.qfq[4:8]), [12.0, 12.5, 2.6, 2.7])


class CarryForwardTestCase(SimpleTestCase):
    DIRECTION = np.array([0, 0, 1, 0, -1, 0, 0, 1], dtype=np.int8)

    def test_it_carries_the_last_direction_over_ties(self):
        regime = carry_forward(self.DIRECTION)
        self.assertEqual(list(regime), [0, 0, 1, 1, -1, -1, -1, 1])
        self.assertEqual(regime.dtype, np.int8)

    def test_it_starts_from_the_seed(self):
        self.assertEqual(list(carry_forward(self.DIRECTION, -1)), [-1, -1, 1, 1, -1, -1, -1, 1])

    def test_it_keeps_the_seed_when_every_bar_ties(self):
        self.assertEqual(list(carry_forward(np.zeros(3, dtype=np.int8), 1)), [1, 1, 1])
        self.assertEqual(list(carry_forward(np.zeros(3, dtype=np.int8))), [0, 0, 0])

    def test_it_handles_no_bars(self):
        self.assertEqual(carry_forward(np.zeros(0, dtype=np.int8), 1).size, 0)


class SeedTestCase(SimpleTestCase):
    def window(self, closes, params: Params = SMALL) -> States:
        """The last `long` bars, seeded with the full evaluation of the bar before.

        This is how the daily run extends yesterday's signal by one bar.
        """
        dates, close, adj = make_series(closes)
        before = evaluate(DMA, params, dates[:-1], close[:-1], adj[:-1])
        start = close.size - params.long
        return evaluate(
            DMA,
            params,
            dates[start:],
            close[start:],
            adj[start:],
            seed=seed_at(before, dates, close.size - 2),
            bars_before=start,
        )

    def test_it_buys_on_the_last_bar_of_a_window(self):
        states = self.window(V_CLOSES[:6])
        self.assertEqual(summary(states, -1), (BUY, "2024-01-08", False, 0))
        self.assertEqual(fields(states), fields(run(V_CLOSES[:6])))

    def test_it_sells_on_the_last_bar_of_a_window(self):
        states = self.window(V_CLOSES[:9])
        self.assertEqual(summary(states, -1), (SELL, "2024-01-11", False, 0))
        self.assertEqual(fields(states), fields(run(V_CLOSES[:9])))

    def test_it_carries_since_over_a_window_without_a_cross(self):
        states = self.window(V_CLOSES[:7])
        self.assertEqual(summary(states, -1), (HOLD, "2024-01-08", False, 1))
        self.assertAlmostEqual(states.change[-1], 13 / 12 - 1)
        self.assertEqual(fields(states), fields(run(V_CLOSES[:7])))

    def test_it_carries_since_start_over_a_window(self):
        # The window's first bars have no long average: the seed fills in.
        states = self.window(RISING_CLOSES)
        self.assertEqual(summary(states, -1), (HOLD, "2024-01-04", True, 4))
        self.assertAlmostEqual(states.change[-1], 14 / 12 - 1)
        self.assertEqual(fields(states), fields(run(RISING_CLOSES)))

    def test_it_matches_the_full_evaluation_on_every_bar(self):
        closes = np.round(3 + 0.2 * np.sin(np.arange(160) / 5) + 0.05 * np.cos(np.arange(160)), 3)
        full = evaluate_history(DMA, DEFAULT, *make_series(closes))
        self.assertGreaterEqual(list(full.state).count(BUY), 3)
        self.assertGreaterEqual(list(full.state).count(SELL), 3)
        for t in range(DEFAULT.long + 1, closes.size):
            with self.subTest(bar=t):
                states = self.window(closes[: t + 1], DEFAULT)
                expected = evaluate(DMA, DEFAULT, *make_series(closes[: t + 1]))
                self.assertEqual(fields(states), fields(expected))


class EvaluateHistoryTestCase(SimpleTestCase):
    # A wave with a dividend on bar 15 (factor up) and a merge on bar 27
    # (factor down, raw close up).
    CLOSES = np.round(3 + 0.3 * np.sin(np.arange(40) / 2.5), 3)
    ADJ = np.array([1.0] * 15 + [1.2] * 12 + [0.6] * 13)

    def assert_matches_prefixes(self, close, adj):
        dates = make_dates(close.size)
        history = evaluate_history(DMA, Params(3, 5), dates, close, adj)
        for t in range(close.size):
            with self.subTest(bar=t):
                prefix = evaluate(DMA, Params(3, 5), dates[: t + 1], close[: t + 1], adj[: t + 1])
                self.assertEqual(fields(history, t), fields(prefix))
        return history

    def test_it_equals_evaluating_each_prefix(self):
        close = self.CLOSES * np.where(self.ADJ == 0.6, 2, 1)
        history = self.assert_matches_prefixes(close, self.ADJ)
        self.assertEqual(
            set(history.state), {INSUFFICIENT, BUY, SELL, HOLD, EMPTY}, "the wave exercises all"
        )

    def test_it_equals_evaluating_each_prefix_when_a_factor_comes_back(self):
        adj = np.array([1.0] * 15 + [2.0] * 12 + [1.0] * 13)
        self.assert_matches_prefixes(self.CLOSES, adj)

    def test_it_anchors_each_bar_at_its_own_factor(self):
        close = self.CLOSES * np.where(self.ADJ == 0.6, 2, 1)
        dates = make_dates(close.size)
        history = evaluate_history(DMA, Params(3, 5), dates, close, self.ADJ)
        last_anchor = evaluate(DMA, Params(3, 5), dates, close, self.ADJ)
        # Bar 14 is priced at factor 1.0 on its own day, at 0.6 from bar 27 on.
        self.assertEqual(history.qfq[14], close[14])
        self.assertAlmostEqual(last_anchor.qfq[14], close[14] / 0.6)
        np.testing.assert_array_equal(history.qfq[27:], last_anchor.qfq[27:])

    def test_it_handles_no_bars(self):
        states = evaluate_history(DMA, SMALL, make_dates(0), np.zeros(0), np.zeros(0))
        self.assertEqual(states.state.size, 0)


class StrategyRegistryTestCase(SimpleTestCase):
    def test_it_names_the_default_strategy(self):
        self.assertEqual(STRATEGIES["dma"].code(Params(11, 22)), "dma-11-22")
        self.assertIs(STRATEGIES["dma"].indicators, dma_indicators)

    def test_it_rejects_a_short_window_not_shorter_than_the_long_one(self):
        for params in (Params(22, 11), Params(11, 11)):
            with self.subTest(params=params), self.assertRaises(ValueError):
                validate_params(params)

    def test_it_rejects_windows_that_are_too_short(self):
        for params in (Params(0, 5), Params(1, 1)):
            with self.subTest(params=params), self.assertRaises(ValueError):
                validate_params(params)

    def test_it_accepts_valid_windows(self):
        self.assertIsNone(validate_params(Params(11, 22)))
        self.assertIsNone(validate_params(Params(1, 2)))
