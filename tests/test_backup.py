"""Backups of the compose deployment: the README's pg_dump and pg_restore, exercised.

The README documents

    docker compose exec -T db pg_dump -U invest_alchemy -Fc invest_alchemy > backup.dump
    docker compose exec -T db pg_restore -U invest_alchemy -d invest_alchemy \\
        --clean --if-exists --no-owner --single-transaction < backup.dump

This test runs the same two programs with the same flags against the PostgreSQL server
of DATABASE_URL (127.0.0.1:5432 as `postgres` without it), with connection options in
place of `docker compose exec`. As through `docker compose exec -T`, pg_dump writes to a
pipe and pg_restore reads from one: neither can seek in the archive.

A scratch database gets what a deployment has (migrations, the cache table, the bundled
sample with its signals, a run of 2023-06-08, a confirmed subscriber and the digest sent
to them); it is dumped, and the dump restored (a) into a new, empty database and (b) over
the original after rows were changed, deleted and added and a table dropped. Both must
then hold exactly what was dumped: every table's row count and contents, the sequences,
indexes and constraints, and a few known values. (c) A damaged dump must fail and, being
restored in one transaction, leave the database as it was.

Skipped without PostgreSQL or its client programs, except with CI=true, where that fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.base import unavailable

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = "2023-06-08"  # the bundled sample's last day
DUMP_FLAGS = ["-Fc"]
RESTORE_FLAGS = ["--clean", "--if-exists", "--no-owner", "--single-transaction"]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"
EMAIL = "backup-check@example.com"
SECRET_KEY = "tests-only-not-a-secret-" + "0123456789abcdef" * 2  # 56 characters

pytestmark = pytest.mark.slow


@dataclass
class Server:
    """A PostgreSQL server, as psycopg URLs and as libpq options for its programs."""

    host: str
    port: str
    user: str
    password: str
    base: str  # the configured database's name, to name the scratch databases after

    @classmethod
    def from_environment(cls) -> Server:
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
            url = DEFAULT_URL
        parts = urlsplit(url)
        name = unquote(parts.path.lstrip("/"))
        return cls(
            host=parts.hostname or "",
            port=str(parts.port or ""),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            base=name if name and name != "postgres" else "invest_alchemy",
        )

    def url(self, database: str) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        where = self.host + (f":{self.port}" if self.port else "")
        return f"postgres://{auth}@{where}/{quote(database, safe='')}"

    @property
    def options(self) -> list[str]:
        """Connection options for pg_dump and pg_restore (`docker compose exec` gives these)."""
        options = ["-U", self.user] if self.user else []
        options += ["-h", self.host] if self.host else []
        return options + (["-p", self.port] if self.port else [])

    @property
    def env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        return env | ({"PGPASSWORD": self.password} if self.password else {})

    def scratch_name(self, role: str, token: str) -> str:
        return f"{self.base[:40]}_{token}_{role}"


def major(version_output: str) -> int:
    """15 from 'pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)'."""
    found = re.search(r"\)\s+(\d+)", version_output)
    assert found, version_output
    return int(found.group(1))


@pytest.fixture
def server() -> Server:
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed")
    for program in ("pg_dump", "pg_restore"):
        if shutil.which(program) is None:
            unavailable(f"{program} is not on PATH (apt-get install postgresql-client)")
    server = Server.from_environment()
    try:
        with psycopg.connect(server.url("postgres"), connect_timeout=5) as conn:
            server_major = conn.info.server_version // 10000
    except psycopg.OperationalError as e:
        unavailable(f"no PostgreSQL at {server.url('postgres')}: {e}")
    versions = {
        program: subprocess.run(
            [program, "--version"], capture_output=True, text=True, check=True, env=server.env
        ).stdout
        for program in ("pg_dump", "pg_restore")
    }
    # pg_dump refuses a server newer than itself; pg_restore reads its own pg_dump's archives.
    if major(versions["pg_dump"]) < server_major:
        unavailable(f"{versions['pg_dump'].strip()} cannot dump a PostgreSQL {server_major} server")
    assert major(versions["pg_restore"]) == major(versions["pg_dump"]), versions
    return server


def test_a_dump_restores_into_an_empty_database_and_over_a_changed_one(server, tmp_path):
    import psycopg
    from psycopg import sql

    token = uuid.uuid4().hex[:8]
    original = server.scratch_name("orig", token)
    fresh = server.scratch_name("fresh", token)

    def admin(statement: sql.Composed) -> None:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    try:
        admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(original)))
        env = django_environment(server.url(original), tmp_path)
        for command in (
            ["migrate", "--noinput", "-v0"],
            ["createcachetable"],
            ["load_sample", "-v0"],
            ["run_signals", "--date", RUN_DATE, "-v0"],
            ["shell", "-c", ADD_SUBSCRIBER],
            ["send_digest", "--date", RUN_DATE],
        ):
            manage(command, env)

        dumped = snapshot(server.url(original))
        assert_known_values(dumped)

        backup = tmp_path / "backup.dump"  # `> backup.dump`: pg_dump's output reaches it by pipe
        backup.write_bytes(pg_dump(server, original))
        assert backup.read_bytes().startswith(b"PGDMP")

        # (a) Into a new, empty database.
        admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(fresh)))
        restored = pg_restore(server, fresh, backup.read_bytes())
        assert restored.returncode == 0 and not restored.stderr, restored.stderr
        assert snapshot(server.url(fresh)) == dumped
        # The project works on it: no migration missing, and a run adds a row after the
        # restored ones (the identity sequences were restored too).
        fresh_env = django_environment(server.url(fresh), tmp_path)
        manage(["migrate", "--check", "--noinput"], fresh_env)
        manage(["run_signals", "--date", RUN_DATE, "-v0"], fresh_env)
        assert (
            count(server.url(fresh), "signals_signalrun")
            == count_of(dumped, "signals_signalrun") + 1
        )

        # (b) Over the original, after changes the dump does not have.
        vandalise(server.url(original))
        assert snapshot(server.url(original)) != dumped
        restored = pg_restore(server, original, backup.read_bytes())
        assert restored.returncode == 0 and not restored.stderr, restored.stderr
        assert snapshot(server.url(original)) == dumped

        # (c) A dump cut short fails, and the single transaction leaves everything in place.
        damaged = pg_restore(
            server, original, backup.read_bytes()[: backup.stat().st_size * 2 // 3]
        )
        assert damaged.returncode != 0
        assert "pg_restore: error" in damaged.stderr
        assert snapshot(server.url(original)) == dumped
    finally:
        for name in (original, fresh):
            admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- The two programs, as the README runs them ------------------------------------------


def pg_dump(server: Server, database: str) -> bytes:
    """`pg_dump -U … -Fc <database> > backup.dump`, its output read from a pipe."""
    done = subprocess.run(
        ["pg_dump", *server.options, *DUMP_FLAGS, database],
        capture_output=True,
        env=server.env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def pg_restore(server: Server, database: str, dump: bytes) -> subprocess.CompletedProcess[str]:
    """`pg_restore -U … -d <database> --clean --if-exists --no-owner … < backup.dump`.

    The archive comes on standard input through a pipe, as `docker compose exec -T` passes it.
    """
    done = subprocess.run(
        ["pg_restore", *server.options, "-d", database, *RESTORE_FLAGS],
        input=dump,
        capture_output=True,
        env=server.env,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()
    )


# --- The project, in child processes -----------------------------------------------------

ADD_SUBSCRIBER = f"""
from django.utils import timezone
from signals.models import FundList
from subscriptions.models import Subscriber
subscriber = Subscriber.objects.create(
    email="{EMAIL}", status=Subscriber.Status.CONFIRMED, language="zh-hans",
    confirmed_at=timezone.now(),
)
subscriber.fund_lists.set(FundList.objects.filter(slug="long-etf"))
"""


def django_environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    """A clean environment: only what the commands need (a local .env fills in nothing else
    that matters: the provider, email and cache are set here)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LC_ALL": "C.UTF-8",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "localhost",
        "LOG_LEVEL": "WARNING",
        "SIGNALS_PROVIDER": "csv",  # the bundled sample, whatever a .env says about Tushare
        "PRICE_CSV_DIR": "",
        "TUSHARE_TOKEN": "",
        "ANYMAIL_PROVIDER": "",
        "EMAIL_URL": f"filemail://{tmp_path / 'mail'}",
        "REDIS_URL": "",
    }


def manage(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


# --- What a database holds -----------------------------------------------------------------

KNOWN_VALUES = {
    # The README's example line: 510300.SH EMPTY since 2023-04-27 (42 days), -3.96%.
    "signal": """
        SELECT s.state, s.since::text, s.days, s.change, s.qfq_close, s.short_ma, s.long_ma
        FROM signals_signal s JOIN signals_fund f ON f.id = s.fund_id
        WHERE f.ts_code = '510300.SH' AND s.run_date = %(day)s""",
    "split": """
        SELECT b.close, b.adj_factor FROM signals_pricebar b
        JOIN signals_fund f ON f.id = b.fund_id
        WHERE f.ts_code = '513100.SH' AND b.trade_date = '2022-01-14'""",
    "runs": """
        SELECT count(*), max(id), string_agg(DISTINCT status, ',')
        FROM signals_signalrun WHERE run_date = %(day)s""",
    "subscriber": """
        SELECT s.email, s.status, s.language, s.secret, s.confirmed_at,
               array_agg(l.slug ORDER BY l.slug)
        FROM subscriptions_subscriber s
        JOIN subscriptions_subscriber_fund_lists m ON m.subscriber_id = s.id
        JOIN signals_fundlist l ON l.id = m.fundlist_id
        GROUP BY s.id, s.email, s.status, s.language, s.secret, s.confirmed_at""",
    "delivery": """
        SELECT d.status, g.run_date::text, s.email FROM subscriptions_delivery d
        JOIN subscriptions_digest g ON g.id = d.digest_id
        JOIN subscriptions_subscriber s ON s.id = d.subscriber_id""",
}


def snapshot(url: str) -> dict[str, Any]:
    """Everything the restore must bring back: per table its row count and a digest of its
    rows; the sequences; the indexes and constraints; a few known values."""
    import psycopg

    shot: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        for table in tables:
            shot[f"table {table}"] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                f' FROM "{table}" t'
            ).fetchone()
        shot["sequences"] = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' "
            "ORDER BY 1"
        ).fetchall()
        shot["indexes"] = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        shot["constraints"] = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
        for name, query in KNOWN_VALUES.items():
            shot[name] = conn.execute(query, {"day": RUN_DATE}).fetchall()
    return shot


def count_of(shot: dict[str, Any], table: str) -> int:
    return int(shot[f"table {table}"][0])


def count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]


def assert_known_values(shot: dict[str, Any]) -> None:
    """The dumped database holds what the project made: checked before it is dumped."""
    project = {k for k in shot if k.startswith(("table signals_", "table subscriptions_"))}
    assert project >= {
        "table signals_fund",
        "table signals_fundlist",
        "table signals_fundlistitem",
        "table signals_pricebar",
        "table signals_signal",
        "table signals_signalrun",
        "table subscriptions_subscriber",
        "table subscriptions_subscriber_fund_lists",
        "table subscriptions_digest",
        "table subscriptions_delivery",
    }
    assert count_of(shot, "signals_fund") == 16
    assert count_of(shot, "signals_pricebar") == 35_186
    assert count_of(shot, "signals_signal") > 16 * 100  # every day since 2023-01-03
    assert count_of(shot, "subscriptions_subscriber") == 1
    assert count_of(shot, "subscriptions_delivery") == 1
    [(state, since, days, change, *_)] = shot["signal"]
    assert (state, since, days, round(change, 4)) == ("EMPTY", "2023-04-27", 42, -0.0396)
    [(close, adj_factor)] = shot["split"]
    assert close and adj_factor
    [(runs, _, statuses)] = shot["runs"]
    assert runs == 2 and statuses == "success"  # load_sample's backfill, then run_signals
    [(email, status, language, secret, confirmed_at, lists)] = shot["subscriber"]
    assert (email, status, language, lists) == (EMAIL, "confirmed", "zh-hans", ["long-etf"])
    assert secret and confirmed_at
    assert shot["delivery"] == [("sent", RUN_DATE, EMAIL)]


def vandalise(url: str) -> None:
    """What a restore must undo: changed, deleted and added rows, a dropped table."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("UPDATE signals_signal SET state = 'BUY' WHERE run_date = %s", [RUN_DATE])
        conn.execute("DELETE FROM signals_signal WHERE run_date < '2023-03-01'")
        conn.execute("DELETE FROM signals_pricebar WHERE trade_date < '2015-01-01'")
        conn.execute("DELETE FROM subscriptions_delivery")
        conn.execute("DELETE FROM subscriptions_subscriber_fund_lists")
        conn.execute("DELETE FROM subscriptions_subscriber")
        conn.execute(
            "INSERT INTO signals_fundlist (slug, name, description, position, strategy, "
            "short_window, long_window) SELECT 'extra', 'Extra', '', 9, strategy, "
            "short_window, long_window FROM signals_fundlist LIMIT 1"
        )
        conn.execute("DROP TABLE django_session")
