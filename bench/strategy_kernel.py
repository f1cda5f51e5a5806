"""Time the strategy kernel alone: every day's state of every fund, from numpy arrays.

`evaluate_history` is what `--backfill-from` runs per fund: each day's state as the
run on that day would have computed it, its prices anchored at that day's own
adjustment factor (so a fund with k distinct factors needs up to k regime passes).
Plain `evaluate` (one pass anchored at the last bar) is what a full recomputation of
one run date costs. No database and no Django: the arrays come from the synthetic market.

Target (issue): every day's state for 1,000 funds x 2,500 bars in <= 0.5 s.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import harness
import numpy as np
from synthetic import Market, generate_market

TARGET_SECONDS = 0.5
REPEATS = 3
Series = tuple[np.ndarray, np.ndarray, np.ndarray]
Kernel = Callable[..., Any]


def main(argv: Sequence[str] | None = None) -> int:
    options = harness.parser(__doc__ or "", funds=1000, bars=2500)
    options.add_argument("--repeats", type=int, default=REPEATS, help="best of this many runs")
    options.add_argument("--profile", action="store_true", help="cProfile one history pass")
    args = options.parse_args(argv)
    harness.use_project()
    from signals.strategy import evaluate, evaluate_history

    started = time.perf_counter()
    market = generate_market(args.funds, args.bars, seed=args.seed)
    series = [market.series(i) for i in range(market.n_funds)]
    history = best_of(args.repeats, lambda: run_kernel(evaluate_history, series))
    plain = best_of(args.repeats, lambda: run_kernel(evaluate, series))
    agree = last_day_agreement(series)

    report = harness.Report(
        "strategy_kernel",
        f"Strategy kernel, dma-11-22: {args.funds:,} funds x {args.bars:,} bars "
        f"(arrays in memory, best of {args.repeats})",
    )
    add_figures(report, market, history, plain, agree)
    if args.profile:
        report.notes.append("profile of one evaluate_history pass over every fund:")
        report.notes.append(profile(lambda: run_kernel(evaluate_history, series)))
    report.seconds = time.perf_counter() - started
    report.print()
    report.save()
    return 0


def run_kernel(kernel: Kernel, series: Sequence[Series]) -> None:
    from signals.strategy import STRATEGIES, Params

    strategy, params = STRATEGIES["dma"], Params(11, 22)
    for dates, close, adj in series:
        kernel(strategy, params, dates, close, adj)


def best_of(repeats: int, work: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def last_day_agreement(series: Sequence[Series]) -> int:
    """Funds whose last-day state is the same both ways (the definitions must agree)."""
    from signals.strategy import STRATEGIES, Params, evaluate, evaluate_history

    strategy, params = STRATEGIES["dma"], Params(11, 22)
    same = 0
    for dates, close, adj in series:
        a = evaluate_history(strategy, params, dates, close, adj)
        b = evaluate(strategy, params, dates, close, adj)
        same += bool(a.state[-1] == b.state[-1] and a.days[-1] == b.days[-1])
    return same


def add_figures(
    report: harness.Report, market: Market, history: float, plain: float, agree: int
) -> None:
    funds, bars = market.n_funds, market.n_days
    anchors = int(market.anchors().sum())
    report.add(
        "evaluate_history, all funds (every day's state)", history, "s", limit=TARGET_SECONDS
    )
    report.add("  per fund", history / funds * 1e3, "ms")
    report.add("  per distinct adjustment factor", history / anchors * 1e6, "µs")
    report.add("  distinct adjustment factors per fund, mean", anchors / funds)
    report.add("  bars per second", funds * bars / history, "bars/s")
    report.add("evaluate, all funds (one anchor)", plain, "s")
    report.add("  per fund", plain / funds * 1e3, "ms")
    report.add("last-day state agrees (history vs evaluate)", agree, "funds", limit=funds, op="==")
    if history > TARGET_SECONDS:
        needed = history / TARGET_SECONDS
        report.notes.append(
            f"evaluate_history misses the {TARGET_SECONDS} s target by x{needed:.1f}: see "
            "--profile for where the time goes"
        )


def profile(work: Callable[[], None], limit: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(limit)
    return text.getvalue()


if __name__ == "__main__":
    sys.exit(main())
