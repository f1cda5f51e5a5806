"""The whole subscriber journey against a real SMTP server on loopback."""

import re

import pytest
from django.conf import settings
from django.test import Client

from subscriptions.models import Subscriber
from tests.base import TushareTestCase, run_command


def link(message, kind: str) -> str:
    """The path of a link in the plain-text part, as a mail client shows it."""
    text = message.get_body(("plain",)).get_content()
    url = re.search(rf"{re.escape(settings.SITE_URL)}(/{kind}/\S+/)", text)
    assert url, text
    return url.group(1)


class JourneyTestCase(TushareTestCase):
    @pytest.fixture(autouse=True)
    def _smtp(self, smtp):
        self.smtp = smtp

    def test_subscribe_confirm_receive_unsubscribe_receive_nothing(self):
        response = self.client.post(
            "/subscribe/", {"email": "Reader@Example.com", "language": "en", "website": ""}
        )
        self.assertRedirects(response, "/subscribe/check-your-inbox/")

        [confirmation] = self.smtp.to("reader@example.com")
        self.assertEqual(confirmation["Subject"], "Confirm your Invest Alchemy subscription")
        html = confirmation.get_body(("html",)).get_content()
        confirm_path = link(confirmation, "confirm")
        self.assertIn(confirm_path, html)

        page = self.client.get(confirm_path)  # what a scanner or a person opens
        self.assertContains(page, "<button")
        self.assertEqual(Subscriber.objects.get().status, Subscriber.Status.PENDING)
        self.client.post(confirm_path)
        self.assertEqual(Subscriber.objects.get().status, Subscriber.Status.CONFIRMED)

        run_command("run_signals", date="2023-06-08", send=True)
        confirmation, digest = self.smtp.to("reader@example.com")
        self.assertEqual(digest["Subject"], "ETF signals 2023-06-08: 0 BUY, 0 SELL")
        self.assertEqual(digest.get_content_type(), "multipart/alternative")
        text = digest.get_body(("plain",)).get_content()
        html = digest.get_body(("html",)).get_content()
        for body in (text, html):
            self.assertIn("沪深300ETF (510300.SH) EMPTY since 2023-04-27 (42 days), -3.96%", body)
            self.assertLess(body.index("Long ETF"), body.index("Other ETF"))
        unsubscribe_url = re.sub(r"\s+", "", str(digest["List-Unsubscribe"])).strip("<>")
        self.assertEqual(digest["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
        self.assertIn(unsubscribe_url, text)

        # The mail client's one-click POST: no cookies, no CSRF token.
        one_click = Client(enforce_csrf_checks=True).post(
            unsubscribe_url.removeprefix(settings.SITE_URL),
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        self.assertEqual(one_click.status_code, 200)
        self.assertEqual(Subscriber.objects.get().status, Subscriber.Status.UNSUBSCRIBED)

        run_command("run_signals", date="2023-06-07", send=True)
        self.assertEqual(len(self.smtp.to("reader@example.com")), 2)
