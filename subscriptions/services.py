"""Subscribing, confirming, leaving, and sending each run's digest exactly once."""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core import mail
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min
from django.utils import timezone
from django_q.tasks import async_task

from signals.models import FundList, SignalRun
from signals.selectors import Day
from subscriptions import emails
from subscriptions.models import Delivery, Digest, Subscriber, new_secret, normalise_email

logger = logging.getLogger(__name__)


class DigestError(Exception):
    """No digest can be made for that date; the message says why."""


def subscriber_subscribe(
    *, email: str, language: str, fund_lists: Sequence[FundList] = (), actionable_only: bool = False
) -> bool:
    """Start (or restart) double opt-in for an address; True if it is now pending.

    The caller shows the same page whatever happened, so nobody can learn
    whether an address is subscribed: every request queues the same task,
    and the worker decides whether there is anything to send. A confirmed
    address is left alone; a bounced or complained one is never mailed again.
    One who left and comes back gets new links: the old ones stop working.
    """
    email = normalise_email(email)
    try:
        # A double-clicked form for a new address: the second request finds
        # the row the first one created.
        Subscriber.objects.get_or_create(email=email, defaults={"language": language})
    except IntegrityError:
        pass
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(email=email)
        restart = not (subscriber.is_suppressed or subscriber.status == Subscriber.Status.CONFIRMED)
        if restart:
            if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
                subscriber.set_status(Subscriber.Status.PENDING)
                subscriber.secret = new_secret()
            subscriber.language = language
            subscriber.actionable_only = actionable_only
            subscriber.confirmation_sent_at = timezone.now()
            subscriber.save()
            subscriber.fund_lists.set(fund_lists)
    async_task("subscriptions.tasks.send_confirmation", subscriber.pk)
    return restart


def subscriber_confirm(*, subscriber: Subscriber) -> None:
    if subscriber.status == Subscriber.Status.PENDING:
        subscriber.set_status(Subscriber.Status.CONFIRMED)
        subscriber.save()


def subscriber_unsubscribe(*, subscriber: Subscriber) -> None:
    """Idempotent; a bounced or complained address keeps that status."""
    if subscriber.status in (Subscriber.Status.PENDING, Subscriber.Status.CONFIRMED):
        subscriber.set_status(Subscriber.Status.UNSUBSCRIBED)
        subscriber.save()
    Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.PENDING).delete()


def subscriber_suppress(*, email: str, status: str) -> int:
    """A provider reported a bounce, complaint or unsubscribe: stop for good."""
    suppressed = 0
    for subscriber in Subscriber.objects.filter(email__iexact=normalise_email(email)):
        if subscriber.is_suppressed and status == Subscriber.Status.UNSUBSCRIBED:
            continue
        subscriber.set_status(status)
        subscriber.save()
        Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.PENDING).delete()
        suppressed += 1
    return suppressed


def subscriber_delete(*, subscriber: Subscriber) -> None:
    subscriber.delete()


# --- digests --------------------------------------------------------------------


def digest_prepare(*, run_date: date) -> Digest:
    """Render the digest of a date once and write a delivery row per recipient.

    Needs the date's latest run of every fund (not a run of one fund or
    list) to have succeeded. Until the first copy goes out the digest is
    rendered afresh, so a later complete run replaces an earlier one's
    content; after that it stays as sent. Running it again adds rows only
    for subscribers confirmed since; nobody gets a second row.
    """
    finished = SignalRun.objects.filter(run_date=run_date, finished_at__isnull=False)
    runs = [r for r in finished.order_by("-finished_at") if r.covers_everything]
    if not runs:
        raise DigestError(f"no signal run of every fund for {run_date}: run run_signals first")
    run = runs[0]
    if run.status != SignalRun.Status.SUCCESS:
        raise DigestError(f"the last signal run for {run_date} is {run.status}: no digest is sent")
    digest = Digest.objects.filter(run_date=run_date).first()
    started = (
        digest is not None and digest.deliveries.exclude(status=Delivery.Status.PENDING).exists()
    )
    if not started:
        day = Day.load(run_date, run)  # the day as the pages show it, stale funds counted once
        parts = emails.render_digest(run_date, day.groups, stale=day.stale)
        digest, _ = Digest.objects.update_or_create(
            run_date=run_date, defaults={"run": run, "parts": parts}
        )
    assert digest is not None
    _write_ledger(digest)
    return digest


def _write_ledger(digest: Digest) -> None:
    recipients = Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED)
    recipients = recipients.exclude(deliveries__digest=digest).prefetch_related("fund_lists")
    rows = []
    for subscriber in recipients.iterator(chunk_size=2000):
        keys = emails.digest_lists(digest.parts, [fl.pk for fl in subscriber.fund_lists.all()])
        if not keys:
            continue
        if subscriber.actionable_only and sum(emails.digest_counts(digest.parts, keys)) == 0:
            continue
        rows.append(Delivery(digest=digest, subscriber=subscriber))
        if len(rows) >= 2000:
            Delivery.objects.bulk_create(rows, ignore_conflicts=True)
            rows = []
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)


@dataclass
class SendReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str = ""  # why it stopped before every due row was tried


def digest_send(
    *,
    digest: Digest,
    batch_size: int | None = None,
    rate: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    only: Sequence[int] | None = None,
    deadline: float | None = None,
) -> SendReport:
    """Send every due delivery of a digest, batch by batch, recording each result.

    Rows are claimed before sending and their results written after each
    batch, also when the batch is interrupted, so a re-run sends everyone who
    is left exactly once. Temporary failures go back in the queue for later.
    With a `deadline` (a `time.monotonic()` value) it stops there, between two
    messages; the rows it did not reach stay due. A mail server that cannot be
    reached stops the send: the batch waits DIGEST_RETRY_SECONDS like any
    temporary failure, and so does the rest.
    """
    batch_size = batch_size or settings.DIGEST_BATCH_SIZE
    rate = settings.DIGEST_SEND_RATE if rate is None else rate
    report = SendReport()
    started, count = time.monotonic(), 0
    connection = mail.get_connection()
    field_format = merge_field_format(connection)
    while not _past(deadline) and (batch := _claim(digest, batch_size, only)):
        report.batches += 1
        outcome = _BatchOutcome()
        recorded: set[int] = set()
        last_record = time.monotonic()
        try:
            try:
                connection.open()
            except (smtplib.SMTPException, OSError, AnymailError) as e:
                outcome.fail(batch, e)
                report.stopped = f"the mail server cannot be reached: {describe(e)}"
                break
            units = _grouped(digest, batch) if field_format else [[d] for d in batch]
            for unit in units:
                if _past(deadline):
                    break
                if field_format:
                    _send_group(connection, digest, unit, outcome, field_format)
                else:
                    _send_one(connection, digest, unit[0], outcome)
                count += len(unit)
                if time.monotonic() - last_record >= settings.DIGEST_RECORD_SECONDS:
                    # A slow batch writes what it has done as it goes: a process
                    # killed outright leaves only the last moments in doubt.
                    done = [d for d in batch if d.pk in outcome.handled()]
                    _record(done, outcome, report)
                    recorded.update(d.pk for d in done)
                    outcome, last_record = _BatchOutcome(), time.monotonic()
                if rate:
                    ahead = count / rate - (time.monotonic() - started)
                    if ahead > 0:
                        sleep(ahead)
        finally:
            # Results first: a connection that fails to close must not lose them.
            _record([d for d in batch if d.pk not in recorded], outcome, report)
            try:
                connection.close()
            except (smtplib.SMTPException, OSError, AnymailError):
                logger.warning("closing the mail connection failed", exc_info=True)
    return report


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def digest_remaining(digest: Digest) -> datetime | None:
    """When the next of the digest's unsent deliveries is due, or None if none is left."""
    rows = Delivery.objects.filter(
        digest=digest,
        status=Delivery.Status.PENDING,
        subscriber__status=Subscriber.Status.CONFIRMED,
    )
    return rows.aggregate(due=Min("next_attempt_at"))["due"]


# Providers whose batch API fills merge fields written inline in the body.
MERGE_FIELD_FORMATS = {"Mailgun": "%recipient.{}%", "SparkPost": "{{{{{}}}}}"}


def merge_field_format(connection: object) -> str | None:
    """How to write a merge field for this backend, or None to send one by one."""
    if settings.DIGEST_MERGE_FIELD_FORMAT:
        return str(settings.DIGEST_MERGE_FIELD_FORMAT)
    return MERGE_FIELD_FORMATS.get(getattr(connection, "esp_name", ""))


@dataclass
class _BatchOutcome:
    sent: set[int] = field(default_factory=set)
    retry: dict[int, str] = field(default_factory=dict)  # delivery id -> error
    failed: dict[int, str] = field(default_factory=dict)

    def fail(self, deliveries: Sequence[Delivery], error: Exception) -> None:
        target = self.retry if is_temporary(error) else self.failed
        for delivery in deliveries:
            target[delivery.pk] = describe(error)

    def handled(self) -> set[int]:
        return {*self.sent, *self.retry, *self.failed}


def _claim(digest: Digest, size: int, only: Sequence[int] | None = None) -> list[Delivery]:
    """Take up to `size` due rows; the status check makes each claim exclusive.

    Only confirmed subscribers' rows are taken: one who left, bounced or
    complained after the ledger was written gets nothing.
    """
    now = timezone.now()
    with transaction.atomic():
        due = Delivery.objects.filter(
            digest=digest,
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=now,
            subscriber__status=Subscriber.Status.CONFIRMED,
        ).order_by("id")
        if only is not None:
            due = due.filter(id__in=only)
        ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:size])
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENDING, claimed_at=now
        )
    rows = Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING, claimed_at=now)
    return list(rows.select_related("subscriber").prefetch_related("subscriber__fund_lists"))


def _personal(subscriber: Subscriber) -> emails.Personal:
    return emails.Personal(
        language=subscriber.language,
        list_ids=tuple(fl.pk for fl in subscriber.fund_lists.all()),
        unsubscribe_url=subscriber.unsubscribe_url(),
        preferences_url=subscriber.preferences_url(),
    )


def _send_one(
    connection: object, digest: Digest, delivery: Delivery, outcome: _BatchOutcome
) -> None:
    subscriber = delivery.subscriber
    message = emails.daily_digest(digest.parts, subscriber.email, _personal(subscriber))
    message.connection = connection  # type: ignore[assignment]
    try:
        message.send()
    except (smtplib.SMTPException, OSError, AnymailError) as e:
        outcome.fail([delivery], e)
        return
    outcome.sent.add(delivery.pk)


def _grouped(digest: Digest, batch: Sequence[Delivery]) -> list[list[Delivery]]:
    """Deliveries whose copies differ only in their links, together."""
    groups: dict[tuple[str, tuple[str, ...]], list[Delivery]] = {}
    for delivery in batch:
        personal = _personal(delivery.subscriber)
        key = (personal.language, tuple(emails.digest_lists(digest.parts, personal.list_ids)))
        groups.setdefault(key, []).append(delivery)
    return list(groups.values())


def _send_group(
    connection: object,
    digest: Digest,
    group: Sequence[Delivery],
    outcome: _BatchOutcome,
    field_format: str,
) -> None:
    """One provider API call for the group, with per-recipient merge data and headers."""
    recipients = [(d.subscriber.email, _personal(d.subscriber)) for d in group]
    message = emails.daily_digest_batch(digest.parts, recipients, field_format)
    message.connection = connection  # type: ignore[assignment]
    try:
        message.send()
    except (smtplib.SMTPException, OSError, AnymailError) as e:
        outcome.fail(group, e)
        return
    statuses = message.anymail_status.recipients
    for delivery in group:
        status = statuses.get(delivery.subscriber.email)
        if status is not None and status.status in ("rejected", "invalid", "failed"):
            outcome.failed[delivery.pk] = f"provider status: {status.status}"
        else:
            outcome.sent.add(delivery.pk)


def _record(batch: Sequence[Delivery], outcome: _BatchOutcome, report: SendReport) -> None:
    """Write the batch's results, a statement per outcome; unsent rows go back to pending.

    Sent rows are one UPDATE whatever their number; failures are grouped by
    their error text (a throttled batch shares one), so the queries per batch
    do not grow with the subscribers.
    """
    now = timezone.now()
    retry_at = now + timedelta(seconds=settings.DIGEST_RETRY_SECONDS)
    done = Delivery.objects.filter(pk__in=list(outcome.sent))
    report.sent += done.update(
        status=Delivery.Status.SENT,
        sent_at=now,
        attempts=F("attempts") + 1,
        last_error="",
        claimed_at=None,
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for delivery in batch:
        error = outcome.retry.get(delivery.pk) or outcome.failed.get(delivery.pk)
        if error is None:
            continue
        gave_up = (
            delivery.pk in outcome.failed or delivery.attempts + 1 >= settings.DIGEST_MAX_ATTEMPTS
        )
        outcome_status = Delivery.Status.FAILED if gave_up else Delivery.Status.PENDING
        groups.setdefault((str(outcome_status), error), []).append(delivery.pk)
        report.failed += gave_up
        report.retry += not gave_up
        report.errors.append(f"{delivery.subscriber.email}: {error}")
    for (new_status, error), ids in groups.items():
        Delivery.objects.filter(pk__in=ids).update(
            status=new_status,
            attempts=F("attempts") + 1,
            last_error=error,
            next_attempt_at=retry_at,
            claimed_at=None,
        )
    handled = outcome.handled()
    untouched = [d.pk for d in batch if d.pk not in handled]
    if untouched:  # never handed over: the batch was interrupted before them
        Delivery.objects.filter(pk__in=untouched).update(
            status=Delivery.Status.PENDING, claimed_at=None
        )


def is_temporary(error: Exception) -> bool:
    """Throttling and outages are retried; a refused address is not."""
    if isinstance(error, AnymailRecipientsRefused):
        return False
    if isinstance(error, AnymailAPIError):
        status = getattr(error, "status_code", None)
        return status is None or status == 429 or status >= 500
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in error.recipients.values()]
        return all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    return True  # disconnected, timed out, connection refused: try later


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def delivery_counts(digest: Digest) -> dict[str, int]:
    rows = digest.deliveries.values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def digest_for_date(run_date: date | None) -> date:
    """The date to send: the given one, or the latest successful run's."""
    if run_date is not None:
        return run_date
    latest = (
        SignalRun.objects.filter(status=SignalRun.Status.SUCCESS)
        .order_by("-run_date")
        .values_list("run_date", flat=True)
        .first()
    )
    if latest is None:
        raise DigestError("no successful signal run yet: run run_signals first")
    return latest
