"""Log lines for a service read with `docker compose logs` and grep.

Every event is one line: a traceback or a multi-line message is folded into
it with its line breaks written as `\\n`. Work done for one run date (the
daily job, a digest) is wrapped in `run_date_context`, and every line logged
inside it, by this project or a library, names that date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date

_run_date: ContextVar[str | None] = ContextVar("run_date", default=None)


@contextmanager
def run_date_context(day: date | str) -> Iterator[None]:
    token = _run_date.set(str(day))
    try:
        yield
    finally:
        _run_date.reset(token)


class OneLineFormatter(logging.Formatter):
    """`2024-06-28T18:30:01+0800 INFO signals.tasks run_date=2024-06-28 message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(run_prefix)s%(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return super().formatTime(record, "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        run_date = _run_date.get()
        record.run_prefix = f"run_date={run_date} " if run_date else ""
        text = super().format(record)
        return text.replace("\r", "").replace("\n", "\\n")


class TaskFailures(logging.Filter):
    """Only django-q2's report of a task that raised ("Failed 'func' (name) - …").

    Its other errors (a broker that cannot be reached, retried every few
    seconds) would send the admins an email each time; /healthz and the logs
    cover those.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage().startswith("Failed ")
