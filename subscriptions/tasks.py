"""django-q2 entry points for email work kept out of web requests.

A request that would wait on a mail server answers slowly, and when that
depends on the address (a confirmation goes out for a new one, nothing for a
confirmed one), the delay tells a stranger who subscribed. So the subscribe
form and the admin's resend actions only queue work; the worker sends.
"""

from __future__ import annotations

import logging
import smtplib
import time
from datetime import date

from anymail.exceptions import AnymailError
from django.conf import settings
from django.core.mail import mail_admins
from django.utils import timezone
from django_q.models import Schedule

from invest_alchemy.logs import run_date_context
from subscriptions import emails
from subscriptions.models import Digest, Subscriber
from subscriptions.services import SendReport, digest_remaining, digest_send

REST_NAME = "digest {day}: the rest"

logger = logging.getLogger(__name__)


def send_confirmation(subscriber_id: int) -> str:
    """Send the double opt-in email to a pending address; a confirmed one is
    told it already subscribes, with its links (a lost preferences link comes
    back this way)."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.status not in (
        Subscriber.Status.PENDING,
        Subscriber.Status.CONFIRMED,
    ):
        return "nothing to send: the subscriber is gone, unsubscribed or suppressed"
    try:
        if subscriber.status == Subscriber.Status.CONFIRMED:
            emails.already_subscribed(subscriber)  # their links, nothing changed
            return "sent: already subscribed"
        emails.confirm_subscription(subscriber)
    except (smtplib.SMTPException, OSError, AnymailError):
        # The address may subscribe again later; a retry now could mail twice.
        logger.exception("could not send the confirmation email to subscriber %s", subscriber.pk)
        return "not sent: the mail server refused or did not answer"
    return "sent"


def send_deliveries(digest_id: int, delivery_ids: list[int]) -> str:
    """Send these rows of a digest (an admin's resend); each is sent at most once."""
    digest = Digest.objects.get(pk=digest_id)
    report = digest_send(digest=digest, only=delivery_ids)
    return (
        f"digest {digest.run_date}: {report.sent} sent, {report.retry} to retry, "
        f"{report.failed} failed"
    )


def send_digest(run_date: str) -> str:
    """Send what is due of a date's digest (the rest after the first slice)."""
    started = time.monotonic()
    digest = Digest.objects.get(run_date=date.fromisoformat(run_date))
    with run_date_context(run_date):
        report, rest = digest_deliver(digest, deadline=started + settings.DIGEST_SEND_SECONDS)
        return f"digest {run_date}: {describe_report(report, rest)}"


def digest_deliver(digest: Digest, *, deadline: float) -> tuple[SendReport, str]:
    """Send until the deadline; schedule the rest; tell the admins of failures."""
    report = digest_send(digest=digest, deadline=deadline)
    due = digest_remaining(digest)
    rest = ""
    name = REST_NAME.format(day=digest.run_date)
    if due is None:
        Schedule.objects.filter(name=name).delete()
    else:
        when = max(due, timezone.now())
        Schedule.objects.update_or_create(  # one pending follow-up per digest
            name=name,
            defaults={
                "func": "subscriptions.tasks.send_digest",
                "args": repr(digest.run_date.isoformat()),
                "schedule_type": Schedule.ONCE,
                "repeats": 1,
                "next_run": when,
            },
        )
        rest = f"the rest from {timezone.localtime(when):%H:%M}"
    logger.info("digest: %s", describe_report(report, rest))
    if report.failed:
        mail_admins(
            f"Digest {digest.run_date}: {report.failed} deliveries failed",
            "These addresses were given up on (see Deliveries in the admin):\n"
            + "\n".join(report.errors[:100]),
        )
    return report, rest


def describe_report(report: SendReport, rest: str) -> str:
    parts = [f"sent to {report.sent}", f"{report.retry} to retry", f"{report.failed} failed"]
    if report.stopped:
        parts.append(f"stopped: {report.stopped}")
    if rest:
        parts.append(rest)
    return ", ".join(parts)
