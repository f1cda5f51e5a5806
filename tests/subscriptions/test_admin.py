import csv
import io
from datetime import date, timedelta
from unittest import mock
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from subscriptions.models import Delivery, Digest, Subscriber
from subscriptions.services import digest_prepare, digest_send
from tests.base import TushareTestCase, run_command


class SubscriptionsAdminTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        self.admin = User.objects.create_superuser("admin", "ops@example.com", "password")
        self.client.force_login(self.admin)
        self.alice = Subscriber.objects.create(email="alice@example.com", status="confirmed")
        self.alice.fund_lists.set([self.other])
        self.bob = Subscriber.objects.create(email="bob@example.com", status="unsubscribed")

    def test_subscribers_can_be_searched_filtered_and_counted(self):
        url = reverse("admin:subscriptions_subscriber_changelist")
        response = self.client.get(url, {"q": "alice"})
        self.assertContains(response, "alice@example.com")
        self.assertNotContains(response, "bob@example.com")
        self.assertContains(response, "1 confirmed, 1 unsubscribed")
        response = self.client.get(url, {"status__exact": "unsubscribed"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "alice@example.com")
        response = self.client.get(url, {"fund_lists__id__exact": self.other.pk})
        self.assertContains(response, "alice@example.com")
        self.assertNotContains(response, "bob@example.com")

    def test_subscribers_export_as_csv(self):
        url = reverse("admin:subscriptions_subscriber_changelist")
        response = self.client.post(
            url, {"action": "export_csv", "_selected_action": [self.alice.pk, self.bob.pk]}
        )
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        self.assertEqual(rows[0][:3], ["email", "status", "language"])
        self.assertEqual([r[0] for r in rows[1:]], ["alice@example.com", "bob@example.com"])
        self.assertEqual(rows[1][3], "other-etf")

    def test_digests_show_delivery_counts_and_send_a_test_copy(self):
        digest = digest_prepare(run_date=date(2023, 6, 8))
        digest_send(digest=digest)
        url = reverse("admin:subscriptions_digest_changelist")
        response = self.client.get(url)
        self.assertContains(response, '<td class="field-sent">1</td>', html=False)
        mail.outbox = []
        self.client.post(url, {"action": "send_test_to_me", "_selected_action": [digest.pk]})
        [copy] = mail.outbox
        self.assertEqual(copy.to, ["ops@example.com"])
        self.assertEqual(Delivery.objects.count(), 1)  # a test copy is not in the ledger

    def test_a_test_copy_that_cannot_be_sent_says_why(self):
        digest = digest_prepare(run_date=date(2023, 6, 8))
        url = reverse("admin:subscriptions_digest_changelist")
        with self.settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=9,  # nothing listens there
        ):
            response = self.client.post(
                url, {"action": "send_test_to_me", "_selected_action": [digest.pk]}, follow=True
            )
        self.assertContains(response, "Not sent: ConnectionRefusedError")

    def test_revoking_links_voids_every_link_sent_so_far(self):
        old = urlsplit(self.alice.preferences_url()).path
        self.assertEqual(self.client.get(old).status_code, 200)
        url = reverse("admin:subscriptions_subscriber_changelist")
        response = self.client.post(
            url, {"action": "revoke_links", "_selected_action": [self.alice.pk]}, follow=True
        )
        self.assertContains(response, "The links of 1 subscriber(s) no longer work")
        self.assertEqual(self.client.get(old).status_code, 400)
        self.alice.refresh_from_db()
        fresh = urlsplit(self.alice.preferences_url()).path
        self.assertEqual(self.client.get(fresh).status_code, 200)

    def test_resend_sends_the_latest_digest_to_a_subscriber_again(self):
        digest_send(digest=digest_prepare(run_date=date(2023, 6, 8)))
        mail.outbox = []
        url = reverse("admin:subscriptions_subscriber_changelist")
        self.client.post(
            url,
            {"action": "resend_latest_digest", "_selected_action": [self.alice.pk, self.bob.pk]},
        )
        # Queued for the worker; the test settings run queued tasks at once.
        self.assertEqual([m.to for m in mail.outbox], [["alice@example.com"]])
        self.assertEqual(Delivery.objects.get().attempts, 2)

    def test_resends_only_queue_the_work(self):
        digest_prepare(run_date=date(2023, 6, 8))
        url = reverse("admin:subscriptions_delivery_changelist")
        with mock.patch.object(Conf, "SYNC", False):
            response = self.client.post(
                url, {"action": "resend", "_selected_action": [Delivery.objects.get().pk]}
            )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(mail.outbox, [])
        [queued] = OrmQ.objects.all()
        self.assertEqual(queued.task["func"], "subscriptions.tasks.send_deliveries")
        self.assertEqual(Delivery.objects.get().status, Delivery.Status.PENDING)

    def test_deliveries_are_listed_and_can_be_resent(self):
        digest = digest_prepare(run_date=date(2023, 6, 8))
        Delivery.objects.update(status=Delivery.Status.FAILED, last_error="550 no such user")
        url = reverse("admin:subscriptions_delivery_changelist")
        self.assertContains(self.client.get(url, {"status__exact": "failed"}), "550 no such user")
        self.client.post(url, {"action": "resend", "_selected_action": [Delivery.objects.get().pk]})
        self.assertEqual(Delivery.objects.get().status, Delivery.Status.SENT)
        self.assertEqual(len(mail.outbox), 1)
        self.assertEqual(Digest.objects.get(), digest)

    def test_resend_leaves_rows_a_running_sender_holds(self):
        digest = digest_prepare(run_date=date(2023, 6, 8))
        Delivery.objects.update(status=Delivery.Status.SENDING, claimed_at=timezone.now())
        url = reverse("admin:subscriptions_delivery_changelist")
        self.client.post(url, {"action": "resend", "_selected_action": [Delivery.objects.get().pk]})
        self.assertEqual(Delivery.objects.get().status, Delivery.Status.SENDING)
        self.assertEqual(mail.outbox, [])
        self.assertEqual(digest.deliveries.count(), 1)

    def test_a_slow_senders_batch_is_held_for_as_long_as_it_can_take(self):
        digest_prepare(run_date=date(2023, 6, 8))
        url = reverse("admin:subscriptions_delivery_changelist")
        # 200 messages at 0.1 per second take 2,000 s: a claim 30 minutes old is alive.
        claimed = timezone.now() - timedelta(minutes=30)
        Delivery.objects.update(status=Delivery.Status.SENDING, claimed_at=claimed)
        with self.settings(DIGEST_SEND_RATE=0.1, DIGEST_BATCH_SIZE=200, EMAIL_TIMEOUT=5):
            self.client.post(
                url, {"action": "resend", "_selected_action": [Delivery.objects.get().pk]}
            )
            self.assertEqual(Delivery.objects.get().status, Delivery.Status.SENDING)
            Delivery.objects.update(claimed_at=timezone.now() - timedelta(minutes=40))
            self.client.post(
                url, {"action": "resend", "_selected_action": [Delivery.objects.get().pk]}
            )
        self.assertEqual(Delivery.objects.get().status, Delivery.Status.SENT)  # left by a crash


class SubscribeFailureTestCase(TushareTestCase):
    def test_a_mail_server_that_is_down_still_gives_the_same_page(self):
        with self.settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=9,  # nothing listens there
        ):
            response = self.client.post("/subscribe/", {"email": "a@example.com", "language": "en"})
        self.assertRedirects(response, "/subscribe/check-your-inbox/")
        self.assertEqual(Subscriber.objects.get().status, Subscriber.Status.PENDING)
