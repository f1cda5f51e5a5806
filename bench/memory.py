"""Resident memory of the deployment: web (gunicorn), worker (qcluster) and PostgreSQL.

Setup, as `make run` does it: a throwaway database with the bundled sample
(`migrate`, `createcachetable`, `load_sample`, which computes the signals), then
`collectstatic` (as the Dockerfile) and `setup_schedules` (as the worker's start).
Then the two services as docker/entrypoint.sh starts them: gunicorn with the
arguments of the script's `exec gunicorn` line (today its config file,
docker/gunicorn.conf.py: GUNICORN_WORKERS, GUNICORN_THREADS and the rest from the
environment, else their defaults), bound to loopback instead of 0.0.0.0, and
`manage.py qcluster` (Q_WORKERS). They settle and are measured
("idle"); the worker runs the daily job once (`signals.tasks.daily_signals` for the
sample's last day, what the schedule runs); the main pages (home, history, fund
list, every fund page, the API, the feed) are requested --rounds times in both
languages, as many at once as gunicorn has threads; after --settle seconds they are
measured again ("after load").

Each process tree is read from /proc/<pid>/smaps_rollup: RSS, PSS (each shared
page divided among the processes that map it: the figure that adds up across
processes) and USS (private pages only: what stopping the process would free).
PSS is the figure the totals and the conclusion use. MB are 10^6 bytes.

PostgreSQL is measured two ways (--postgres):
- shared: the server of BENCH_ADMIN_DATABASE_URL (by default 127.0.0.1:5432), every
  process of it: it serves this machine's other databases too, so its figure is the
  whole server's; the backends serving this database are shown apart.
- private: a cluster of its own (initdb, postgresql.conf as shipped: the default
  configuration, shared_buffers 128 MB, max_connections 100) on a free loopback
  port, serving only this run: the honest footprint of the compose file's `db`.
Reading the shared server's processes needs root (or this script running as the
server's user); the private cluster needs PostgreSQL's server binaries (initdb,
pg_ctl; PG_BINDIR names their folder), and as root it runs them as `postgres`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import Report
from web import free_port, wait_until_up

RUN_DATE = "2023-06-08"  # the bundled sample's last day
SECRET_KEY = "bench-only-not-a-secret-" + "0123456789abcdef" * 2  # settings want >= 50
ENTRYPOINT = harness.ROOT / "docker" / "entrypoint.sh"
VPS_MIB = (512, 1024, 2048, 4096)
MIB = 1024 * 1024


# --- Memory of processes ----------------------------------------------------------


@dataclass
class Usage:
    """Memory of a set of processes, in bytes."""

    processes: int = 0
    rss: int = 0
    pss: int = 0
    uss: int = 0
    unreadable: int = 0  # processes whose smaps_rollup we may not read

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.processes + other.processes,
            self.rss + other.rss,
            self.pss + other.pss,
            self.uss + other.uss,
            self.unreadable + other.unreadable,
        )


def parents() -> dict[int, int]:
    """pid -> parent pid, for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def usage(pids: list[int]) -> Usage:
    total = Usage()
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except PermissionError:
            total.unreadable += 1
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        kib = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
        total += Usage(
            1,
            kib["Rss"] * 1024,
            kib["Pss"] * 1024,
            (kib["Private_Clean"] + kib["Private_Dirty"]) * 1024,
        )
    return total


def levels(root: int) -> list[list[int]]:
    """The processes of `root`'s tree, level by level: [[root], [its children], ...]."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    found, level = [], [root]
    while level:
        found.append(sorted(level))
        level = [c for pid in level for c in children.get(pid, [])]
    return found


def breakdown(root: int, names: tuple[str, ...]) -> str:
    """Each process's PSS, level by level: "master 20.1 > workers 93.0, 92.9"."""
    parts = []
    for name, level in zip(names, levels(root), strict=False):
        sizes = ", ".join(mb(usage([pid]).pss) for pid in level)
        parts.append(f"{name} {sizes}")
    return " > ".join(parts)


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


# --- PostgreSQL -----------------------------------------------------------------------


@dataclass
class Postgres:
    label: str
    admin_url: str
    postmaster: int
    version: str
    settings: dict[str, str] = field(default_factory=dict)


def describe(label: str, admin_url: str, postmaster: int | None = None) -> Postgres:
    """The server's version and memory settings; its postmaster is the parent of our backend."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        names = ("shared_buffers", "max_connections", "work_mem", "maintenance_work_mem")
        settings = {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]
        if postmaster is None:
            backend = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
            postmaster = parents()[backend]
    return Postgres(label, admin_url, postmaster, version, settings)


def backends_of(admin_url: str, database: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
        return [int(r[0]) for r in rows]


def database_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def server_bindir() -> Path | None:
    """The newest installed PostgreSQL's server binaries (initdb, pg_ctl)."""
    for candidate in (os.environ.get("PG_BINDIR"), _pg_config_bindir()):
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def _pg_config_bindir() -> str | None:
    if shutil.which("pg_config") is None:
        return None
    return subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()


@contextmanager
def private_cluster(bindir: Path) -> Iterator[Postgres]:
    """initdb a cluster in a temporary folder, start it on a free port, stop and delete it."""
    folder = Path(tempfile.mkdtemp(prefix="invest-alchemy-bench-memory-pg-"))
    data, port = folder / "data", free_port()
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    pg_ctl = [*as_owner, str(bindir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        subprocess.run(
            [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True, cwd=folder,
        )  # fmt: skip
        subprocess.run(
            [*pg_ctl, "-l", str(folder / "server.log"), "-w", "-o", f"-p {port} -k {folder}",
             "start"],
            check=True, capture_output=True, cwd=folder,
        )  # fmt: skip
        started = True
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        admin_url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        yield describe("private cluster", admin_url, postmaster)
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


# --- The project's processes -----------------------------------------------------------


def gunicorn_command(port: int, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """docker/entrypoint.sh's `exec gunicorn …` line, ${VAR:-default} expanded from `env`,
    bound to 127.0.0.1:`port` instead; and the settings gunicorn takes from it."""
    text = ENTRYPOINT.read_text().replace("\\\n", " ")
    line = re.search(r"^\s*exec gunicorn (.+)$", text, re.M)
    if line is None:
        raise SystemExit(f"no `exec gunicorn` line in {ENTRYPOINT}: update bench/memory.py")
    args: list[str] = []
    words = iter(shlex.split(line.group(1), comments=True))
    for word in words:
        if word in ("-b", "--bind"):
            next(words)
        elif not word.startswith("--bind="):
            args.append(re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1], m[2]), word))
    gunicorn = Path(sys.executable).parent / "gunicorn"
    program = [str(gunicorn)] if gunicorn.is_file() else [sys.executable, "-m", "gunicorn"]
    command = [*program, "--bind", f"127.0.0.1:{port}", *args]
    printed = subprocess.run(
        [*command, "--print-config"], cwd=harness.ROOT, env=env, capture_output=True, text=True
    )
    config = dict(re.findall(r"^(\w+)\s+= (.*)$", printed.stdout, re.M))
    if printed.returncode != 0 or "workers" not in config:
        raise SystemExit(f"{' '.join(command)} --print-config failed:\n{printed.stderr}")
    return command, config


def environment(url: str, folder: Path) -> dict[str, str]:
    """The services' environment: production settings (DEBUG off) on `url`, the bundled
    sample as the provider, emails to files, the static files collected into `folder`
    (a settings module there changes only STATIC_ROOT, so nothing is written into the
    project, where WhiteNoise would serve it to the tests)."""
    (folder / "bench_memory_settings.py").write_text(
        "from invest_alchemy.settings import *  # noqa: F403\n"
        f"STATIC_ROOT = {str(folder / 'static')!r}\n"
    )
    env = harness.bench_environment(url)
    env.update(
        SECRET_KEY=SECRET_KEY,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="bench_memory_settings",
        PYTHONPATH=os.pathsep.join([str(folder), str(harness.ROOT)]),
        SIGNALS_PROVIDER="csv",
        TUSHARE_TOKEN="",
        ANYMAIL_PROVIDER="",
        EMAIL_URL=f"filemail://{folder / 'mail'}",
        REDIS_URL="",  # the compose file has no Redis: database cache and broker
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    child = harness.run_child(harness.manage(*args), env)
    if not child.ok:
        raise SystemExit(child.failure())
    return child.stdout


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    seen: set[tuple[int, str]] = field(default_factory=set)  # (pid, start time) ever in tree

    def pids(self) -> list[int]:
        pids = tree(self.process.pid) if self.process.poll() is None else []
        for pid in pids:
            started = _start_time(pid)
            if started:
                self.seen.add((pid, started))
        return pids

    def stop(self) -> None:
        self.pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # Children left behind (only ours: same pid and start time as seen in our tree).
        for pid, started in self.seen:
            if pid != self.process.pid and _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n    ".join(text.strip().splitlines()[-lines:])


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def start(name: str, args: list[str], env: dict[str, str], folder: Path) -> Service:
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=harness.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Service(name, process, log)


# --- The load ----------------------------------------------------------------------------


def pages(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        codes = [r[0] for r in conn.execute("SELECT ts_code FROM signals_fund ORDER BY ts_code")]
        slug = conn.execute("SELECT slug FROM signals_fundlist ORDER BY position").fetchone()
    assert codes and slug, "the sample is not loaded"
    return [
        "/", "/history/", f"/history/{RUN_DATE}/", f"/lists/{slug[0]}/", "/about/signals/",
        "/feed/rss/", "/api/signals/latest/", f"/api/signals/{RUN_DATE}/",
        f"/api/funds/{codes[0]}/history/",
        *(f"/funds/{code}/" for code in codes),
        *(f"/funds/{codes[0]}/?range={r}" for r in ("3m", "5y", "all")),
    ]  # fmt: skip


def request_pages(base: str, paths: list[str], rounds: int, concurrency: int) -> tuple[int, int]:
    """Every path `rounds` times, alternating English and Chinese; (requests, failures)."""

    def get(job: tuple[str, str]) -> bool:
        path, language = job
        request = urllib.request.Request(base + path, headers={"Accept-Language": language})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                answer.read()
                return bool(answer.status == 200)
        except OSError:
            return False

    jobs = [(p, ("en", "zh-hans")[n % 2]) for n in range(rounds) for p in paths]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(get, jobs))
    return len(results), results.count(False)


def daily_job(env: dict[str, str], timeout_s: int = 180) -> tuple[float, str]:
    """Queue the daily job for the sample's last day and wait for the worker to finish it:
    its seconds in the worker and its result."""
    out = manage(
        env,
        "shell",
        "-c",
        "from django_q.tasks import async_task, fetch; "
        f"task = fetch(async_task('signals.tasks.daily_signals', {RUN_DATE!r}), "
        f"wait={timeout_s * 1000}); "
        "print('-' if task is None else task.success); "
        "print(0 if task is None else (task.stopped - task.started).total_seconds()); "
        "print(None if task is None else task.result)",
    )
    success, seconds, result = out.strip().splitlines()[-3:]
    if success == "-":
        raise SystemExit(f"the worker did not finish the daily job within {timeout_s} s")
    if success != "True":
        raise SystemExit(f"the daily job failed in the worker: {result}")
    return float(seconds), result


# --- One measurement ----------------------------------------------------------------------


@dataclass
class Measured:
    postgres: Postgres
    database_mb: float
    idle: dict[str, Usage]
    after: dict[str, Usage]
    requests: int
    failures: int
    job_seconds: float
    job_result: str
    gunicorn: dict[str, str]
    processes: list[str]  # PSS of each process, after load


def snapshot(web: Service, worker: Service, pg: Postgres, database: str) -> dict[str, Usage]:
    ours = backends_of(pg.admin_url, database)  # before listing: this query's backend ends
    server = tree(pg.postmaster)
    return {
        "web": usage(web.pids()),
        "worker": usage(worker.pids()),
        "postgres": usage(server),
        "postgres: this database's backends": usage([p for p in ours if p in server]),
    }


def measure(pg: Postgres, args: argparse.Namespace) -> Measured:
    print(f"\n>>> {pg.label}: PostgreSQL {pg.version}, {pg.admin_url}", flush=True)
    with ExitStack() as stack:
        url = stack.enter_context(harness.throwaway_postgres(args.database, pg.admin_url))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ia-bench-mem-")))
        env = environment(url, folder)
        with harness.stopwatch() as t:
            for setup in (
                ("migrate", "--noinput", "-v0"),
                ("createcachetable",),
                ("load_sample", "-v0"),
                ("collectstatic", "--noinput", "-v0"),
                ("setup_schedules",),
            ):
                manage(env, *setup)
        print(f"    setup (migrate, load_sample, collectstatic, setup_schedules): {t[0]:.1f} s")
        port = free_port()
        command, values = gunicorn_command(port, env)
        print(f"    {' '.join(['gunicorn', *command[1:]])}")
        print(
            "    " + ", ".join(f"{k} {values.get(k)}" for k in ("workers", "threads",
            "worker_class", "preload_app", "max_requests"))
        )  # fmt: skip
        web = start("gunicorn", command, env, folder)
        stack.callback(web.stop)
        worker = start("qcluster", harness.manage("qcluster"), env, folder)
        stack.callback(worker.stop)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base + "/robots.txt")
        except SystemExit:
            raise SystemExit(f"gunicorn did not start:\n    {web.tail()}") from None
        time.sleep(args.settle)
        for service in (web, worker):
            if service.process.poll() is not None:
                raise SystemExit(f"{service.name} exited:\n    {service.tail()}")
        idle = snapshot(web, worker, pg, args.database)
        job_seconds, job_result = daily_job(env)
        print(f"    daily job in the worker: {job_seconds:.1f} s: {job_result}")
        concurrency = int(values["workers"]) * int(values["threads"])
        with harness.stopwatch() as t:
            requests, failures = request_pages(base, pages(url), args.rounds, concurrency)
        print(
            f"    {requests:,} requests ({concurrency} at a time) in {t[0]:.1f} s, "
            f"{failures} failed"
        )
        time.sleep(args.settle)
        after = snapshot(web, worker, pg, args.database)
        processes = [
            "web: " + breakdown(web.process.pid, ("master", "workers")),
            "worker: " + breakdown(worker.process.pid, ("main", "sentinel", "its children")),
        ]
        size = database_size(url) / 1e6
    return Measured(
        pg, size, idle, after, requests, failures, job_seconds, job_result, values, processes
    )


# --- Output -----------------------------------------------------------------------------------


def print_measured(m: Measured, report: Report) -> None:
    pg = m.postgres
    shared = pg.label == "shared server"
    title = f"{pg.label}: PostgreSQL {pg.version}" + (
        " (the whole server: it serves other databases too)" if shared else " (default config)"
    )
    print()
    print(title)
    print("=" * len(title))
    names = {
        "web": "web: gunicorn master + workers ({w} x {t} threads)".format(
            w=m.gunicorn["workers"], t=m.gunicorn["threads"]
        ),
        "worker": "worker: qcluster and its children",
        "postgres": "PostgreSQL: every server process",
        "postgres: this database's backends": "    of which backends of this database",
    }
    rows = []
    for key, label in names.items():
        idle, after = m.idle[key], m.after[key]
        rows.append(
            [label, str(after.processes), mb(after.rss), mb(after.pss), mb(after.uss),
             mb(idle.pss)]
        )  # fmt: skip
        if after.unreadable:
            rows[-1][0] += f" ({after.unreadable} unreadable: run as root)"
    total = total_of(m.after)
    rows.append(
        ["total (web + worker + PostgreSQL)", str(total.processes), mb(total.rss),
         mb(total.pss), mb(total.uss), mb(total_of(m.idle).pss)]
    )  # fmt: skip
    harness.print_rows(["after load (MB)", "procs", "RSS", "PSS", "USS", "PSS idle"], rows)
    print(
        "* PostgreSQL settings: "
        + ", ".join(f"{k} {v}" for k, v in pg.settings.items())
        + f"; this database: {m.database_mb:.0f} MB"
    )
    print(
        f"* load: the daily job once in the worker ({m.job_seconds:.1f} s), then "
        f"{m.requests:,} page and API requests ({m.failures} failed)"
    )
    print("* PSS of each process after load (MB): " + "; ".join(m.processes))
    prefix = "shared" if shared else "private"
    for key in ("web", "worker", "postgres"):
        report.add(f"{prefix}: {key} PSS after load", round(m.after[key].pss / 1e6, 1), "MB")
    report.add(f"{prefix}: total PSS after load", round(total.pss / 1e6, 1), "MB")
    report.add(f"{prefix}: failed requests", m.failures, "", limit=0, op="==")


def total_of(figures: dict[str, Usage]) -> Usage:
    return figures["web"] + figures["worker"] + figures["postgres"]


def conclusion(m: Measured, reserve_mb: float) -> str:
    """The smallest VPS whose memory holds the services plus the OS, with 20 % to spare."""
    total = total_of(m.after).pss / 1e6
    needed = total + reserve_mb
    smaller = ""
    for mib in VPS_MIB:
        size = mib * MIB / 1e6
        name = f"{mib} MB" if mib < 1024 else f"{mib // 1024} GB"
        if needed <= 0.8 * size:
            return (
                f"web + worker + PostgreSQL ({m.postgres.label}) use {total:.0f} MB (PSS); with "
                f"~{reserve_mb:.0f} MB for the OS and Docker, {needed:.0f} MB: a {name} VPS "
                f"fits ({needed / size:.0%} of it){smaller}."
            )
        smaller = f"; {name} is too small ({needed / size:.0%} of it)"
    return f"web + worker + PostgreSQL use {total:.0f} MB (PSS): more than 4 GB with the OS."


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--postgres",
        choices=("shared", "private", "both"),
        default="both",
        help="which PostgreSQL to measure (default both)",
    )
    p.add_argument("--rounds", type=int, default=20, help="requests per page (default 20)")
    p.add_argument("--settle", type=float, default=5, help="seconds to settle (default 5)")
    p.add_argument(
        "--os-reserve",
        type=float,
        default=200,
        help="MB the OS and Docker need, for the conclusion (default 200)",
    )
    p.add_argument(
        "--database",
        default="invest_alchemy_bench_memory",
        help="name of the throwaway database (default invest_alchemy_bench_memory)",
    )
    return p.parse_args()


def main() -> int:
    args = parse()
    if not Path("/proc/self/smaps_rollup").exists():
        print("needs Linux 4.14 or later (/proc/<pid>/smaps_rollup)", file=sys.stderr)
        return 1
    report = Report("memory", "Memory of web + worker + PostgreSQL (bundled sample)")
    results: list[Measured] = []
    with harness.stopwatch() as t:
        if args.postgres in ("shared", "both"):
            results.append(measure(describe("shared server", harness.ADMIN_URL), args))
        if args.postgres in ("private", "both"):
            bindir = server_bindir()
            if bindir is None:
                print("no initdb (PostgreSQL server binaries): private cluster skipped")
            else:
                with private_cluster(bindir) as pg:
                    results.append(measure(pg, args))
    report.seconds = t[0]
    for m in results:
        print_measured(m, report)
    print()
    print("* PSS divides each shared page among the processes mapping it (libraries, the")
    print("  forked gunicorn workers' common pages, PostgreSQL's shared buffers), so the rows")
    print("  add up; RSS counts shared pages in every process; USS is private pages only.")
    print("  Libraries are also shared with unrelated processes on this machine, so PSS here")
    print("  can be a little lower than on a machine running only this project.")
    honest = next((m for m in results if m.postgres.label != "shared server"), None)
    final = honest or (results[-1] if results else None)
    if final is not None:
        line = conclusion(final, args.os_reserve)
        if honest is None:
            line += " (PostgreSQL's figure is a whole shared server here.)"
        print(f"* Conclusion: {line}")
        report.notes.append(line)
    report.save()
    return 0 if results and all(m.failures == 0 for m in results) else 1


if __name__ == "__main__":
    sys.exit(main())
