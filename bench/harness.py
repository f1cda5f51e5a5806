"""Plumbing shared by the benchmarks: the project on sys.path, Django on a throwaway
database, child processes measured one by one, and the figures table with PASS/MISS.

Every script saves its figures to bench/out/<name>.json; run_all.py reads them back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from synthetic import SEED

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MANAGE = ROOT / "manage.py"
SECRET_KEY = "bench-only-not-a-secret-" + "0123456789abcdef" * 2  # settings want >= 50
ADMIN_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


def use_project() -> None:
    """Make `signals`, `tests` and `invest_alchemy` importable from a bench script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- Figures ---------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure; with a `limit` it is checked: value <= limit (or == for "==")."""

    label: str
    value: float | int | str | None
    unit: str = ""
    limit: float | None = None
    op: str = "<="

    @property
    def ok(self) -> bool | None:
        if self.limit is None or not isinstance(self.value, int | float):
            return None
        if self.op == "==":
            return self.value == self.limit
        return self.value <= self.limit

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: ""}[self.ok]

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        sign = "≤" if self.op == "<=" else "="
        return f"{sign} {_number(self.limit)} {self.unit}".rstrip()

    def shown(self) -> str:
        if self.value is None:
            return "—"
        if isinstance(self.value, str):
            return self.value
        return f"{_number(self.value)} {self.unit}".rstrip()


@dataclass
class Report:
    """The figures of one script, printed as a table and saved as JSON."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def print(self) -> None:
        print()
        print(self.title)
        print("=" * len(self.title))
        print_table(self.figures)
        for note in self.notes:
            print(f"* {note}")

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.name}.json"
        payload = asdict(self)
        for entry, figure in zip(payload["figures"], self.figures, strict=True):
            entry.update(target=figure.target, verdict=figure.verdict, shown=figure.shown())
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
        return path

    @property
    def missed(self) -> list[Figure]:
        return [f for f in self.figures if f.ok is False]


def print_table(figures: Sequence[Figure], *, prefix: Sequence[str] = ()) -> None:
    rows = [[*prefix, f.label, f.shown(), f.target, f.verdict] for f in figures]
    heads = [*([""] * len(prefix)), "figure", "value", "target", ""]
    print_rows(heads, rows)


def print_rows(heads: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [heads, *rows]) for i in range(len(heads))]
    for row in [heads, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


# --- Command line ----------------------------------------------------------------


def parser(description: str, *, funds: int, bars: int) -> argparse.ArgumentParser:
    """The options every script shares; the defaults are the issue's sizes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--funds", type=int, default=funds, help=f"number of funds (default {funds})")
    p.add_argument("--bars", type=int, default=bars, help=f"stored bars per fund (default {bars})")
    p.add_argument("--seed", type=int, default=SEED, help=f"generator seed (default {SEED})")
    return p


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then t[0] holds the seconds taken."""
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


# --- Databases ---------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """The admin URL with its database name replaced."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def throwaway_postgres(name: str, admin_url: str = ADMIN_URL) -> Iterator[str]:
    """CREATE DATABASE `name` (dropping a leftover first), yield its URL, DROP it at the end."""
    import psycopg
    from psycopg import sql

    def drop(conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    with psycopg.connect(admin_url, autocommit=True) as conn:
        drop(conn)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(admin_url, name)
    finally:
        close_django_connections()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            drop(conn)


@contextmanager
def throwaway_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="invest-alchemy-bench-") as folder:
        try:
            yield f"sqlite:///{folder}/bench.sqlite3"
        finally:
            close_django_connections()


def bench_environment(url: str, **extra: str) -> dict[str, str]:
    """The environment a bench process (or its children) runs Django with."""
    env = {k: v for k, v in os.environ.items() if k not in {"PRICE_CSV_DIR", "DEBUG"}}
    env.update(
        DJANGO_SETTINGS_MODULE="invest_alchemy.settings",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=url,
        TUSHARE_RETRY_WAIT="0",
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        **extra,
    )
    return env


def setup_django(url: str) -> None:
    """Configure Django for this process against `url` and migrate it (quietly)."""
    use_project()
    os.environ.update(bench_environment(url))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)  # for a DatabaseCache, if configured


def close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


# --- Child processes ------------------------------------------------------------------


@dataclass
class ChildRun:
    args: list[str]
    returncode: int
    seconds: float
    max_rss_mb: float  # peak resident set of this child alone, 10^6 bytes
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self, lines: int = 12) -> str:
        """What went wrong, for the report: the command and the end of its output."""
        tail = "\n    ".join((self.stdout + self.stderr).strip().splitlines()[-lines:])
        command = " ".join(self.args[1:])
        return f"{command} exited with {self.returncode}:\n    {tail}"


# Runs argv[2:] and writes "returncode seconds peak_kib" to argv[1]. It is a separate,
# small process because Linux carries a parent's peak RSS into a child across fork and
# exec: a child spawned straight from this (large) process would report our size, not its
# own. Forked from this tiny launcher instead, the child's ru_maxrss is its own peak.
_LAUNCHER = """
import os, resource, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, _ = os.wait4(pid, 0)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {peak}")
"""


def run_child(args: Sequence[str], env: dict[str, str]) -> ChildRun:
    """Run a process to completion: its wall time and its own peak RSS.

    Output goes to temporary files, so a chatty child can never block on a full pipe.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as result,
    ):
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, result.name, *map(str, args)]
        subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=ROOT, check=True)
        code, seconds, peak_kib = result.read().split()
        out.seek(0)
        err.seek(0)
        return ChildRun(
            args=[str(a) for a in args],
            returncode=int(code),
            seconds=float(seconds),
            max_rss_mb=int(peak_kib) * 1024 / 1e6,  # Linux reports KiB
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def manage(*args: str) -> list[str]:
    return [sys.executable, str(MANAGE), *args]
