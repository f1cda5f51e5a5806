"""Time `manage.py run_signals` end to end on PostgreSQL, in child processes.

Setup (not counted in the targets, but reported): a throwaway database, migrated;
a synthetic market of N funds x (M + 1) bars; the first M bars of every fund
COPYed into PriceBar with Fund.synced_until set, as if already synced; a loopback
Tushare server serving the calendar and those bars.

(a) `run_signals --backfill-from <day 1> --date <day M>`: every day's signal of every
    fund (N x M rows). No bar is fetched: the bars are stored already.
(b) Day M+1's bars are added on the server, then `run_signals --date <day M+1>`:
    the daily increment with ten years of history and yesterday's signals stored.

Each child is timed from spawn to exit (Django start-up included: measured apart
with `manage.py check`) and its own peak RSS is read from wait4's rusage.

Targets (issue), 1,000 funds x 2,500 bars: (b) <= 5 s and <= 300 MB peak RSS;
(a) stores 2.5 M signals in <= 60 s.
"""

from __future__ import annotations

import io
import pstats
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import harness
import pandas as pd
from synthetic import Market, analyze, generate_market, load_market

if TYPE_CHECKING:
    from tests.tushare_server import TushareServer

DATABASE = "invest_alchemy_bench_pg"
DAILY_SECONDS, DAILY_RSS_MB, BACKFILL_SECONDS, DAILY_CALLS = 5.0, 300.0, 60.0, 3


def main(argv: Sequence[str] | None = None) -> int:
    options = harness.parser(__doc__ or "", funds=1000, bars=2500)
    options.add_argument(
        "--skip-checks",
        action="store_true",
        help="pass --skip-checks to run_signals (when a system check fails for reasons "
        "unrelated to the job)",
    )
    options.add_argument(
        "--profile",
        action="store_true",
        help="run the jobs under cProfile and print their hotspots (times are then inflated)",
    )
    args = options.parse_args(argv)
    harness.use_project()
    started = time.perf_counter()
    report = harness.Report(
        "run_signals_pg",
        f"manage.py run_signals on PostgreSQL: {args.funds:,} funds x {args.bars:,} stored bars",
    )
    with harness.throwaway_postgres(DATABASE) as url:
        with harness.stopwatch() as migrate:
            harness.setup_django(url)
        with harness.stopwatch() as generate:
            market = generate_market(args.funds, args.bars + 1, seed=args.seed)
        load = load_market(market, until=args.bars - 1)
        with harness.stopwatch() as analysing:
            analyze()
        report.add("setup: migrate the throwaway database", migrate[0], "s")
        report.add("setup: generate the market", generate[0], "s")
        report.add(f"setup: COPY {load.bars:,} bars + {load.funds:,} funds", load.seconds, "s")
        report.add("setup: ANALYZE", analysing[0], "s")
        extra = ["--skip-checks"] if args.skip_checks else []
        Bench(report, market, args.bars, extra, profile=args.profile).run(url)
    report.seconds = time.perf_counter() - started
    report.print()
    report.save()
    return 0


@dataclass
class Bench:
    report: harness.Report
    market: Market
    bars: int  # stored bars per fund; the new day is at this index
    extra: list[str]  # options added to every run_signals command
    profile: bool = False  # run the jobs under cProfile (slower: the times are then not targets)
    startup: float = 0.0

    def run(self, url: str) -> None:
        from tests.tushare_server import TushareServer

        with harness.stopwatch() as serving:
            tables = self.market.tables(stop=self.bars)
        self.report.add("setup: build the server's tables", serving[0], "s")
        with TushareServer(tables) as server:
            env = harness.bench_environment(
                url,
                SIGNALS_PROVIDER="tushare",
                TUSHARE_TOKEN=server.token,
                TUSHARE_API_URL=server.url,
            )
            self.measure_startup(env)
            if not self.backfill(server, env):
                return
            analyze(("signals_signal", "signals_signalrun"))  # as autovacuum would
            self.add_day(server)
            self.daily(server, env)

    def run_signals(self, env: dict[str, str], step: str, *options: str) -> harness.ChildRun:
        command = harness.manage("run_signals", *options, *self.extra)
        if self.profile:
            profile = harness.OUT / f"run_signals_{step}.prof"
            harness.OUT.mkdir(parents=True, exist_ok=True)
            command[1:1] = ["-m", "cProfile", "-o", str(profile)]
        child = harness.run_child(command, env)
        if child.ok and self.profile:
            self.report.notes.append(f"cProfile of ({step}), {profile}:\n{top_functions(profile)}")
        if not child.ok:
            self.report.notes.append(child.failure())
            if "SystemCheckError" in child.stderr + child.stdout:
                self.report.notes.append(
                    "a Django system check failed before the job ran; the project's settings "
                    "need fixing (or rerun with --skip-checks to time the job anyway)"
                )
        return child

    def measure_startup(self, env: dict[str, str]) -> None:
        """Django start-up alone, so the job's own cost can be read off the totals."""
        report = self.report
        check = harness.run_child(harness.manage("check", "--fail-level", "CRITICAL"), env)
        help_ = harness.run_child(harness.manage("run_signals", "--help"), env)
        report.add("Django start-up: manage.py check", check.seconds, "s")
        report.add("  peak RSS", check.max_rss_mb, "MB")
        report.add("start-up + command imports: run_signals --help", help_.seconds, "s")
        report.add("  peak RSS", help_.max_rss_mb, "MB")
        self.startup = help_.seconds

    def backfill(self, server: TushareServer, env: dict[str, str]) -> bool:
        report, market = self.report, self.market
        first, last = market.day(0), market.day(self.bars - 1)
        server.reset_calls()
        child = self.run_signals(
            env, "a", "--backfill-from", first.isoformat(), "--date", last.isoformat()
        )
        label = f"(a) run_signals --backfill-from {first} --date {last}"
        if not child.ok:
            report.add(label, f"FAILED (exit {child.returncode}), see below")
            return False
        stored = count_signals()
        report.add(label, child.seconds, "s", limit=BACKFILL_SECONDS)
        report.add("    without start-up", child.seconds - self.startup, "s")
        report.add("    signals stored", stored, "rows", limit=market.n_funds * self.bars, op="==")
        report.add("    rows per second", stored / child.seconds, "rows/s")
        report.add("    peak RSS", child.max_rss_mb, "MB")
        report.add("    Tushare calls", describe_calls(server))
        report.add("    run status", last_run_status(last))
        return True

    def add_day(self, server: TushareServer) -> None:
        """Publish the new day's bars on the server, as Tushare does after the close."""
        day = self.bars
        for name, frame in (
            ("fund_daily", self.market.fund_daily(day, day + 1)),
            ("fund_adj", self.market.fund_adj(day, day + 1)),
        ):
            server.tables[name] = pd.concat([server.tables[name], frame], ignore_index=True)

    def daily(self, server: TushareServer, env: dict[str, str]) -> None:
        report, day = self.report, self.market.day(self.bars)
        server.reset_calls()
        reads_before = pricebar_reads()
        child = self.run_signals(env, "b", "--date", day.isoformat())
        label = f"(b) run_signals --date {day} (one new day)"
        if not child.ok:
            report.add(label, f"FAILED (exit {child.returncode}), see below")
            return
        bars_read = pricebar_reads() - reads_before
        report.add(label, child.seconds, "s", limit=DAILY_SECONDS)
        report.add("    without start-up", child.seconds - self.startup, "s")
        report.add("    peak RSS", child.max_rss_mb, "MB", limit=DAILY_RSS_MB)
        report.add("    Tushare calls", len(server.calls), "calls", limit=DAILY_CALLS)
        report.add("      by api", describe_calls(server))
        funds = self.market.n_funds
        report.add(
            "    signals stored for the day", count_signals(day), "rows", limit=funds, op="=="
        )
        report.add("    PriceBar rows read (pg_stat)", bars_read, "rows")
        report.add("    run status", last_run_status(day))


def top_functions(path: Path, limit: int = 25) -> str:
    """The functions with the most time of their own, then the project's by cumulative time."""
    text = io.StringIO()
    stats = pstats.Stats(str(path), stream=text)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(r"/(signals|django/db/models)/", limit)
    return "\n".join(
        line
        for line in text.getvalue().splitlines()
        if line.strip() and "function calls" not in line
    )


def describe_calls(server: TushareServer) -> str:
    counts = Counter(c.api_name for c in server.calls)
    pages = sum(1 for c in server.calls if int(c.params.get("offset") or 0) > 0)
    text = ", ".join(f"{api} {n}" for api, n in sorted(counts.items())) or "none"
    return f"{text} ({pages} later pages)" if pages else text


def count_signals(day: date | None = None) -> int:
    from signals.models import Signal

    rows = Signal.objects.all() if day is None else Signal.objects.filter(run_date=day)
    return rows.count()


def last_run_status(day: date) -> str:
    from signals.models import SignalRun

    run = SignalRun.objects.filter(run_date=day).order_by("-started_at").first()
    if run is None:
        return "no run recorded"
    return f"{run.status}, {run.funds:,} funds, {run.error_count} errors"


def pricebar_reads() -> int:
    """Rows of signals_pricebar read by scans so far, once the last backend has reported."""
    from django.db import connection

    sql = (
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
        "FROM pg_stat_user_tables WHERE relname = 'signals_pricebar'"
    )
    previous = -1
    with connection.cursor() as cursor:
        for _ in range(20):  # a finished backend flushes its counters as it exits
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(sql)
            value = int(cursor.fetchone()[0])
            if value == previous:
                return value
            previous = value
            time.sleep(0.25)
    return previous


if __name__ == "__main__":
    sys.exit(main())
