"""django-q2 entry points for email work kept out of web requests.

A request that would wait on a mail server answers slowly, and when that
depends on the address (a confirmation goes out for a new one, nothing for a
confirmed one), the delay tells a stranger who subscribed. So the subscribe
form and the admin's resend actions only queue work; the worker sends.
"""

from __future__ import annotations

import logging
import smtplib

from anymail.exceptions import AnymailError

from subscriptions import emails
from subscriptions.models import Digest, Subscriber
from subscriptions.services import digest_send

logger = logging.getLogger(__name__)


def send_confirmation(subscriber_id: int) -> str:
    """Send the double opt-in email, if the address still waits for one."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.status != Subscriber.Status.PENDING:
        return "nothing to send: the subscriber is gone or no longer pending"
    try:
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
