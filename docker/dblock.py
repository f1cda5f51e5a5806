"""Run a command while holding a database-wide lock: one container at a time.

    python docker/dblock.py python manage.py migrate --noinput

web and worker start together from one image and both migrate on start; two
`migrate` at once on a new database fail ("duplicate key … django_migrations"),
and on an upgrade they would apply the same migration twice. The lock is a
PostgreSQL advisory lock on its own connection, so it is released when this
process ends, however it ends. With SQLite it is an flock on a file next to the
database (processes sharing a SQLite database share its file system).

Waits up to DB_WAIT_SECONDS (default 30) for the database to accept connections.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parent.parent
LOCK_KEY = 7_105_271_342  # any constant; the same for every container of the project


def main(command: list[str]) -> int:
    if not command:
        print("usage: python docker/dblock.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    # The settings read the project's .env for what the environment lacks; so do we.
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    url = os.environ.get("DATABASE_URL", "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = environ.Env.db_url_config(url) if url else {}
    except Exception:
        config = {}
    # No URL: the settings' SQLite default. A bad one: the command stops with
    # the settings' own message about it.
    engine = config.get("ENGINE", "") if url else "django.db.backends.sqlite3"
    if engine == "django.db.backends.sqlite3":
        return with_file_lock(Path(config.get("NAME") or ROOT / "var" / "db.sqlite3"), command)
    if engine != "django.db.backends.postgresql":
        return subprocess.run(command).returncode

    import psycopg

    params = {
        "dbname": config["NAME"],
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        **config.get("OPTIONS", {}),
    }
    raw = os.environ.get("DB_WAIT_SECONDS", "").strip() or "30"
    if not raw.isdigit():
        print(f"dblock: DB_WAIT_SECONDS must be a whole number, not {raw!r}", file=sys.stderr)
        return 2
    wait = int(raw)
    deadline = time.monotonic() + wait
    while True:
        try:
            connection = psycopg.connect(
                **{k: v for k, v in params.items() if v is not None},
                autocommit=True,
                connect_timeout=5,
            )
            break
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                reason = str(e).strip().splitlines()[0]
                print(f"dblock: the database did not answer in {wait} s: {reason}", file=sys.stderr)
                return 1
            time.sleep(1)
    with connection:
        if not connection.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
            print(f"dblock: waiting for another container to finish: {' '.join(command)}")
            connection.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        return subprocess.run(command).returncode


def with_file_lock(database: Path, command: list[str]) -> int:
    if str(database) in {"", ":memory:"}:
        return subprocess.run(command).returncode
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"dblock: waiting for another container to finish: {' '.join(command)}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
