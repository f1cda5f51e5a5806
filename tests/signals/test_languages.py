from datetime import date

from django.core import mail

from subscriptions.models import Subscriber
from subscriptions.services import digest_prepare, digest_send
from tests.base import TushareTestCase, run_command


class LanguagesTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")

    def test_the_browsers_language_is_the_default(self):
        chinese = self.client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
        self.assertContains(chinese, '<html lang="zh-hans">')
        self.assertContains(chinese, "ETF交易信号")
        english = self.client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
        self.assertContains(english, "ETF trading signals")

    def test_the_switcher_sets_the_language(self):
        response = self.client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/history/"})
        self.assertRedirects(response, "/history/", fetch_redirect_response=False)
        self.assertContains(self.client.get("/history/"), '<html lang="zh-hans">')

    def test_numbers_and_lines_follow_the_language(self):
        page = self.client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertContains(page, "-3.96%")

    def test_emails_go_out_in_the_subscribers_language(self):
        reader = Subscriber.objects.create(
            email="reader@example.com", status="confirmed", language="zh-hans"
        )
        digest_send(digest=digest_prepare(run_date=date(2023, 6, 8)))
        [message] = mail.outbox
        self.assertEqual(message.to, [reader.email])
        self.assertIn("ETF信号 2023-06-08", message.subject)
        self.assertIn("沪深300ETF (510300.SH) EMPTY", message.body)
        self.assertIn("天", message.body)
