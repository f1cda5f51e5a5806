"""The website under load: gunicorn on loopback, wrk as the client.

Setup (reported, not a target): a throwaway PostgreSQL database with N funds
x M days of bars (the synthetic market), split over two fund lists, and every
day's signals (`run_signals --backfill-from`). Then gunicorn serves the project
(DEBUG off) and wrk loads, in turn, the cheapest response the server gives
(`/robots.txt`), the home page and a fund page, after one warming request each.

Targets (issue 4), 1,000 funds x 10 years: home >= 500 req/s, fund page
>= 150 req/s, p99 <= 100 ms, no errors, home >= half the minimal view's
throughput, a fund page <= 300 KB transferred in all. Needs `wrk`
(`apt-get install wrk`).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import harness
from harness import Report
from synthetic import analyze, generate_market, load_market

DURATION, CONNECTIONS, WORKERS = 10, 16, 2
COLD_FUNDS = 50  # distinct fund pages opened once each, after the warm runs


@dataclass
class Load:
    rate: float  # requests per second
    p99_ms: float
    errors: int


def main() -> int:
    args = harness.parser(__doc__ or "", funds=1000, bars=2500).parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    report = Report("web", f"Website under wrk: {args.funds:,} funds x {args.bars:,} days")
    with harness.throwaway_postgres("invest_alchemy_bench_web") as url:
        harness.setup_django(url)
        env = seed(report, args.funds, args.bars, args.seed, url)
        serve_and_load(report, env)
    report.print()
    report.save()
    return 0


def seed(report: Report, funds: int, bars: int, seed: int, url: str) -> dict[str, str]:
    from tests.tushare_server import TushareServer

    market = generate_market(funds, bars, seed=seed)
    with harness.stopwatch() as t:
        load_market(market)
        make_lists()
    report.add("setup: load bars and lists", t[0], "s")
    with TushareServer(market.tables(stop=bars)) as server:
        env = harness.bench_environment(
            url, SIGNALS_PROVIDER="tushare", TUSHARE_TOKEN=server.token, TUSHARE_API_URL=server.url
        )
        first, last = market.day(0).isoformat(), market.day(bars - 1).isoformat()
        with harness.stopwatch() as t:
            child = harness.run_child(
                harness.manage("run_signals", "--backfill-from", first, "--date", last), env
            )
        if not child.ok:
            raise SystemExit(child.failure())
    report.add("setup: backfill every day's signals", t[0], "s")
    analyze(("signals_signal", "signals_signalrun"))
    return {**env, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "0"}


def make_lists() -> None:
    from signals.models import Fund, FundList, FundListItem

    funds = list(Fund.objects.order_by("ts_code"))
    half = len(funds) // 2
    for position, (slug, members) in enumerate(
        (("long-etf", funds[:half]), ("other-etf", funds[half:]))
    ):
        fund_list = FundList.objects.create(
            slug=slug, name=slug.replace("-", " ").title(), position=position
        )
        FundListItem.objects.bulk_create(
            FundListItem(fund_list=fund_list, fund=f, position=n) for n, f in enumerate(members)
        )


def serve_and_load(report: Report, env: dict[str, str]) -> None:
    from signals.models import Fund

    # As in production (the Dockerfile): hashed, compressed static files.
    harness.run_child(harness.manage("collectstatic", "--noinput", "-v0"), env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    code = Fund.objects.order_by("ts_code").values_list("ts_code", flat=True).first()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "invest_alchemy.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=harness.ROOT, env=env,
    )  # fmt: skip
    try:
        wait_until_up(base + "/robots.txt")
        minimal = wrk(base + "/robots.txt")
        report.add("minimal view (/robots.txt)", minimal.rate, "req/s")
        for label, path, target in (
            ("home page (/)", "/", 500),
            (f"fund page ({code})", f"/funds/{code}/", 150),
        ):
            urllib.request.urlopen(base + path).read()  # build the cached parts once
            load = wrk(base + path)
            report.add(f"{label}: req/s (target >= {target})", load.rate, "req/s")
            report.add("    at least the target", "PASS" if load.rate >= target else "MISS")
            report.add("    p99 latency", load.p99_ms, "ms", limit=100)
            report.add("    errors (non-2xx, socket)", load.errors, "", limit=0, op="==")
            if path == "/":
                share = load.rate / minimal.rate
                report.add("    share of the minimal view's throughput (target >= 0.5)", share, "")
                report.add("    at least half", "PASS" if share >= 0.5 else "MISS")
        report.add(
            "fund page weight (HTML + CSS + icon)",
            page_weight(base, f"/funds/{code}/"),
            "KB",
            limit=300,
        )
        cold = first_views(base, COLD_FUNDS)
        report.add(f"fund page, first view after a run ({COLD_FUNDS} funds): median", cold[0], "ms")
        report.add("    slowest", cold[1], "ms")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def first_views(base: str, count: int) -> tuple[float, float]:
    """Milliseconds to build fund pages nobody has opened since the run: each
    evaluates the fund's whole history and draws its chart, then is cached."""
    from signals.models import Fund

    codes = Fund.objects.order_by("-ts_code").values_list("ts_code", flat=True)[:count]
    times = []
    for code in codes:
        started = time.perf_counter()
        urllib.request.urlopen(f"{base}/funds/{code}/").read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return round(times[len(times) // 2], 1), round(times[-1], 1)


def wrk(url: str) -> Load:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return Load(rate, float(p99.group(1)) * scale, errors)


def page_weight(base: str, path: str) -> float:
    html = urllib.request.urlopen(base + path).read()
    assets = re.findall(rb'(?:href|src)="(/static/[^"]+)"', html)
    total = len(html) + sum(len(urllib.request.urlopen(base + a.decode()).read()) for a in assets)
    return total / 1000


def wait_until_up(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer at {url}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
