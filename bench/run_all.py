"""Run every benchmark in turn and print one summary table: what `make bench` calls.

Each script runs in its own process (so one's memory and Django set-up cannot
affect another's figures) and saves its figures to bench/out/<name>.json, which
this reads back. --funds and --bars are passed on when given; otherwise each
script uses its own defaults, the issue's sizes.

Exit status: 1 if a script failed; with --strict, also if a target was missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

SCRIPTS = [
    "strategy_kernel", "tushare_calls", "run_signals_pg", "digest_send", "web", "memory"
]  # fmt: skip
# Scripts not sized by funds and bars (subscribers; the bundled sample): no --funds/--bars.
SUBSCRIBER_SCRIPTS = {"digest_send", "memory"}
BENCH = Path(__file__).resolve().parent


@dataclass
class Outcome:
    name: str
    returncode: int
    seconds: float
    result: dict[str, Any] | None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    outcomes = [
        run(name, [] if name in SUBSCRIBER_SCRIPTS else passed_on(args))
        for name in args.only or SCRIPTS
    ]
    total = time.perf_counter() - started
    summarise(outcomes, total)
    failed = any(o.returncode != 0 or o.result is None for o in outcomes)
    missed = any(f["verdict"] == "MISS" for o in outcomes if o.result for f in o.result["figures"])
    return 1 if failed or (args.strict and missed) else 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--funds", type=int, help="passed on to every script")
    p.add_argument("--bars", type=int, help="passed on to every script")
    p.add_argument("--only", action="append", choices=SCRIPTS, help="run only this (repeatable)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return p.parse_args(argv)


def passed_on(args: argparse.Namespace) -> list[str]:
    options = []
    for name in ("funds", "bars"):
        value = getattr(args, name)
        if value is not None:
            options += [f"--{name}", str(value)]
    return options


def run(name: str, options: list[str]) -> Outcome:
    result_file = harness.OUT / f"{name}.json"
    result_file.unlink(missing_ok=True)
    print(f"\n>>> {name} {' '.join(options)}".rstrip(), flush=True)
    started = time.perf_counter()
    returncode = subprocess.call([sys.executable, str(BENCH / f"{name}.py"), *options])
    seconds = time.perf_counter() - started
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    return Outcome(name, returncode, seconds, result)


def summarise(outcomes: Sequence[Outcome], total: float) -> None:
    title = "Summary: the issue's targets"
    print(f"\n{title}\n{'=' * len(title)}")
    rows = []
    for outcome in outcomes:
        if outcome.result is None:
            rows.append([outcome.name, f"FAILED (exit {outcome.returncode})", "", "", "ERROR"])
            continue
        for figure in outcome.result["figures"]:
            if figure["target"]:
                label = figure["label"].rstrip()
                rows.append(
                    [outcome.name, label, figure["shown"], figure["target"], figure["verdict"]]
                )
    harness.print_rows(["script", "figure", "value", "target", ""], rows)
    print()
    times = [[o.name, f"{o.seconds:.1f} s"] for o in outcomes]
    harness.print_rows(["script", "wall time"], [*times, ["total", f"{total:.1f} s"]])
    missed = [row for row in rows if row[-1] in {"MISS", "ERROR"}]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} targets met.")


if __name__ == "__main__":
    sys.exit(main())
