"""Count the Tushare calls of the daily increment, per trade date, on the loopback server.

A synthetic market is served by tests/tushare_server.py. Some of its funds are
tracked (stored as Fund rows) with their history loaded up to day N-5 and that
day's signals computed (setup, untimed); then the daily job runs day by day for
days N-4 .. N, exactly as `manage.py run_signals --date` would, and every call
the server receives is counted by api name.

Scenarios: a 1,500-fund market with 1,000 tracked funds; the same market with 10
tracked funds (the count must not depend on how many funds are tracked); a
2,500-fund market, where each day's answer is longer than Tushare's 2,000-row page.

Target (issue): at most 3 Tushare calls per trade date, whatever the number of funds.
The history length does not change the count (stored bars are never refetched), so
the default is a short history; --bars 2500 gives the same figures, only slower.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import harness
from synthetic import Market, analyze, generate_market, load_market

if TYPE_CHECKING:
    from signals.providers import TushareProvider
    from tests.tushare_server import Call, TushareServer

TARGET_CALLS = 3
APIS = ("trade_cal", "fund_daily", "fund_adj")
DATABASE = "invest_alchemy_bench_calls"


@dataclass(frozen=True)
class Scenario:
    market: int  # funds the server knows
    tracked: int  # funds stored in the database

    @property
    def label(self) -> str:
        return f"{self.market:,}-fund market, {self.tracked:,} tracked"


@dataclass
class DayCalls:
    day: date
    calls: Counter[str]
    later_pages: int  # calls with offset > 0: the 2,000-row page was full
    seconds: float
    mode: str
    stored: int
    status: str

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass
class Outcome:
    scenario: Scenario
    seed_calls: Counter[str]
    days: list[DayCalls] = field(default_factory=list)

    @property
    def worst(self) -> DayCalls:
        return max(self.days, key=lambda d: d.total)


def main(argv: Sequence[str] | None = None) -> int:
    options = harness.parser(__doc__ or "", funds=1000, bars=250)
    options.add_argument("--market", type=int, default=1500, help="funds on the server")
    options.add_argument("--big-market", type=int, default=2500, help="a market above 2,000")
    options.add_argument("--days", type=int, default=5, help="trade dates run one by one")
    options.add_argument("--sqlite", action="store_true", help="SQLite in a temp dir instead")
    args = options.parse_args(argv)
    harness.use_project()

    started = time.perf_counter()
    scenarios = [
        Scenario(max(args.market, args.funds), args.funds),
        Scenario(max(args.market, args.funds), min(10, args.funds)),
        Scenario(max(args.big_market, args.funds), args.funds),
    ]
    biggest = generate_market(
        max(s.market for s in scenarios), args.bars + args.days, seed=args.seed
    )
    database = harness.throwaway_sqlite() if args.sqlite else harness.throwaway_postgres(DATABASE)
    with database as url:
        harness.setup_django(url)
        outcomes = [run_scenario(biggest.head(s.market), s, args.days) for s in scenarios]

    report = harness.Report(
        "tushare_calls",
        f"Tushare calls per trade date, daily job over {args.days} dates "
        f"({'SQLite' if args.sqlite else 'PostgreSQL'}, {args.bars:,} stored bars per fund)",
    )
    for outcome in outcomes:
        print_days(outcome)
        add_figures(report, outcome)
    explain(report, outcomes)
    report.seconds = time.perf_counter() - started
    report.print()
    report.save()
    return 0


def run_scenario(market: Market, scenario: Scenario, days: int) -> Outcome:
    """Fresh tables, history up to day N-days stored and signalled, then the daily job."""
    from django.core.management import call_command

    from signals.services import signals_generate
    from tests.tushare_server import TushareServer

    call_command("flush", interactive=False, verbosity=0)
    stop = market.n_days - days  # days [0, stop) are stored; the job runs the rest
    load_market(market, funds=scenario.tracked, until=stop - 1)
    analyze()
    with TushareServer(market.tables()) as server:
        signals_generate(run_date=market.day(stop - 1), provider=provider_for(server))
        outcome = Outcome(scenario, Counter(c.api_name for c in server.calls))
        for index in range(stop, market.n_days):
            server.reset_calls()
            outcome.days.append(run_day(server, market.day(index)))
    return outcome


def run_day(server: TushareServer, day: date) -> DayCalls:
    from signals.services import signals_generate

    started = time.perf_counter()
    result = signals_generate(run_date=day, provider=provider_for(server))
    seconds = time.perf_counter() - started
    calls = server.calls
    assert result.run is not None
    return DayCalls(
        day=day,
        calls=Counter({api: 0 for api in APIS}) + Counter(c.api_name for c in calls),
        later_pages=sum(1 for c in calls if _offset(c) > 0),
        seconds=seconds,
        mode=result.sync.mode,
        stored=result.stored,
        status=str(result.run.status),
    )


def provider_for(server: TushareServer) -> TushareProvider:
    """A fresh provider per run, like a fresh `manage.py run_signals` process."""
    from signals.providers import TushareProvider

    return TushareProvider(server.token, url=server.url, retry_wait=0)


def _offset(call: Call) -> int:
    try:
        return int(call.params.get("offset") or 0)
    except (TypeError, ValueError):
        return 0


def print_days(outcome: Outcome) -> None:
    print(f"\n{outcome.scenario.label}")
    seed = ", ".join(f"{api} {n}" for api, n in sorted(outcome.seed_calls.items()))
    print(f"  setup run for day N-{len(outcome.days)} (untimed): {seed}")
    heads = ["trade date", *APIS, "total", "pages>1", "seconds", "sync", "stored", "status"]
    rows = [
        [
            str(d.day),
            *(str(d.calls[api]) for api in APIS),
            str(d.total),
            str(d.later_pages),
            f"{d.seconds:.2f}",
            d.mode,
            f"{d.stored:,}",
            d.status,
        ]
        for d in outcome.days
    ]
    harness.print_rows(heads, rows)


def add_figures(report: harness.Report, outcome: Outcome) -> None:
    worst = outcome.worst
    breakdown = " + ".join(f"{api} {worst.calls[api]}" for api in APIS)
    report.add(
        f"{outcome.scenario.label}: calls per trade date (max)",
        worst.total,
        "calls",
        limit=TARGET_CALLS,
    )
    report.add("  by api", breakdown)
    report.add("  of which later pages (offset > 0)", worst.later_pages, "calls")
    expected = outcome.scenario.tracked
    stored = min(d.stored for d in outcome.days)
    report.add("  signals stored per date (min)", stored, "signals", limit=expected, op="==")


def explain(report: harness.Report, outcomes: Sequence[Outcome]) -> None:
    by_market: dict[int, list[Outcome]] = {}
    for outcome in outcomes:
        by_market.setdefault(outcome.scenario.market, []).append(outcome)
    for market, group in sorted(by_market.items()):
        if len(group) < 2:
            continue
        tracked = " and ".join(f"{o.scenario.tracked:,}" for o in group)
        totals = sorted({o.worst.total for o in group})
        verdict = "the same" if len(totals) == 1 else "NOT the same"
        report.notes.append(
            f"{market:,}-fund market: {' / '.join(map(str, totals))} calls per date with "
            f"{tracked} tracked funds: {verdict} whatever the number of funds"
        )
    for outcome in outcomes:
        worst = outcome.worst
        if worst.total > TARGET_CALLS and worst.later_pages:
            report.notes.append(
                f"{outcome.scenario.label}: {worst.total} calls per date because "
                f"fund_daily and fund_adj by trade_date answer one row per fund of the "
                f"whole market ({outcome.scenario.market:,} rows) and Tushare caps an answer "
                f"at 2,000 rows, so the provider pages (offset=2000): "
                f"{worst.later_pages} extra call(s) per date. The count grows with the "
                "market, not with the tracked funds."
            )


if __name__ == "__main__":
    sys.exit(main())
