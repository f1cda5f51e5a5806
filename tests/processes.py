"""A service started as a real process for a test: gunicorn, qcluster, an entrypoint."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class ServiceProcess:
    """A command in its own process group (its children share the group), its
    output kept in a file, stopped the way a service manager stops it."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log: Path,
        label: str,
        stop_within: float = 30,
    ) -> None:
        self.command, self.cwd, self.env, self.log_path = list(command), cwd, env, log
        self.label, self.stop_within = label, stop_within
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServiceProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def output(self) -> str:
        """The output for an assertion message, cut to its last 20,000 characters."""
        text = self.text()
        if len(text) > 20_000:
            text = "…\n" + text[-20_000:]
        return f"\n--- {self.label} output ---\n{text}--- end of output ---"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the main process, as `docker stop` or systemd sends it; its
        exit code, or None when it had to be killed."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_within)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return proc.returncode

    def leftovers(self) -> bool:
        """Whether any process of its group outlived it (they are then killed)."""
        assert self.proc is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return False
            time.sleep(0.1)
        self.kill()
        return True

    def kill(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
