"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """`with SmtpSink() as sink:` then point EMAIL_HOST/EMAIL_PORT at sink.host/sink.port.

    `reply_next(code_and_text, times)` makes the next DATA commands fail with
    that reply (e.g. "450 4.2.1 Mailbox busy") to exercise retries.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.count = 0
        self._lock = threading.Lock()
        self._replies: list[str] = []
        self.keep = True  # False: only count, for benchmarks
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._replies:
                return self._replies.pop(0)
            self.count += 1
            if self.keep:
                message = message_from_bytes(envelope.content, policy=policy.default)
                self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def reply_next(self, reply: str, times: int = 1) -> None:
        with self._lock:
            self._replies.extend([reply] * times)

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
