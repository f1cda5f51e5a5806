"""Subscribers, the digest of each run date, and the delivery ledger."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from signals.models import FundList, SignalRun

LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]


def normalise_email(email: str) -> str:
    """Lower case, and the domain in its ASCII (punycode) spelling.

    `alice@exämple.com` and `alice@xn--exmple-cua.com` are one mailbox: one row,
    one rate-limit budget, and a provider's bounce report in either spelling
    finds it.
    """
    local, at, domain = email.strip().lower().rpartition("@")
    if not at:
        return email.strip().lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # not a valid international name: the form has refused it already
    return f"{local}@{domain}"


def new_secret() -> str:
    return secrets.token_urlsafe(16)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending confirmation")
        CONFIRMED = "confirmed", _("confirmed")
        UNSUBSCRIBED = "unsubscribed", _("unsubscribed")
        BOUNCED = "bounced", _("bounced")
        COMPLAINED = "complained", _("complained")

    # Stored lower-cased and trimmed; unique whatever the case it was typed in.
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    language = models.CharField(max_length=8, choices=LANGUAGES, default="en")
    fund_lists = models.ManyToManyField(
        FundList, blank=True, related_name="subscribers", help_text="None chosen means all lists."
    )
    actionable_only = models.BooleanField(
        default=False, help_text="Only send a digest that has a BUY or SELL in their lists."
    )
    # Rotating the secret revokes every link sent so far.
    secret = models.CharField(max_length=32, default=new_secret, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    unsubscribed_at = models.DateTimeField(null=True, blank=True, editable=False)
    suppressed_at = models.DateTimeField(null=True, blank=True, editable=False)
    status_changed_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="unique_subscriber_email"),
        ]
        indexes = [models.Index(fields=["status"], name="subscriber_status")]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)

    @property
    def is_suppressed(self) -> bool:
        """Bounced or complained: never mailed again, whatever they submit."""
        return self.status in (self.Status.BOUNCED, self.Status.COMPLAINED)

    def set_status(self, status: str) -> None:
        now = timezone.now()
        self.status = status
        self.status_changed_at = now
        if status == self.Status.CONFIRMED:
            self.confirmed_at = now
        elif status == self.Status.UNSUBSCRIBED:
            self.unsubscribed_at = now
        elif status in (self.Status.BOUNCED, self.Status.COMPLAINED):
            self.suppressed_at = now

    # --- signed links -------------------------------------------------------

    def _signer(self, purpose: str) -> signing.TimestampSigner:
        return signing.TimestampSigner(salt=f"subscriptions.{purpose}.{self.secret}")

    def make_token(self, purpose: str) -> str:
        return self._signer(purpose).sign(str(self.pk))

    @staticmethod
    def token_age(token: str) -> timedelta | None:
        """How long ago a token was made (None if it is malformed)."""
        try:
            stamp = signing.b62_decode(token.rsplit(":", 2)[1])
        except (IndexError, ValueError):
            return None
        return timedelta(seconds=max(0, int(time.time()) - stamp))

    @classmethod
    def from_token(
        cls, token: str, purpose: str, *, max_age: timedelta | None = None
    ) -> Subscriber:
        """The subscriber a token was made for; raises BadSignature (or DoesNotExist)."""
        pk = token.split(":", 1)[0]
        if not (pk.isascii() and pk.isdigit() and len(pk) <= 18):
            raise signing.BadSignature("malformed token")
        subscriber = cls.objects.get(pk=int(pk))
        value = subscriber._signer(purpose).unsign(token, max_age=max_age)
        if value != pk:
            raise signing.BadSignature("token for another subscriber")
        return subscriber

    def url(self, name: str, purpose: str) -> str:
        path = reverse(name, args=[self.make_token(purpose)])
        return settings.SITE_URL.rstrip("/") + path

    def confirm_url(self) -> str:
        return self.url("subscriptions:confirm", "confirm")

    def unsubscribe_url(self) -> str:
        return self.url("subscriptions:unsubscribe", "unsubscribe")

    def preferences_url(self) -> str:
        return self.url("subscriptions:preferences", "preferences")

    def list_ids(self) -> list[int]:
        return [fl.pk for fl in self.fund_lists.all()]

    def export(self) -> dict[str, Any]:
        """Everything stored about this subscriber, for the data download."""
        return {
            "email": self.email,
            "status": self.status,
            "language": self.language,
            "fund_lists": [fl.slug for fl in self.fund_lists.all()] or "all",
            "actionable_only": self.actionable_only,
            "created": self.created.isoformat(),
            **{
                name: value.isoformat() if value else None
                for name in (
                    "confirmation_sent_at",
                    "confirmed_at",
                    "unsubscribed_at",
                    "suppressed_at",
                    "status_changed_at",
                )  # fmt: skip
                for value in [getattr(self, name)]
            },
            "deliveries": [
                {
                    "run_date": d.digest.run_date.isoformat(),
                    "status": d.status,
                    "attempts": d.attempts,
                    "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                    "last_error": d.last_error,
                }
                for d in self.deliveries.select_related("digest").order_by("digest__run_date")
            ],
        }


class Digest(models.Model):
    """The email of one run date, rendered once and personalised per subscriber."""

    run_date = models.DateField(unique=True)
    run = models.ForeignKey(SignalRun, models.SET_NULL, null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # Rendered parts per language: {"en": {"sections": {list_id: {...}}, ...}}
    parts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-run_date"]

    def __str__(self) -> str:
        return f"Digest {self.run_date}"


class Delivery(models.Model):
    """One subscriber's copy of one digest: written before it is sent."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    digest = models.ForeignKey(Digest, models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "digest"], name="one_delivery_per_digest"
            ),
        ]
        indexes = [
            models.Index(fields=["digest", "status", "next_attempt_at"], name="delivery_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.digest.run_date} → {self.subscriber_id}: {self.status}"
