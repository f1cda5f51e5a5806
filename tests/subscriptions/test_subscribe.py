from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import time_machine
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import Client, override_settings
from django_q.conf import Conf
from django_q.models import OrmQ

from subscriptions.models import Subscriber
from subscriptions.services import subscriber_confirm, subscriber_suppress
from subscriptions.tasks import send_confirmation
from tests.base import BaseTestCase

CURRENT_TIME = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
SUBSCRIBE = "/subscribe/"
SUBSCRIBED = "/subscribe/check-your-inbox/"
LINK = re.compile(r"^(https?://\S+/confirm/[^/\s]+/)$", re.MULTILINE)


def confirm_link(message) -> str:
    """The one confirmation link of an email, the same in its text and HTML parts."""
    links = LINK.findall(message.body)
    assert len(links) == 1, message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{links[0]}"' in html
    return links[0]


def without_tokens(response) -> bytes:
    """The page without its CSRF token, which is masked afresh on every response."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", response.content)


class SubscribeTestCase(BaseTestCase):
    def post(self, email="alice@example.com", client=None, **fields):
        data = {"email": email, "language": "en", "website": "", **fields}
        return (client or self.client).post(SUBSCRIBE, data)

    def test_it_shows_the_form(self):
        response = self.client.get(SUBSCRIBE)
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        self.assertContains(response, 'name="website"')
        self.assertContains(response, "Long ETF")
        self.assertContains(response, "Other ETF")

    def test_it_starts_double_opt_in(self):
        response = self.post(fund_lists=[self.other.pk], actionable_only="on", language="zh-hans")
        self.assertRedirects(response, SUBSCRIBED)
        subscriber = Subscriber.objects.get()
        self.assertEqual(subscriber.status, Subscriber.Status.PENDING)
        self.assertEqual((subscriber.language, subscriber.actionable_only), ("zh-hans", True))
        self.assertEqual(subscriber.list_ids(), [self.other.pk])
        self.assertIsNotNone(subscriber.confirmation_sent_at)
        message = mail.outbox[0]
        self.assertEqual(message.to, ["alice@example.com"])
        self.assertTrue(confirm_link(message).startswith("http://127.0.0.1:8000/confirm/"))
        self.assertIn(f"/confirm/{subscriber.pk}:", confirm_link(message))
        self.assertEqual(message.subject, "请确认您的 Invest Alchemy 订阅")  # in their language
        self.assertIn("该链接 3 天内有效", message.body)  # SUBSCRIBE_CONFIRM_DAYS
        self.assertIn(f"http://127.0.0.1:8000/preferences/{subscriber.pk}:", message.body)

    def test_it_requires_a_csrf_token(self):
        response = self.post(client=Client(enforce_csrf_checks=True))
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Subscriber.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_it_gives_bots_that_fill_the_honeypot_the_same_answer(self):
        response = self.post(website="http://spam.example.com")
        self.assertRedirects(response, SUBSCRIBED)
        self.assertFalse(Subscriber.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_it_stores_addresses_lower_cased_and_trimmed(self):
        self.post("  Alice@Example.COM ")
        self.post("ALICE@example.com")
        self.assertEqual(Subscriber.objects.get().email, "alice@example.com")
        self.assertEqual([m.to for m in mail.outbox], [["alice@example.com"]] * 2)

    def test_an_international_domain_is_one_address_in_either_spelling(self):
        self.post("Alice@Exämple.com")
        self.post("alice@xn--exmple-cua.com")
        self.assertEqual(Subscriber.objects.get().email, "alice@xn--exmple-cua.com")
        self.assertEqual(subscriber_suppress(email="alice@exämple.com", status="bounced"), 1)
        self.assertEqual(Subscriber.objects.get().status, "bounced")

    def test_it_keeps_addresses_unique_whatever_their_case(self):
        Subscriber.objects.create(email="bob@example.com")
        with self.assertRaises(IntegrityError), transaction.atomic():
            Subscriber.objects.create(email="Bob@Example.com")


class EnumerationTestCase(BaseTestCase):
    def answer(self, email):
        """Everything a visitor sees after submitting an address."""
        response = self.client.post(SUBSCRIBE, {"email": email, "language": "zh-hans"})
        page = self.client.get(response["Location"])
        return response.status_code, response["Location"], page.status_code, without_tokens(page)

    def test_it_answers_the_same_whatever_the_status_and_mails_only_to_restart_opt_in(self):
        expected = self.answer("new@example.com")
        # A confirmed address is told it already subscribes (with its own links).
        cases = {"pending": 1, "confirmed": 1, "unsubscribed": 1, "bounced": 0, "complained": 0}
        for status, mails in cases.items():
            with self.subTest(status=status):
                email = f"{status}@example.com"
                Subscriber.objects.create(email=email, status=status)
                before = len(mail.outbox)
                self.assertEqual(self.answer(email.upper()), expected)
                self.assertEqual([m.to for m in mail.outbox[before:]], [[email]] * mails)
                subscriber = Subscriber.objects.get(email=email)
                after = "pending" if status == "unsubscribed" else status
                self.assertEqual(subscriber.status, after)
        # A stranger cannot change a confirmed subscriber's preferences.
        self.assertEqual(Subscriber.objects.get(email="confirmed@example.com").language, "en")
        self.assertEqual(Subscriber.objects.count(), 6)

    def test_the_request_only_queues_the_email_so_its_timing_tells_nothing(self):
        Subscriber.objects.create(email="old@example.com", status="confirmed")
        with mock.patch.object(Conf, "SYNC", False):
            self.answer("old@example.com")
            self.assertEqual(OrmQ.objects.count(), 1)  # queued for a confirmed address too
            OrmQ.objects.all().delete()
            self.answer("new@example.com")
        self.assertEqual(mail.outbox, [])  # a mail server's delay is not in the answer
        [queued] = OrmQ.objects.all()
        self.assertEqual(queued.task["func"], "subscriptions.tasks.send_confirmation")
        # What the worker then does with it:
        self.assertEqual(send_confirmation(*queued.task["args"]), "sent")
        self.assertEqual([m.to for m in mail.outbox], [["new@example.com"]])
        subscriber = Subscriber.objects.get(email="new@example.com")
        subscriber_confirm(subscriber=subscriber)
        subscriber.set_status(Subscriber.Status.UNSUBSCRIBED)
        subscriber.save()
        self.assertIn("nothing to send", send_confirmation(subscriber.pk))  # left meanwhile
        self.assertEqual(len(mail.outbox), 1)

    def test_a_confirmed_address_gets_its_own_links_back_and_nothing_changes(self):
        subscriber = Subscriber.objects.create(
            email="old@example.com", status="confirmed", language="zh-hans"
        )
        self.answer("old@example.com")
        [message] = mail.outbox
        self.assertEqual(message.to, ["old@example.com"])
        self.assertEqual(message.subject, "你已在接收 Invest Alchemy 信号")
        self.assertIn(subscriber.preferences_url().rsplit(":", 2)[0], message.body)
        self.assertIn("/unsubscribe/", message.body)
        self.assertNotIn("/confirm/", message.body)
        subscriber.refresh_from_db()
        self.assertEqual((subscriber.status, subscriber.language), ("confirmed", "zh-hans"))

    def test_coming_back_after_leaving_brings_new_links(self):
        subscriber = Subscriber.objects.create(email="back@example.com", status="unsubscribed")
        old_secret = subscriber.secret
        self.answer("back@example.com")
        subscriber.refresh_from_db()
        self.assertEqual(subscriber.status, "pending")
        self.assertNotEqual(subscriber.secret, old_secret)  # old links no longer work


class RateLimitTestCase(BaseTestCase):
    def post(self, email, ip="192.0.2.1"):
        return self.client.post(SUBSCRIBE, {"email": email, "language": "en"}, REMOTE_ADDR=ip)

    @override_settings(SUBSCRIBE_RATE_PER_IP="2/h")
    def test_it_limits_requests_per_ip(self):
        self.assertEqual(self.post("a@example.com").status_code, 302)
        self.assertEqual(self.post("not an address").status_code, 400)  # counts too
        response = self.post("c@example.com")
        self.assertContains(response, "Please wait a little", status_code=429)
        self.assertFalse(Subscriber.objects.filter(email="c@example.com").exists())
        self.assertEqual(self.post("c@example.com", ip="192.0.2.2").status_code, 302)
        self.assertEqual(len(mail.outbox), 2)

    def test_it_limits_confirmation_emails_per_address_per_day(self):
        with time_machine.travel(CURRENT_TIME, tick=False) as traveller:
            for n in range(3):
                self.assertEqual(self.post("Alice@example.com", ip=f"192.0.2.{n}").status_code, 302)
            response = self.post("alice@example.com ", ip="192.0.2.9")
            self.assertContains(response, "Please wait a little", status_code=429)
            self.assertEqual(len(mail.outbox), 3)
            traveller.shift(timedelta(days=1, seconds=1))
            self.assertEqual(self.post("alice@example.com").status_code, 302)
            self.assertEqual(len(mail.outbox), 4)

    @override_settings(SUBSCRIBE_CONFIRMATIONS_PER_DAY=1)
    def test_it_shows_the_same_limit_page_whatever_the_status(self):
        pages = set()
        for status in ["new", *Subscriber.Status.values]:
            email = f"{status}@example.com"
            if status != "new":
                Subscriber.objects.create(email=email, status=status)
            self.assertEqual(self.post(email).status_code, 302)
            response = self.post(email)
            self.assertEqual(response.status_code, 429)
            pages.add(without_tokens(response))
        self.assertEqual(len(pages), 1)


@override_settings(SUBSCRIBE_RATE_PER_IP="1000/h", SUBSCRIBE_CONFIRMATIONS_PER_DAY=1000)
class BadInputTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.client.raise_request_exception = False  # a crash shows as a 500

    def assertRejected(self, data, field=None):
        response = self.client.post(SUBSCRIBE, data)
        self.assertEqual(response.status_code, 400)
        self.assertTemplateUsed(response, "subscriptions/subscribe.html")
        self.assertContains(response, '<form method="post"', status_code=400)
        if field:
            self.assertIn(field, response.context["form"].errors)
        self.assertFalse(Subscriber.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_it_rejects_bad_addresses(self):
        addresses = [
            "", "   ", "alice", "alice@", "@example.com", "alice@@example.com", "alice@example",
            "alice example@example.com", "alice@exa mple.com", '"alice"@[300.0.0.1]',
            "a" * 243 + "@example.com",  # 255 characters
            "alice@" + "a" * 64 + ".com",  # a 64-character domain label
            "alice@example.com\r\nBcc: mallory@example.com",
            "alice@example.com\nBcc: mallory@example.com", "alice\r@example.com",
            "alice@example.com%0d%0aBcc:mallory@example.com",
            "alice@example.com, mallory@example.com",
            "Alice <alice@example.com>", "alice@example.com\x00", "alice\t@example.com",
            "ali\u200bce@example.com",  # zero-width space
            "alice\u202e@example.com",  # right-to-left override
            "alice\u2028@example.com",  # line separator
            "alice\ufeff@example.com",  # byte order mark
            "alice\uff20example.com",  # fullwidth @
            "\u0430lice@example.com",  # Cyrillic а
        ]  # fmt: skip
        for email in addresses:
            with self.subTest(email=email):
                self.assertRejected({"email": email, "language": "en"}, "email")

    def test_it_rejects_missing_fields_unknown_lists_and_languages(self):
        ok = {"email": "alice@example.com", "language": "en"}
        bad_lists = ["99999", "abc", "-1", "9" * 30, ""]
        cases = [
            ({"language": "en"}, "email"), ({"email": "alice@example.com"}, "language"),
            ({**ok, "language": "fr"}, "language"), ({**ok, "language": ""}, "language"),
            *[({**ok, "fund_lists": value}, "fund_lists") for value in bad_lists],
            ({}, None),
        ]  # fmt: skip
        for data, field in cases:
            with self.subTest(data=data):
                self.assertRejected(data, field)

    def test_it_rejects_addresses_that_cannot_be_mailed(self):
        addresses = [
            # Django's validator alone lets ı, ſ, İ and K into the local part (an
            # re.IGNORECASE quirk); servers refuse them without SMTPUTF8.
            "\u0131@example.com",
            "\u017f@example.com",
            "\u0131" * 30 + "@example.com",
            "alice@" + "\u00e9" * 60 + ".com",  # its IDNA label would be over 63 octets
            # 225 characters as typed, 425 once lower-cased ("İ".lower() is "i\u0307").
            "a@" + ".".join(["\u0130" * 10] * 20) + ".com",
        ]
        for email in addresses:
            with self.subTest(email=email):
                self.assertRejected({"email": email, "language": "en"}, "email")

    def test_it_allows_only_get_and_post(self):
        for method in ["put", "patch", "delete"]:
            with self.subTest(method=method):
                response = getattr(self.client, method)(SUBSCRIBE, "email=alice@example.com")
                self.assertEqual(response.status_code, 405)
        self.assertFalse(Subscriber.objects.exists())
        self.assertEqual(mail.outbox, [])


class ProxyTestCase(BaseTestCase):
    def test_behind_a_proxy_the_limit_is_per_client_not_per_proxy(self):
        from django.test import override_settings

        with override_settings(
            SUBSCRIBE_RATE_PER_IP="1/h", RATELIMIT_IP_META_KEY="subscriptions.views.client_ip"
        ):
            for n, client_ip in enumerate(["198.51.100.1", "198.51.100.2"]):
                response = self.client.post(
                    "/subscribe/",
                    {"email": f"p{n}@example.com", "language": "en"},
                    REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR=f"203.0.113.9, {client_ip}",
                )
                self.assertEqual(response.status_code, 302)
            again = self.client.post(
                "/subscribe/",
                {"email": "p3@example.com", "language": "en"},
                REMOTE_ADDR="10.0.0.1",
                HTTP_X_FORWARDED_FOR="198.51.100.1",
            )
            self.assertEqual(again.status_code, 429)
