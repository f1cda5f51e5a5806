"""The README's first command: `make run` sets up, serves and schedules; Ctrl-C stops all."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def test_make_run_serves_the_sample_with_the_scheduler_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    # The embedded defaults, with the SQLite file somewhere disposable.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", PYTHONUNBUFFERED="1")
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        # Its own session, like a terminal: Ctrl-C signals the whole foreground group.
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        status, page = 0, ""
        while time.monotonic() < deadline and make.poll() is None:
            status, page = get(f"http://127.0.0.1:{port}/")
            if status == 200 and "Q Cluster" in log.read_text(errors="replace"):
                break
            time.sleep(1)
        output = log.read_text(errors="replace")
        assert status == 200, output
        assert "510300.SH" in page, "the home page shows the bundled sample's signals"
        assert "Schedule 'daily signals' created" in output
        assert "worker.1" in output and "Q Cluster" in output, output

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        make.wait(timeout=30)
        output = log.read_text(errors="replace")
        assert "web.1 stopped" in output and "worker.1 stopped" in output, output
        assert get(f"http://127.0.0.1:{port}/")[0] == 0, "the web server still answers"
        time.sleep(0.5)
        try:
            os.killpg(make.pid, 0)
        except ProcessLookupError:
            pass
        else:
            raise AssertionError(f"processes of `make run` still alive:\n{output}")
    finally:
        try:
            os.killpg(make.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
