"""A sender killed outright (SIGKILL, out of memory) mid-batch: what is left in doubt.

The process really dies (os._exit, so no `finally` runs) while handing over
the third message of a batch of five. With results written after every
message (DIGEST_RECORD_SECONDS=0), only that message is in doubt: the two
before it are recorded as sent, the two after it were never handed over.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone

from subscriptions.admin import _resendable, sending_lease
from subscriptions.models import Delivery, Digest, Subscriber
from subscriptions.services import digest_prepare, digest_send
from tests.base import make_fund, make_list, run_command

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
DIE_AT = 3


class DiesWhileSending(locmem.EmailBackend):
    """Hands each message over, and the process dies while handing over the DIE_AT-th."""

    handed_over = 0

    def send_messages(self, messages):
        DiesWhileSending.handed_over += len(messages)
        if DiesWhileSending.handed_over >= DIE_AT:
            os._exit(137)  # like SIGKILL: no exception, no finally, no cleanup
        return super().send_messages(messages)


SEND = (
    "from django.conf import settings; "
    "settings.EMAIL_BACKEND = 'tests.subscriptions.test_killed_sender.DiesWhileSending'; "
    "from subscriptions.models import Digest; from subscriptions.services import digest_send; "
    "digest_send(digest=Digest.objects.get(), batch_size=5)"
)


def test_a_killed_sender_leaves_only_the_message_in_flight_in_doubt(test_database_url):
    fund = make_fund("510300.SH", "沪深300ETF")
    make_list("long-etf", [fund], name="Long ETF")
    run_command("run_signals", date="2023-06-08", provider="csv")
    for n in range(7):
        Subscriber.objects.create(email=f"reader{n}@example.com", status="confirmed")
    digest_prepare(run_date=date(2023, 6, 8))

    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("PG")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=test_database_url,
        DIGEST_RECORD_SECONDS="0",
        DIGEST_SEND_RATE="0",
    )
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEND],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == 137, died.stdout + died.stderr

    def count(status: str) -> int:
        return Delivery.objects.filter(status=status).count()

    # Two recorded as sent; the third handed over when it died and the two after
    # it never were: all three "sending"; the last two never claimed.
    assert (count("sent"), count("sending"), count("pending")) == (DIE_AT - 1, 3, 2)

    # The next run sends the unclaimed; an operator resends the batch's rest
    # once no live sender could still hold it.
    assert digest_send(digest=Digest.objects.get()).sent == 2
    in_doubt = Delivery.objects.filter(status="sending")
    assert _resendable(in_doubt) == []  # too soon: a sender could still be at work
    with time_machine.travel(timezone.now() + sending_lease() + timedelta(seconds=1)):
        ids = _resendable(Delivery.objects.filter(status="sending"))
        assert len(ids) == 3
        assert digest_send(digest=Digest.objects.get(), only=ids).sent == 3
    assert count("sent") == 7
    # Handed over 3 + 2 + 3 = 8 copies for 7 readers: one duplicate, the message in flight.
    assert len(mail.outbox) == 5
