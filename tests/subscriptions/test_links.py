from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import time_machine
from django.core import mail
from django.test import Client, override_settings

from subscriptions.models import Delivery, Digest, Subscriber, new_secret
from tests.base import BaseTestCase
from tests.subscriptions.test_subscribe import SUBSCRIBE, confirm_link

CURRENT_TIME = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
SCRIPT = "data-autosubmit"
# Every page a preferences link opens: (method, suffix of the link).
PREFERENCE_PAGES = [("get", ""), ("post", ""), ("get", "data.json"), ("post", "delete/")]


def paths(subscriber: Subscriber) -> list[str]:
    """A subscriber's confirm, unsubscribe and preferences links, as paths."""
    urls = [subscriber.confirm_url(), subscriber.unsubscribe_url(), subscriber.preferences_url()]
    return [urlsplit(url).path for url in urls]


def make_subscriber(email="alice@example.com", **fields) -> Subscriber:
    return Subscriber.objects.create(email=email, **fields)


def flip(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def forged(token: str) -> list[str]:
    """Links that look like `token` but were not signed by us."""
    pk, stamp, signature = token.split(":")
    return [
        f"{pk}:{stamp}:{flip(signature)}", f"{pk}:{flip(stamp)}:{signature}", f"{pk}:{stamp}",
        pk, "abc", "-1:x:y", "\u00b2:x:y",  # superscript two passes str.isdigit()
    ]  # fmt: skip


class ConfirmTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        traveller = time_machine.travel(CURRENT_TIME, tick=False)
        traveller.start()
        self.addCleanup(traveller.stop)
        self.client.post(SUBSCRIBE, {"email": "alice@example.com", "language": "en"})
        self.subscriber = Subscriber.objects.get()
        self.url = urlsplit(confirm_link(mail.outbox[-1])).path

    def status(self) -> str:
        return Subscriber.objects.get(pk=self.subscriber.pk).status

    def open(self, delay: timedelta, method="get"):
        with time_machine.travel(CURRENT_TIME + delay, tick=False):
            return getattr(self.client, method)(self.url)

    def test_it_shows_a_confirm_button_and_changes_nothing_on_get(self):
        response = self.open(timedelta(seconds=5))
        self.assertContains(response, '<form method="post" id="confirm-form">')
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        self.assertNotContains(response, SCRIPT)
        self.assertEqual(self.status(), "pending")

    def test_it_confirms_on_post_with_the_pages_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        self.assertEqual(client.post(self.url).status_code, 403)
        page = client.get(self.url)
        token = page.context["csrf_token"]
        response = client.post(self.url, {"csrfmiddlewaretoken": str(token)})
        self.assertContains(response, "You are subscribed")
        subscriber = Subscriber.objects.get()
        self.assertEqual(subscriber.status, "confirmed")
        self.assertIsNotNone(subscriber.confirmed_at)
        self.assertContains(self.client.post(self.url), "You are subscribed")  # idempotent
        self.assertEqual(Subscriber.objects.get().confirmed_at, subscriber.confirmed_at)
        self.assertContains(self.client.get(self.url), "is already confirmed")

    def test_it_submits_itself_only_when_opened_late_enough(self):
        self.assertNotContains(self.open(timedelta(seconds=599)), SCRIPT)
        self.assertContains(self.open(timedelta(seconds=600)), SCRIPT)
        self.assertContains(self.open(timedelta(days=2)), SCRIPT)
        with self.settings(SUBSCRIBE_AUTOCONFIRM_AFTER=120):
            self.assertNotContains(self.open(timedelta(seconds=119)), SCRIPT)
            self.assertContains(self.open(timedelta(seconds=120)), SCRIPT)
        self.assertEqual(self.status(), "pending")

    def test_it_expires_after_subscribe_confirm_days(self):
        self.assertEqual(self.open(timedelta(days=3)).status_code, 200)
        for method in ["get", "post"]:
            response = self.open(timedelta(days=3, seconds=1), method)
            self.assertContains(response, "This link has expired", status_code=410)
        self.assertEqual(self.status(), "pending")
        with override_settings(SUBSCRIBE_CONFIRM_DAYS=1):
            self.assertEqual(self.open(timedelta(days=1, seconds=1)).status_code, 410)

    def test_it_rejects_tampered_and_foreign_tokens(self):
        bob = make_subscriber("bob@example.com")
        token = self.url.split("/")[-2]
        _pk, stamp, signature = token.split(":")
        others = [
            f"{bob.pk}:{stamp}:{signature}", "9" * 30 + f":{stamp}:{signature}",
            self.subscriber.make_token("unsubscribe"), self.subscriber.make_token("preferences"),
        ]  # fmt: skip
        self.client.raise_request_exception = False
        for bad in forged(token) + others:
            for method in ["get", "post"]:
                with self.subTest(token=bad, method=method):
                    response = getattr(self.client, method)(f"/confirm/{bad}/")
                    self.assertContains(response, "This link does not work", status_code=400)
        self.assertEqual(set(Subscriber.objects.values_list("status", flat=True)), {"pending"})

    def test_it_rejects_the_link_of_a_deleted_subscriber(self):
        self.subscriber.delete()
        self.assertContains(self.client.post(self.url), "does not work", status_code=400)

    def test_it_leaves_unsubscribed_and_suppressed_subscribers_alone(self):
        for status in ["unsubscribed", "bounced", "complained"]:
            with self.subTest(status=status):
                Subscriber.objects.filter(pk=self.subscriber.pk).update(status=status)
                self.assertContains(self.client.post(self.url), "no longer active")
                self.assertEqual(self.status(), status)


class SignedLinksTestCase(BaseTestCase):
    def test_it_revokes_every_earlier_link_when_the_secret_rotates(self):
        subscriber = make_subscriber()
        confirm, unsubscribe, preferences = paths(subscriber)
        subscriber.secret = new_secret()
        subscriber.save()
        requests = [(method, url) for url in [confirm, unsubscribe] for method in ["get", "post"]]
        requests += [(method, preferences + suffix) for method, suffix in PREFERENCE_PAGES]
        for method, url in requests:
            with self.subTest(method=method, url=url):
                response = getattr(self.client, method)(url)
                self.assertContains(response, "does not work", status_code=400)
        self.assertEqual(Subscriber.objects.get().status, "pending")
        self.assertEqual(self.client.get(paths(subscriber)[0]).status_code, 200)

    def test_it_answers_wrong_methods_with_405_and_changes_nothing(self):
        subscriber = make_subscriber()
        wrong = [(m, url) for url in paths(subscriber) for m in ["put", "patch", "delete"]]
        preferences = paths(subscriber)[2]
        wrong += [("post", preferences + "data.json"), ("get", preferences + "delete/")]
        for method, url in wrong:
            with self.subTest(method=method, url=url):
                self.assertEqual(getattr(self.client, method)(url).status_code, 405)
        self.assertEqual(Subscriber.objects.get().status, "pending")


def main_of(response) -> str:
    """The page's <main>: what it says, without the URL-carrying header and footer."""
    return response.content.decode().split("<main", 1)[1].split("</main>", 1)[0]


class UnsubscribeTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.subscriber = make_subscriber(status="confirmed")
        self.url = paths(self.subscriber)[1]
        self.client = Client(enforce_csrf_checks=True)

    def one_click(self):
        body = "List-Unsubscribe=One-Click"
        return self.client.post(self.url, body, content_type="application/x-www-form-urlencoded")

    def test_it_shows_one_button_and_changes_nothing_on_get(self):
        response = self.client.get(self.url)
        self.assertEqual(main_of(response).count("<button"), 1)
        self.assertContains(response, '<form method="post">', count=1)
        self.assertContains(response, "alice@example.com")
        self.assertEqual(Subscriber.objects.get().status, "confirmed")

    def test_it_unsubscribes_with_one_click_without_csrf_and_is_idempotent(self):
        digest = Digest.objects.create(run_date=date(2024, 6, 3))
        Delivery.objects.create(digest=digest, subscriber=self.subscriber)
        self.assertContains(self.one_click(), "You are unsubscribed")
        subscriber = Subscriber.objects.get()
        self.assertEqual(subscriber.status, "unsubscribed")
        self.assertFalse(Delivery.objects.exists())  # the pending delivery is not sent
        self.assertContains(self.one_click(), "You are unsubscribed")
        self.assertContains(self.client.post(self.url), "You are unsubscribed")  # the button
        self.assertEqual(Subscriber.objects.get().unsubscribed_at, subscriber.unsubscribed_at)

    def test_a_deleted_subscribers_link_no_longer_works(self):
        self.subscriber.delete()
        self.assertContains(self.client.get(self.url), "does not work", status_code=400)
        self.assertContains(self.one_click(), "does not work", status_code=400)

    def test_a_link_cut_short_or_tampered_with_says_so_and_changes_nothing(self):
        # Never "you are unsubscribed" while the digests keep coming; and the same
        # page as for an unknown subscriber, so nobody learns which ids exist.
        self.client.raise_request_exception = False
        unknown = self.client.post("/unsubscribe/987654:x:y/")
        token = self.url.split("/")[-2]
        bad_tokens = forged(token) + [token[:-5], self.subscriber.make_token("confirm")]
        for bad in bad_tokens:
            with self.subTest(token=bad):
                response = self.client.post(f"/unsubscribe/{bad}/")
                self.assertContains(response, "does not work", status_code=400)
                self.assertEqual(main_of(response), main_of(unknown))
        self.assertEqual(Subscriber.objects.get().status, "confirmed")

    def test_it_keeps_bounced_and_complained_subscribers_suppressed(self):
        for status in ["bounced", "complained"]:
            with self.subTest(status=status):
                Subscriber.objects.filter(pk=self.subscriber.pk).update(status=status)
                self.assertContains(self.one_click(), "You are unsubscribed")
                self.assertEqual(Subscriber.objects.get().status, status)


class PreferencesTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.subscriber = make_subscriber(status="confirmed", language="en")
        self.subscriber.fund_lists.set([self.long])
        self.url = paths(self.subscriber)[2]

    def test_it_shows_the_current_preferences_and_the_data_links(self):
        response = self.client.get(self.url)
        self.assertEqual(response.context["form"].initial["language"], "en")
        self.assertContains(response, f'value="{self.long.pk}" id="id_fund_lists_0" checked')
        self.assertContains(response, f'href="{self.url}data.json"')
        self.assertContains(response, f'action="{self.url}delete/"')

    def test_it_changes_lists_option_and_language(self):
        data = {"fund_lists": [self.other.pk], "actionable_only": "on", "language": "zh-hans"}
        self.assertContains(self.client.post(self.url, data), 'role="status"')
        subscriber = Subscriber.objects.get()
        self.assertEqual(subscriber.list_ids(), [self.other.pk])
        self.assertEqual((subscriber.actionable_only, subscriber.language), (True, "zh-hans"))
        self.client.post(self.url, {"language": "en"})  # nothing ticked: every list
        subscriber = Subscriber.objects.get()
        self.assertEqual((subscriber.list_ids(), subscriber.actionable_only), ([], False))

    def test_it_rejects_invalid_choices_and_changes_nothing(self):
        self.client.raise_request_exception = False
        cases = [{"language": "fr"}, {"actionable_only": "on"}] + [
            {"language": "en", "fund_lists": pk} for pk in ["999999", "abc", "9" * 30]
        ]
        for data in cases:
            with self.subTest(data=data):
                self.assertEqual(self.client.post(self.url, data).status_code, 400)
                subscriber = Subscriber.objects.get()
                self.assertEqual(subscriber.list_ids(), [self.long.pk])
                self.assertEqual((subscriber.language, subscriber.actionable_only), ("en", False))

    def test_it_exports_the_data_as_a_json_attachment(self):
        digest = Digest.objects.create(run_date=date(2024, 6, 3))
        sent = {"status": "sent", "sent_at": CURRENT_TIME}
        Delivery.objects.create(digest=digest, subscriber=self.subscriber, **sent)
        response = self.client.get(self.url + "data.json")
        self.assertEqual(response["Content-Type"], "application/json; charset=utf-8")
        attachment = 'attachment; filename="invest-alchemy-data.json"'
        self.assertEqual(response["Content-Disposition"], attachment)
        data = json.loads(response.content)
        self.assertEqual(data["email"], "alice@example.com")
        self.assertEqual((data["status"], data["fund_lists"]), ("confirmed", ["long-etf"]))
        self.assertEqual(data["created"], Subscriber.objects.get().created.isoformat())
        sent["sent_at"] = CURRENT_TIME.isoformat()
        self.assertEqual(
            data["deliveries"],
            [{"run_date": "2024-06-03", **sent, "attempts": 0, "last_error": ""}],
        )
        # Everything stored about them, save the row id and the secret behind their links.
        stored = {f.name for f in Subscriber._meta.concrete_fields} - {"id", "secret"}
        self.assertEqual(stored - set(data), set())

    def test_it_deletes_the_subscriber_and_their_deliveries(self):
        digest = Digest.objects.create(run_date=date(2024, 6, 3))
        Delivery.objects.create(digest=digest, subscriber=self.subscriber, status="sent")
        self.assertContains(self.client.post(self.url + "delete/"), "data are deleted")
        self.assertFalse(Subscriber.objects.exists())
        self.assertFalse(Delivery.objects.exists())
        self.assertTrue(Digest.objects.exists())
        self.assertEqual(self.client.get(self.url).status_code, 400)

    def test_it_rejects_bad_tokens(self):
        self.client.raise_request_exception = False
        token = self.url.split("/")[-2]
        for bad in forged(token) + [self.subscriber.make_token("unsubscribe")]:
            for method, suffix in PREFERENCE_PAGES:
                with self.subTest(token=bad, method=method, suffix=suffix):
                    response = getattr(self.client, method)(f"/preferences/{bad}/{suffix}")
                    self.assertContains(response, "does not work", status_code=400)
        self.assertEqual(Subscriber.objects.get().language, "en")
