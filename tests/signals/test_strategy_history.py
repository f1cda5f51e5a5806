"""evaluate_history against one evaluate per day, on series full of near ties.

The history path shares regime passes between adjustment anchors and skips
the ones that cannot change an anchor's own days; these seeded random series
(prices on a coarse grid so averages often tie, factors that move up and
down often) make sure it still gives exactly what each day's run would.
"""

import numpy as np
from django.test import SimpleTestCase

from signals.strategy import (
    STRATEGIES,
    Params,
    Strategy,
    dma_indicators,
    evaluate,
    evaluate_history,
)

FIELDS = ["state", "short_ma", "long_ma", "since", "since_start", "days"]


def random_fund(rng: np.random.Generator, n: int):
    steps = rng.choice([-0.002, 0.0, 0.0, 0.002], size=n)
    close = np.round(1.5 + np.cumsum(steps), 3)
    factors = np.ones(n)
    for day in rng.choice(np.arange(30, n), size=rng.integers(2, 12), replace=False):
        factors[day:] *= rng.choice([1.001, 1.003, 1.01, 1.05, 0.5, 2.0])
    adj = np.round(factors, 3)
    dates = np.datetime64("2020-01-01") + np.arange(n)
    return dates, close * (adj[0] / adj), adj  # raw close moves with the factor


class HistoryAgreesWithEachDayTestCase(SimpleTestCase):
    def test_it_matches_a_fresh_evaluation_on_every_day(self):
        rng = np.random.default_rng(20261204)
        strategy = STRATEGIES["dma"]
        compared = 0
        for params in (Params(3, 7), Params(11, 22)):
            for _fund in range(25):
                dates, close, adj = random_fund(rng, 220)
                history = evaluate_history(strategy, params, dates, close, adj)
                for day in range(dates.size):
                    fresh = evaluate(
                        strategy, params, dates[: day + 1], close[: day + 1], adj[: day + 1]
                    )
                    for field in FIELDS:
                        expected, actual = getattr(fresh, field)[-1], getattr(history, field)[day]
                        self.assertTrue(
                            expected == actual or (expected != expected and actual != actual),
                            f"{params} day {day} {field}: {actual} != {expected}",
                        )
                    np.testing.assert_allclose(history.change[day], fresh.change[-1], rtol=1e-12)
                    compared += 1
        self.assertEqual(compared, 2 * 25 * 220)


class GenericStrategyHistoryTestCase(SimpleTestCase):
    """A strategy without rescalable lines gets one full pass per anchor; same answers."""

    def test_it_matches_a_fresh_evaluation_on_every_day(self):
        plain = Strategy("plain", "DMA without rescaling", dma_indicators)
        rng = np.random.default_rng(7)
        for _fund in range(8):
            dates, close, adj = random_fund(rng, 150)
            history = evaluate_history(plain, Params(3, 7), dates, close, adj)
            rescaled = evaluate_history(STRATEGIES["dma"], Params(3, 7), dates, close, adj)
            for day in range(dates.size):
                fresh = evaluate(
                    plain, Params(3, 7), dates[: day + 1], close[: day + 1], adj[: day + 1]
                )
                self.assertEqual(history.state[day], fresh.state[-1], day)
                self.assertEqual(str(history.since[day]), str(fresh.since[-1]), day)
            np.testing.assert_array_equal(history.state, rescaled.state)
