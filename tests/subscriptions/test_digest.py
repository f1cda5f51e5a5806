import ast
import re
import smtplib
import time
from datetime import date, timedelta
from unittest import mock

import pytest
import time_machine
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail
from django.core.mail.backends import locmem
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from signals.models import FundListItem, Signal, SignalRun
from subscriptions.models import Delivery, Digest, Subscriber
from subscriptions.services import (
    DigestError,
    digest_prepare,
    digest_remaining,
    digest_send,
    is_temporary,
)
from subscriptions.tasks import digest_deliver
from tests.base import TushareTestCase, run_command

RUN_DATE = date(2023, 6, 8)


def make_subscriber(email: str, *, lists=(), **fields) -> Subscriber:
    subscriber = Subscriber.objects.create(
        email=email, status=Subscriber.Status.CONFIRMED, **fields
    )
    subscriber.fund_lists.set(lists)
    return subscriber


def received(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address]]


def link_owner(url: str, purpose: str) -> Subscriber:
    """The subscriber a signed link in a message was made for.

    Links carry the second they were signed in, so they are checked by what they
    open, not compared as strings with a link made a moment later.
    """
    prefix = f"http://127.0.0.1:8000/{purpose}/"
    assert url.startswith(prefix) and url.endswith("/"), url
    return Subscriber.from_token(url[len(prefix) : -1], purpose)


class CrashAfter(locmem.EmailBackend):
    """Hands over `limit` messages, then the process 'dies' on the next one."""

    limit: int | None = None
    handed_over = 0

    def send_messages(self, messages):
        if CrashAfter.limit is not None and CrashAfter.handed_over >= CrashAfter.limit:
            raise RuntimeError("worker killed")
        CrashAfter.handed_over += len(messages)
        return super().send_messages(messages)


class FailsToClose(locmem.EmailBackend):
    """Delivers, then the server drops the line when the connection is closed."""

    def close(self):
        raise smtplib.SMTPServerDisconnected("421 closing connection")


class DigestTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")

    def test_it_sends_each_subscriber_only_their_lists(self):
        make_subscriber("all@example.com")
        make_subscriber("other@example.com", lists=[self.other])
        Signal.objects.filter(fund=self.csi1000).update(state="BUY")
        digest_send(digest=digest_prepare(run_date=RUN_DATE))
        [everything] = received("all@example.com")
        [other] = received("other@example.com")
        self.assertEqual(everything.subject, "ETF signals 2023-06-08: 1 BUY, 0 SELL")
        self.assertIn("Long ETF", everything.body)
        self.assertIn("Other ETF", everything.body)
        self.assertNotIn("Long ETF", other.body)
        self.assertIn("中证1000ETF (512100.SH) BUY — close", other.body)
        html, mimetype = other.alternatives[0]
        self.assertEqual(mimetype, "text/html")
        self.assertIn("<h2", html)
        self.assertNotIn("Long ETF", html)
        self.assertEqual(other.extra_headers["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
        subscriber = Subscriber.objects.get(email="other@example.com")
        unsubscribe = re.fullmatch(r"<(.+)>", other.extra_headers["List-Unsubscribe"])[1]
        self.assertEqual(link_owner(unsubscribe, "unsubscribe"), subscriber)
        preferences = re.search(r"http://\S+/preferences/\S+/", other.body)[0]
        self.assertEqual(link_owner(preferences, "preferences"), subscriber)

    def test_a_stale_fund_in_two_lists_counts_once(self):
        FundListItem.objects.create(fund_list=self.long, fund=self.csi1000, position=9)
        run_command("run_signals", date="2023-06-08")
        Signal.objects.filter(fund=self.csi1000).update(stale=True)
        make_subscriber("all@example.com")
        digest_send(digest=digest_prepare(run_date=RUN_DATE))
        [message] = received("all@example.com")
        self.assertIn("1 fund did not trade that day and is marked stale.", message.body)

    def test_buy_sell_only_subscribers_get_nothing_on_a_quiet_day(self):
        make_subscriber("quiet@example.com", lists=[self.long], actionable_only=True)
        make_subscriber("busy@example.com", lists=[self.other], actionable_only=True)
        Signal.objects.filter(fund=self.csi1000).update(state="SELL")
        digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual(received("quiet@example.com"), [])
        self.assertTrue(received("busy@example.com")[0].subject.endswith(": 0 BUY, 1 SELL"))

    def test_only_confirmed_subscribers_receive_it(self):
        for status in Subscriber.Status.values:
            Subscriber.objects.create(email=f"{status}@example.com", status=status)
        digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual([m.to for m in mail.outbox], [["confirmed@example.com"]])

    def test_preparing_twice_adds_only_new_subscribers(self):
        make_subscriber("first@example.com")
        digest = digest_prepare(run_date=RUN_DATE)
        digest_send(digest=digest)
        make_subscriber("later@example.com")
        self.assertEqual(digest_prepare(run_date=RUN_DATE).pk, digest.pk)
        digest_send(digest=digest)
        digest_send(digest=digest)
        self.assertEqual(len(received("first@example.com")), 1)
        self.assertEqual(len(received("later@example.com")), 1)
        self.assertEqual(Delivery.objects.filter(status=Delivery.Status.SENT).count(), 2)

    def test_a_failed_run_sends_no_digest(self):
        make_subscriber("a@example.com")
        SignalRun.objects.update(status=SignalRun.Status.FAILED)
        with self.assertRaisesMessage(DigestError, "is failed: no digest is sent"):
            digest_prepare(run_date=RUN_DATE)
        with self.assertRaisesMessage(CommandError, "is failed: no digest is sent"):
            run_command("send_digest", date="2023-06-08")
        self.assertFalse(Digest.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_only_a_run_of_every_fund_decides_the_digest(self):
        make_subscriber("a@example.com")
        SignalRun.objects.update(status=SignalRun.Status.FAILED)
        run_command("run_signals", date="2023-06-08", fund=["510300.SH"])  # partial, succeeds
        with self.assertRaisesMessage(DigestError, "is failed"):
            digest_prepare(run_date=RUN_DATE)
        Digest.objects.all().delete()
        run_command("run_signals", date="2023-06-07", list="long-etf")
        with self.assertRaisesMessage(DigestError, "no signal run of every fund"):
            digest_prepare(run_date=date(2023, 6, 7))

    def test_the_digest_is_rendered_again_until_the_first_copy_goes_out(self):
        make_subscriber("a@example.com")
        digest = digest_prepare(run_date=RUN_DATE)
        Signal.objects.filter(fund=self.csi1000).update(state="BUY")
        digest = digest_prepare(run_date=RUN_DATE)
        self.assertEqual(digest.parts["en"]["sections"][str(self.other.pk)]["buy"], 1)
        digest_send(digest=digest)
        Signal.objects.filter(fund=self.csi1000).update(state="SELL")
        digest = digest_prepare(run_date=RUN_DATE)
        self.assertEqual(digest.parts["en"]["sections"][str(self.other.pk)]["buy"], 1)

    def test_a_subscriber_who_left_after_the_ledger_was_written_gets_nothing(self):
        leaving = make_subscriber("leaving@example.com")
        make_subscriber("staying@example.com")
        digest = digest_prepare(run_date=RUN_DATE)
        Subscriber.objects.filter(pk=leaving.pk).update(status=Subscriber.Status.BOUNCED)
        digest_send(digest=digest)
        self.assertEqual([m.to for m in mail.outbox], [["staying@example.com"]])

    def test_send_digest_command_and_run_signals_send(self):
        make_subscriber("a@example.com")
        out = run_command("send_digest")
        self.assertIn("Digest 2023-06-08: 1 sent now, 0 to retry, 0 failed; in all 1 sent.", out)
        self.assertIn("0 sent now", run_command("send_digest", date="2023-06-08"))
        out = run_command("run_signals", date="2023-06-07", send=True)
        self.assertIn("Digest 2023-06-07: 1 sent now", out)
        with self.assertRaisesMessage(CommandError, "bad date"):
            run_command("send_digest", date="yesterday")
        with self.assertRaisesMessage(CommandError, "no signal run of every fund for 2023-06-06"):
            run_command("send_digest", date="2023-06-06")

    def test_queries_per_batch_do_not_grow_with_subscribers(self):
        def queries_for(count: int) -> int:
            Delivery.objects.all().delete()
            Digest.objects.all().delete()
            Subscriber.objects.all().delete()
            for n in range(count):
                make_subscriber(f"s{n}@example.com", lists=[self.long, self.other])
            digest = digest_prepare(run_date=RUN_DATE)
            with CaptureQueriesContext(connection) as queries:
                report = digest_send(digest=digest, batch_size=50)
            self.assertEqual((report.sent, report.batches), (count, 1))
            return len(queries)

        self.assertEqual(queries_for(3), queries_for(30))

    def test_the_send_rate_is_kept(self):
        for n in range(5):
            make_subscriber(f"s{n}@example.com")
        waits = []
        digest_send(digest=digest_prepare(run_date=RUN_DATE), rate=2, sleep=waits.append)
        self.assertEqual(len(waits), 5)
        self.assertGreater(sum(waits), 2.0)  # 5 messages at 2/s take at least 2.5 s


class ExactlyOnceTestCase(TushareTestCase):
    """A crash after k of n hand-overs, then a re-run: everyone gets one copy."""

    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        self.addresses = [f"reader{n}@example.com" for n in range(7)]
        for address in self.addresses:
            make_subscriber(address)
        CrashAfter.handed_over = 0

    def crash_then_resume(self, k: int) -> None:
        digest = digest_prepare(run_date=RUN_DATE)
        CrashAfter.limit = k
        with self.settings(EMAIL_BACKEND="tests.subscriptions.test_digest.CrashAfter"):
            with pytest.raises(RuntimeError, match="worker killed"):
                digest_send(digest=digest, batch_size=3)
            self.assertEqual(len(mail.outbox), k)
            self.assertEqual(Delivery.objects.filter(status=Delivery.Status.SENT).count(), k)
            self.assertFalse(Delivery.objects.filter(status=Delivery.Status.SENDING).exists())
            CrashAfter.limit = None
            digest_send(digest=digest_prepare(run_date=RUN_DATE), batch_size=3)
            digest_send(digest=digest, batch_size=3)  # a third run finds nothing to do

    def test_it_resumes_after_a_crash_at_the_start_middle_and_end(self):
        for k in (0, 4, 6):
            with self.subTest(k=k):
                mail.outbox = []
                Delivery.objects.all().delete()
                CrashAfter.handed_over = 0
                self.crash_then_resume(k)
                for address in self.addresses:
                    self.assertEqual(len(received(address)), 1, address)
                self.assertEqual(
                    Delivery.objects.filter(status=Delivery.Status.SENT).count(),
                    len(self.addresses),
                )


class TemporaryFailureTestCase(TushareTestCase):
    @pytest.fixture(autouse=True)
    def _smtp(self, smtp):
        self.smtp = smtp

    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        make_subscriber("a@example.com")
        make_subscriber("b@example.com")
        make_subscriber("c@example.com")

    def test_throttling_is_retried_later_never_counted_sent(self):
        self.smtp.reply_next("450 4.2.1 Mailbox busy, try later")
        digest = digest_prepare(run_date=RUN_DATE)
        report = digest_send(digest=digest)
        self.assertEqual((report.sent, report.retry, report.failed), (2, 1, 0))
        [waiting] = Delivery.objects.filter(status=Delivery.Status.PENDING)
        self.assertEqual(waiting.attempts, 1)
        self.assertIn("450", waiting.last_error)
        self.assertEqual(digest_send(digest=digest).sent, 0)  # not due yet
        with time_machine.travel(timezone.now() + timedelta(minutes=6)):
            self.assertEqual(digest_send(digest=digest).sent, 1)
        self.assertEqual(self.smtp.count, 3)
        self.assertEqual(sorted(str(m["To"]) for m in self.smtp.messages), [
            "a@example.com", "b@example.com", "c@example.com",
        ])  # fmt: skip

    def test_a_refused_address_fails_for_good(self):
        self.smtp.reply_next("550 5.1.1 No such user")
        report = digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual((report.sent, report.retry, report.failed), (2, 0, 1))
        self.assertEqual(Delivery.objects.get(status=Delivery.Status.FAILED).attempts, 1)

    def test_it_gives_up_after_the_last_attempt(self):
        digest = digest_prepare(run_date=RUN_DATE)
        with self.settings(DIGEST_MAX_ATTEMPTS=2, DIGEST_RETRY_SECONDS=0):
            self.smtp.reply_next("451 4.3.0 Temporary failure", times=2)
            digest_send(digest=digest, batch_size=1)
        self.assertEqual(Delivery.objects.filter(status=Delivery.Status.SENT).count(), 2)
        self.assertEqual(Delivery.objects.get(status=Delivery.Status.FAILED).attempts, 2)

    def test_a_follow_up_task_sends_what_was_throttled_once_it_is_due(self):
        self.smtp.reply_next("450 4.2.1 Mailbox busy, try later")
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        report, rest = digest_deliver(
            digest_prepare(run_date=RUN_DATE), deadline=time.monotonic() + 60
        )
        self.assertEqual((report.sent, report.retry), (2, 1))
        follow_up = Schedule.objects.get(name="digest 2023-06-08: the rest")
        self.assertEqual(follow_up.func, "subscriptions.tasks.send_digest")
        due = Delivery.objects.get(status=Delivery.Status.PENDING).next_attempt_at
        self.assertEqual(follow_up.next_run, due)
        self.assertRegex(rest, r"^the rest from \d\d:\d\d$")
        args = ast.literal_eval(follow_up.args)
        with time_machine.travel(due + timedelta(seconds=1)):
            result = import_string(follow_up.func)(args)
        self.assertEqual(result, "digest 2023-06-08: sent to 1, 0 to retry, 0 failed")
        self.assertFalse(Schedule.objects.filter(name__startswith="digest ").exists())
        self.assertEqual(self.smtp.count, 3)  # nobody twice, nobody left out

    def test_the_admins_hear_of_deliveries_given_up(self):
        self.smtp.reply_next("550 5.1.1 No such user")
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        digest_deliver(digest_prepare(run_date=RUN_DATE), deadline=time.monotonic() + 60)
        [report] = [m for m in self.smtp.messages if str(m["To"]) == "ops@example.com"]
        self.assertIn("Digest 2023-06-08: 1 deliveries failed", str(report["Subject"]))
        self.assertFalse(Schedule.objects.exists())  # nothing left to send

    def test_an_unreachable_mail_server_stops_the_send_and_loses_nobody(self):
        digest = digest_prepare(run_date=RUN_DATE)
        with self.settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=9):  # nothing listens there
            report = digest_send(digest=digest, batch_size=1)
        self.assertIn("the mail server cannot be reached", report.stopped)
        self.assertEqual((report.batches, report.retry, report.sent), (1, 1, 0))
        rows = Delivery.objects.order_by("id")
        self.assertEqual([r.status for r in rows], ["pending"] * 3)
        self.assertEqual([r.attempts for r in rows], [1, 0, 0])  # the rest never tried
        with time_machine.travel(timezone.now() + timedelta(minutes=6)):
            self.assertEqual(digest_send(digest=digest).sent, 3)

    def test_it_stops_at_the_deadline_between_two_messages(self):
        digest = digest_prepare(run_date=RUN_DATE)
        self.assertEqual(digest_send(digest=digest, deadline=time.monotonic()).batches, 0)
        # The deadline passes after the first message of the batch.
        with mock.patch("subscriptions.services._past", side_effect=[False, False, True, True]):
            report = digest_send(digest=digest, deadline=0)
        self.assertEqual((report.sent, report.batches), (1, 1))
        self.assertEqual(Delivery.objects.filter(status=Delivery.Status.PENDING).count(), 2)
        self.assertEqual(
            digest_remaining(digest), Delivery.objects.order_by("id")[1].next_attempt_at
        )
        self.assertEqual(digest_send(digest=digest).sent, 2)
        self.assertIsNone(digest_remaining(digest))

    def test_results_are_kept_when_the_connection_fails_to_close(self):
        with self.settings(EMAIL_BACKEND="tests.subscriptions.test_digest.FailsToClose"):
            report = digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual(report.sent, 3)
        self.assertEqual(
            set(Delivery.objects.values_list("status", flat=True)), {Delivery.Status.SENT}
        )

    def test_it_tells_temporary_from_permanent_provider_errors(self):
        self.assertTrue(is_temporary(AnymailAPIError("throttled", status_code=429)))
        self.assertTrue(is_temporary(AnymailAPIError("outage", status_code=503)))
        self.assertFalse(is_temporary(AnymailAPIError("bad request", status_code=400)))
        self.assertFalse(is_temporary(AnymailRecipientsRefused("refused")))
        self.assertTrue(is_temporary(ConnectionRefusedError()))


class BatchSendTestCase(TushareTestCase):
    """Providers with a batch API get one call per group of identical digests."""

    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        self.a = make_subscriber("a@example.com")
        self.b = make_subscriber("b@example.com")
        self.c = make_subscriber("c@example.com", lists=[self.other])

    def test_it_sends_merge_data_and_merge_headers_per_recipient(self):
        with self.settings(
            EMAIL_BACKEND="anymail.backends.test.EmailBackend",
            DIGEST_MERGE_FIELD_FORMAT="{{{{{}}}}}",  # written {{name}}
        ):
            report = digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual(report.sent, 3)
        self.assertEqual(len(mail.outbox), 2)  # two groups: all lists, and "other" only
        everything = next(m for m in mail.outbox if len(m.to) == 2)
        params = everything.anymail_test_params
        self.assertTrue(params["is_batch_send"])
        self.assertEqual(
            sorted(e.addr_spec for e in params["to"]), ["a@example.com", "b@example.com"]
        )
        unsubscribe = params["merge_data"]["a@example.com"]["unsubscribe_url"]
        self.assertEqual(link_owner(unsubscribe, "unsubscribe"), self.a)
        [(header, value)] = params["merge_headers"]["b@example.com"].items()
        self.assertEqual(header, "List-Unsubscribe")
        self.assertEqual(link_owner(value.strip("<>"), "unsubscribe"), self.b)
        self.assertEqual(
            everything.extra_headers["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click"
        )
        self.assertIn("Unsubscribe: {{unsubscribe_url}}", everything.body)
        self.assertIn('href="{{preferences_url}}"', everything.alternatives[0][0])
        self.assertEqual(
            set(Delivery.objects.values_list("status", flat=True)), {Delivery.Status.SENT}
        )

    def test_a_provider_rejection_fails_only_that_recipient(self):
        from anymail.message import AnymailRecipientStatus

        def respond(self, payload, message):
            return {
                "recipient_status": {
                    "a@example.com": AnymailRecipientStatus("id-a", "queued"),
                    "b@example.com": AnymailRecipientStatus(None, "rejected"),
                    "c@example.com": AnymailRecipientStatus("id-c", "sent"),
                }
            }

        with (
            self.settings(
                EMAIL_BACKEND="anymail.backends.test.EmailBackend",
                DIGEST_MERGE_FIELD_FORMAT="%recipient.{}%",
            ),
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setattr("anymail.backends.test.EmailBackend.post_to_esp", respond)
            report = digest_send(digest=digest_prepare(run_date=RUN_DATE))
        self.assertEqual((report.sent, report.failed), (2, 1))
        self.assertEqual(Delivery.objects.get(subscriber=self.b).status, Delivery.Status.FAILED)
        self.assertEqual(Delivery.objects.get(subscriber=self.a).status, Delivery.Status.SENT)
