"""Provider tracking webhooks: bounces, complaints and unsubscribes stop mail for good.

django-anymail authenticates and parses each provider's payload (basic auth
with ANYMAIL["WEBHOOK_SECRET"], plus the provider's signature where it has
one) and sends its normalised `tracking` signal, which lands here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import URLPattern

from subscriptions.models import Subscriber
from subscriptions.services import subscriber_suppress

logger = logging.getLogger(__name__)

# Bounces some providers report that say "try later", not "no such mailbox".
TRANSIENT_BOUNCES = {
    "SoftBounce",
    "Transient",
    "DnsError",
    "AutoResponder",
    "ChallengeVerification",
}
SUPPRESSING_EVENTS = {
    "bounced": Subscriber.Status.BOUNCED,
    "complained": Subscriber.Status.COMPLAINED,
    "unsubscribed": Subscriber.Status.UNSUBSCRIBED,
}


@receiver(tracking)
def suppress_on_tracking(
    sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    status = SUPPRESSING_EVENTS.get(event.event_type)
    if status == Subscriber.Status.BOUNCED and _is_transient(event):
        logger.info("%s webhook: transient bounce for %s ignored", esp_name, event.recipient)
        return
    if status and event.recipient:
        count = subscriber_suppress(email=event.recipient, status=status)
        logger.info(
            "%s webhook: %s for %s (%d subscriber)",
            esp_name,
            event.event_type,
            event.recipient,
            count,
        )


def _is_transient(event: AnymailTrackingEvent) -> bool:
    """A bounce that says "try later": Postmark's Type, SES's bounceType, Brevo's event."""
    raw = event.esp_event
    if not isinstance(raw, dict):
        return False
    bounce = raw.get("bounce")
    ses_type = bounce.get("bounceType") if isinstance(bounce, dict) else None
    return (
        raw.get("Type") in TRANSIENT_BOUNCES
        or ses_type == "Transient"
        or raw.get("event") in ("soft_bounce", "deferred")
    )


def guard(view: Callable[..., HttpResponse], esp: str) -> Callable[..., HttpResponse]:
    """Only the configured provider's webhook, only with a secret; never a 500.

    Without ANYMAIL["WEBHOOK_SECRET"] anymail would accept anyone's request,
    so the webhook answers 404 until one is set, as it does for a provider
    other than ANYMAIL_PROVIDER. A payload the parser chokes on is a logged 400.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if esp != settings.ANYMAIL_PROVIDER or not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            logger.warning(
                "webhook %s refused: not the configured provider, or no secret", request.path
            )
            raise Http404("no such webhook")
        try:
            return view(request, *args, **kwargs)
        except (SuspiciousOperation, DatabaseError):
            raise  # a failed authentication is already a logged 400; an outage a 500 to retry
        except Exception as e:  # whatever a provider's parser chokes on is the payload's fault
            logger.warning("rejected webhook %s: %s: %s", request.path, type(e).__name__, e)
            return HttpResponseBadRequest("Malformed webhook payload")

    return wrapper


def urlpatterns() -> list[URLPattern]:
    """anymail's webhook URLs, each view guarded."""
    return [
        URLPattern(
            p.pattern,
            guard(p.callback, str(p.name).removesuffix("_tracking_webhook")),
            p.default_args,
            p.name,
        )
        for p in anymail_urls.urlpatterns
        if isinstance(p, URLPattern) and str(p.name).endswith("_tracking_webhook")
    ]
