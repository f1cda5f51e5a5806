"""Send one digest to 100,000 confirmed subscribers, end to end, and time it.

Setup (reported, not a target): a throwaway PostgreSQL database with the
bundled sample's funds, lists and signals for 2023-06-08, and N confirmed
subscribers with a mix of lists and languages. Then, each in a child process
whose own peak RSS is measured:

(a) through anymail's test backend: `digest_prepare` (the ledger: one
    Delivery row per subscriber) plus `digest_send` (claim, personalise, hand
    off, record). The backend is anymail's own test backend, except that it
    does not keep every message in `mail.outbox`: at 100,000 messages that
    list alone would hold gigabytes, and anymail looks each message up in it.
(b) through Django's SMTP backend to an SMTP server (aiosmtpd) on loopback,
    in its own process, counting what it accepts.

Targets (issue): (a) >= 1,000 messages/s, (b) >= 300 messages/s, peak RSS
<= 200 MB, and database queries per batch constant, not per subscriber.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import subprocess
import sys
import time
from datetime import date
from typing import Any

import harness
from harness import Report, stopwatch

RUN_DATE = "2023-06-08"


def main() -> int:
    args = parse()
    if args.child:
        return child(args.child, args.batch)
    report = Report("digest_send", f"One digest to {args.subscribers:,} subscribers (PostgreSQL)")
    started = time.perf_counter()
    with harness.throwaway_postgres("invest_alchemy_bench_digest") as url:
        harness.setup_django(url)
        with stopwatch() as t:
            seed(args.subscribers)
        report.add(f"setup: sample signals + {args.subscribers:,} subscribers", t[0], "s")
        env = harness.bench_environment(url, **({"BENCH_PROFILE": "1"} if args.profile else {}))
        for mode, target in (("anymail", 1000), ("smtp", 300)):
            measure(report, mode, target, args, env, url)
    report.seconds = time.perf_counter() - started
    report.print()
    report.save()
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500, help="DIGEST_BATCH_SIZE (default 500)")
    p.add_argument("--child", choices=["anymail", "smtp"], help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help="cProfile the sending into bench/out/")
    return p.parse_args()


def seed(count: int) -> None:
    """The sample's funds and signals, and `count` confirmed subscribers."""
    from django.core.management import call_command

    from signals.models import FundList
    from subscriptions.models import Subscriber

    call_command("load_sample", backfill_from=RUN_DATE, verbosity=0)
    lists = list(FundList.objects.order_by("position"))
    Subscriber.objects.bulk_create(
        (
            Subscriber(
                email=f"reader{n}@example.com",
                status=Subscriber.Status.CONFIRMED,
                language="zh-hans" if n % 5 == 0 else "en",
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    through = Subscriber.fund_lists.through
    ids = Subscriber.objects.order_by("id").values_list("id", flat=True)
    rows = [
        through(subscriber_id=pk, fundlist_id=lists[n % 3].pk)
        for n, pk in enumerate(ids)
        if n % 3 < 2 and len(lists) >= 2  # a third each: first list, second list, all
    ]
    through.objects.bulk_create(rows, batch_size=5000)


def measure(
    report: Report,
    mode: str,
    target: float,
    args: argparse.Namespace,
    env: dict[str, str],
    url: str,
) -> None:
    from subscriptions.models import Delivery, Digest

    Delivery.objects.all().delete()
    Digest.objects.all().delete()
    harness.close_django_connections()
    sink = smtp_sink() if mode == "smtp" else None
    extra = {"BENCH_SMTP_PORT": sink[1]} if sink else {}
    command = [sys.executable, __file__, "--child", mode, "--batch", str(args.batch)]
    run = harness.run_child(command, {**env, **extra})
    accepted = stop_sink(sink) if sink else None
    if not run.ok:
        report.notes.append(run.failure())
        return
    figures = dict(line.split("=", 1) for line in run.stdout.split() if "=" in line)
    sent, seconds = int(figures["sent"]), float(figures["seconds"])
    letter = "a" if mode == "anymail" else "b"
    label = "anymail test backend" if mode == "anymail" else "Django SMTP backend to loopback"
    # ">= target messages/s" is "<= N / target seconds" for the N sent.
    report.add(f"({letter}) {label}: prepare + send", seconds, "s", args.subscribers / target)
    report.add(f"    messages per second (target >= {target:,})", sent / seconds, "msg/s")
    report.add("    messages sent", sent, "", args.subscribers, "==")
    report.add("    ledger (digest_prepare)", float(figures["prepare"]), "s")
    report.add("    sending (digest_send)", float(figures["send"]), "s")
    report.add("    peak RSS", run.max_rss_mb, "MB", 200)
    report.add("    batches", int(figures["batches"]))
    report.add("    queries per batch (most, least)", figures["queries"])
    if accepted is not None:
        report.add("    messages the SMTP server accepted", accepted, "", args.subscribers, "==")


def child(mode: str, batch: int) -> int:
    """In a fresh process: prepare and send the digest, print the figures."""
    harness.use_project()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from subscriptions import services
    from subscriptions.services import digest_prepare, digest_send

    if mode == "anymail":
        settings.EMAIL_BACKEND = "digest_send.KeptNowhere"
    else:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(os.environ["BENCH_SMTP_PORT"])
    per_batch: list[int] = []
    counter = QueryCounter(per_batch)
    claim = services._claim

    def counted_claim(*args: Any) -> Any:  # a new batch starts with each claim
        counter.next_batch()
        return claim(*args)

    services._claim = counted_claim
    started = time.perf_counter()
    digest = digest_prepare(run_date=date.fromisoformat(RUN_DATE))
    prepared = time.perf_counter()
    profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    with connection.execute_wrapper(counter):
        if profile:
            profile.enable()
        report = digest_send(digest=digest, batch_size=batch)
        if profile:
            profile.disable()
            profile.dump_stats(str(harness.OUT / f"digest_send_{mode}.prof"))
    done = time.perf_counter()
    counts = per_batch[1:-1] or per_batch  # [0]: before the first claim; [-1]: the empty one
    print(
        f"sent={report.sent} seconds={done - started:.3f} prepare={prepared - started:.3f} "
        f"send={done - prepared:.3f} batches={report.batches} queries={max(counts)},{min(counts)}"
    )
    return 0


class QueryCounter:
    def __init__(self, per_batch: list[int]) -> None:
        self.per_batch = per_batch
        self.per_batch.append(0)

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.per_batch[-1] += 1
        return execute(sql, params, many, context)

    def next_batch(self) -> None:
        self.per_batch.append(0)


def _kept_nowhere() -> type:
    from anymail.backends.test import EmailBackend
    from anymail.message import AnymailRecipientStatus

    class KeptNowhere(EmailBackend):
        """anymail's test backend without the outbox it keeps every message in."""

        sent = 0

        def post_to_esp(self, payload: Any, message: Any) -> dict[str, Any]:
            message.anymail_test_params = payload.get_params()
            KeptNowhere.sent += 1
            status = AnymailRecipientStatus(message_id=str(KeptNowhere.sent), status="sent")
            return {"recipient_status": {email: status for email in payload.recipient_emails}}

    return KeptNowhere


def __getattr__(name: str) -> Any:  # digest_send.KeptNowhere, imported by Django by path
    if name == "KeptNowhere":
        return _kept_nowhere()
    raise AttributeError(name)


SINK = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.smtp_server import SmtpSink
sink = SmtpSink()
sink.keep = False
with sink:
    print(sink.port, flush=True)
    sys.stdin.read()
print(sink.count, flush=True)
"""


def smtp_sink() -> tuple[subprocess.Popen[str], str]:
    """An aiosmtpd server in its own process, so it does not compete for our GIL."""
    process = subprocess.Popen(
        [sys.executable, "-c", SINK, str(harness.ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop_sink(sink: tuple[subprocess.Popen[str], str]) -> int:
    process, _port = sink
    output, _ = process.communicate("", timeout=60)
    return int(output.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
