"""Provider tracking webhooks: anymail authenticates and parses, we suppress.

Payloads follow each provider's documented format as anymail parses it:
Mailgun in anymail/webhooks/mailgun.py (MailgunBaseWebhookView.validate_request,
MailgunTrackingWebhookView.esp_to_anymail_event), Postmark in
anymail/webhooks/postmark.py (PostmarkTrackingWebhookView.esp_to_anymail_event).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date
from typing import Any

from django.http import HttpResponse
from django.test import TestCase, override_settings
from django.urls import reverse

from subscriptions.models import Delivery, Digest, Subscriber

SECRET = "hook:s3cret"
SIGNING_KEY = "key-mailgun-signing"
ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
EMAIL = "reader@example.com"


def basic_auth(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


AUTH = basic_auth(SECRET)
BAD_AUTHS = [None, basic_auth("hook:wrong"), basic_auth("other:s3cret"), "Basic !!!", "Bearer x"]


class ProviderTestCase(TestCase):
    """A confirmed reader with a pending delivery; subclasses name the webhook."""

    url_name = ""

    def setUp(self) -> None:
        self.client.raise_request_exception = False  # a crash must show as a 500
        self.subscriber = Subscriber.objects.create(email=EMAIL, status=Subscriber.Status.CONFIRMED)
        self.digest = Digest.objects.create(run_date=date(2023, 6, 8), parts={})
        Delivery.objects.create(digest=self.digest, subscriber=self.subscriber)

    def post(self, payload: Any, auth: str | None = AUTH) -> HttpResponse:
        data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
        url = reverse(f"anymail:{self.url_name}")
        return self.client.post(url, data=data, content_type="application/json", **extra)

    def assert_status(self, status: str) -> None:
        self.subscriber.refresh_from_db()
        self.assertEqual(self.subscriber.status, status)
        pending = Delivery.objects.filter(subscriber=self.subscriber, status="pending")
        if status == Subscriber.Status.CONFIRMED:
            self.assertIsNone(self.subscriber.suppressed_at)
            self.assertEqual(pending.count(), 1)
        else:
            self.assertFalse(pending.exists())
        if status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
            self.assertIsNotNone(self.subscriber.suppressed_at)

    def assert_rejected(self, response: HttpResponse) -> None:
        self.assertTrue(400 <= response.status_code < 500, response.status_code)
        self.assert_status(Subscriber.Status.CONFIRMED)


def mailgun(event: str, recipient: str = EMAIL, key: str = SIGNING_KEY, **data: Any) -> dict:
    """A signed Mailgun webhook (JSON, "signature" + "event-data" blocks)."""
    timestamp, token = "1686211200", "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "event": event,
            "timestamp": 1686211200.25,
            "id": "CPgfbmQMTCKtHW6uIWtuVe",
            "recipient": recipient,
            "tags": [],
            "user-variables": {},
            "message": {"headers": {"message-id": "20230608.1.ABC@mg.example.com"}},
            **data,
        },
    }


PERMANENT = {
    "severity": "permanent",
    "reason": "bounce",
    "delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""},
}


@override_settings(ANYMAIL=ANYMAIL, ANYMAIL_PROVIDER="mailgun")
class MailgunWebhookTestCase(ProviderTestCase):
    url_name = "mailgun_tracking_webhook"

    def test_it_bounces_on_a_permanent_failure(self) -> None:
        self.assertEqual(self.post(mailgun("failed", **PERMANENT)).status_code, 200)
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_ignores_a_temporary_failure(self) -> None:
        temporary = mailgun("failed", severity="temporary", reason="generic")
        self.assertEqual(self.post(temporary).status_code, 200)
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_marks_a_complaint(self) -> None:
        self.assertEqual(self.post(mailgun("complained")).status_code, 200)
        self.assert_status(Subscriber.Status.COMPLAINED)

    def test_it_unsubscribes(self) -> None:
        self.assertEqual(self.post(mailgun("unsubscribed")).status_code, 200)
        self.assert_status(Subscriber.Status.UNSUBSCRIBED)

    def test_it_ignores_delivered_and_opened(self) -> None:
        for event in ("delivered", "opened", "clicked"):
            self.assertEqual(self.post(mailgun(event)).status_code, 200)
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_ignores_an_address_that_is_not_subscribed(self) -> None:
        response = self.post(mailgun("failed", recipient="stranger@example.com", **PERMANENT))
        self.assertEqual(response.status_code, 200)
        self.assertFalse(Subscriber.objects.filter(email="stranger@example.com").exists())
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_matches_the_email_case_insensitively(self) -> None:
        self.post(mailgun("complained", recipient=" Reader@EXAMPLE.com"))
        self.assert_status(Subscriber.Status.COMPLAINED)

    def test_it_keeps_a_bounced_subscriber_bounced(self) -> None:
        self.post(mailgun("failed", **PERMANENT))
        self.assertEqual(self.post(mailgun("unsubscribed")).status_code, 200)
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_rejects_missing_or_wrong_basic_auth(self) -> None:
        for auth in BAD_AUTHS:
            with self.subTest(auth=auth), self.assertLogs("django.security", "ERROR"):
                self.assert_rejected(self.post(mailgun("complained"), auth=auth))

    def test_it_rejects_a_bad_signature(self) -> None:
        with self.assertLogs("django.security", "ERROR"):
            self.assert_rejected(self.post(mailgun("complained", key="not-the-key")))

    def test_it_rejects_a_payload_it_cannot_verify(self) -> None:
        unsigned = mailgun("complained")
        del unsigned["signature"]
        for payload in ("{not json", unsigned):
            with self.subTest(payload=payload), self.assertLogs("django.security", "ERROR"):
                self.assert_rejected(self.post(payload))

    def test_it_rejects_a_malformed_payload(self) -> None:
        no_data = mailgun("complained")
        del no_data["event-data"]
        bad_time = mailgun("complained", timestamp="yesterday")
        for payload in ([], ["complained", EMAIL], no_data, bad_time):
            with self.subTest(payload=payload), self.assertLogs("subscriptions.webhooks"):
                self.assert_rejected(self.post(payload))

    def test_it_rejects_an_out_of_range_timestamp(self) -> None:
        # BUG: float(1e300) overflows datetime.fromtimestamp with OverflowError,
        # which guard() does not catch, so the view answers 500.
        with self.assertLogs("subscriptions.webhooks"):
            self.assert_rejected(self.post(mailgun("complained", timestamp=1e300)))


def postmark(record_type: str, **fields: Any) -> dict:
    """A Postmark webhook as its docs show it (one JSON object per event)."""
    return {
        "RecordType": record_type,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "Metadata": {},
        **fields,
    }


def bounce(kind: str = "HardBounce", email: Any = EMAIL) -> dict:
    return postmark(
        "Bounce", ID=4323372036854775807, Type=kind, Email=email, Inactive=True,
        BouncedAt="2023-06-08T16:33:54.9070259Z", Description="Unknown user", Details="550",
    )  # fmt: skip


def subscription_change(reason: str, email: str = EMAIL) -> dict:
    return postmark(
        "SubscriptionChange", Recipient=email, Origin="Recipient", SuppressSending=True,
        SuppressionReason=reason, ChangedAt="2023-06-08T10:53:34.416071Z",
    )  # fmt: skip


SPAM = postmark(
    "SpamComplaint", ID=42, Type="SpamComplaint", TypeCode=512, Email=EMAIL,
    BouncedAt="2023-06-08T16:33:54Z",
)  # fmt: skip


@override_settings(ANYMAIL=ANYMAIL, ANYMAIL_PROVIDER="postmark")
class PostmarkWebhookTestCase(ProviderTestCase):
    url_name = "postmark_tracking_webhook"

    def test_it_bounces_on_a_hard_bounce(self) -> None:
        self.assertEqual(self.post(bounce()).status_code, 200)
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_ignores_a_soft_bounce(self) -> None:
        # BUG: anymail maps Postmark's SoftBounce (mailbox full, ...) to "bounced",
        # and suppress_on_tracking suppresses the reader for good.
        self.assertEqual(self.post(bounce("SoftBounce")).status_code, 200)
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_marks_a_complaint(self) -> None:
        self.assertEqual(self.post(SPAM).status_code, 200)
        self.assert_status(Subscriber.Status.COMPLAINED)

    def test_it_unsubscribes(self) -> None:
        self.assertEqual(self.post(subscription_change("ManualSuppression")).status_code, 200)
        self.assert_status(Subscriber.Status.UNSUBSCRIBED)

    def test_it_bounces_on_a_hard_bounce_suppression(self) -> None:
        self.post(subscription_change("HardBounce"))
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_ignores_delivered_and_opened(self) -> None:
        delivered = postmark("Delivery", Recipient=EMAIL, DeliveredAt="2023-06-08T16:33:54Z")
        opened = postmark("Open", Recipient=EMAIL, FirstOpen=True, ReceivedAt="2023-06-08T17:00Z")
        for payload in (delivered, opened):
            self.assertEqual(self.post(payload).status_code, 200)
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_ignores_an_address_that_is_not_subscribed(self) -> None:
        self.assertEqual(self.post(bounce(email="stranger@example.com")).status_code, 200)
        self.assertFalse(Subscriber.objects.filter(email="stranger@example.com").exists())
        self.assert_status(Subscriber.Status.CONFIRMED)

    def test_it_matches_the_email_case_insensitively(self) -> None:
        self.post(bounce(email="READER@Example.Com"))
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_matches_a_subscriber_stored_in_mixed_case(self) -> None:
        # A row written as typed (by hand, or before addresses were normalised).
        Subscriber.objects.filter(pk=self.subscriber.pk).update(email="Reader@Example.com")
        self.post(bounce(email="reader@example.com"))
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_keeps_a_bounced_subscriber_bounced(self) -> None:
        self.post(bounce())
        self.assertEqual(self.post(subscription_change("ManualSuppression")).status_code, 200)
        self.assert_status(Subscriber.Status.BOUNCED)

    def test_it_rejects_missing_or_wrong_basic_auth(self) -> None:
        for auth in BAD_AUTHS:
            with self.subTest(auth=auth), self.assertLogs("django.security", "ERROR"):
                self.assert_rejected(self.post(bounce(), auth=auth))

    def test_it_rejects_a_malformed_payload(self) -> None:
        wrong_types = [bounce(email=42), bounce(kind=["x"])]
        for payload in ["{not json", b"\xff\xfe{}", [SPAM], "null", *wrong_types]:
            with self.subTest(payload=payload), self.assertLogs("subscriptions.webhooks"):
                self.assert_rejected(self.post(payload))

    def test_it_ignores_an_event_it_does_not_know(self) -> None:
        # anymail reads an object without RecordType as an "unknown" event: a 200.
        for payload in ({}, {"Email": EMAIL}, postmark("Bounce")):
            self.assertEqual(self.post(payload).status_code, 200)
        self.assert_status(Subscriber.Status.CONFIRMED)


class WebhookExposureTestCase(TestCase):
    """Only the configured provider's webhook exists, and only with a secret."""

    def setUp(self):
        self.reader = Subscriber.objects.create(email="victim@example.com", status="confirmed")
        self.spam = {"event": "spam", "email": "victim@example.com"}

    def post(self, name):
        return self.client.post(
            reverse(f"anymail:{name}_tracking_webhook"),
            data=json.dumps(self.spam),
            content_type="application/json",
        )

    def test_without_a_secret_every_webhook_is_404(self):
        with override_settings(ANYMAIL={}, ANYMAIL_PROVIDER="brevo"):
            self.assertEqual(self.post("brevo").status_code, 404)
        self.reader.refresh_from_db()
        self.assertEqual(self.reader.status, "confirmed")

    def test_another_providers_webhook_is_404(self):
        with override_settings(ANYMAIL={"WEBHOOK_SECRET": SECRET}, ANYMAIL_PROVIDER="mailgun"):
            self.assertEqual(self.post("brevo").status_code, 404)
        self.reader.refresh_from_db()
        self.assertEqual(self.reader.status, "confirmed")

    def test_a_brevo_soft_bounce_keeps_the_reader(self):
        auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
        payload = {"event": "soft_bounce", "email": "victim@example.com", "reason": "mailbox full"}
        with override_settings(ANYMAIL={"WEBHOOK_SECRET": SECRET}, ANYMAIL_PROVIDER="brevo"):
            response = self.client.post(
                reverse("anymail:brevo_tracking_webhook"),
                data=json.dumps(payload),
                content_type="application/json",
                HTTP_AUTHORIZATION=auth,
            )
        self.assertEqual(response.status_code, 200)
        self.reader.refresh_from_db()
        self.assertEqual(self.reader.status, "confirmed")
