from datetime import date

from django.conf import settings
from django.core import mail
from django.test import SimpleTestCase

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


class SiteTextsTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")

    def test_it_names_the_chart_ranges_in_the_visitors_language(self):
        english = self.client.get("/funds/510300.SH/", {"range": "5y"})
        self.assertContains(english, '<a href="?range=3m">3 months</a>')
        self.assertContains(english, '<a href="?range=5y" aria-current="true">5 years</a>')
        chinese = self.client.get("/funds/510300.SH/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertContains(chinese, '<a href="?range=3m">近3个月</a>')
        self.assertContains(chinese, '<a href="?range=all">全部数据</a>')

    def test_it_titles_the_feeds_in_the_visitors_language(self):
        for url in ("/feed/rss/", "/feed/atom/"):
            with self.subTest(url=url):
                english = self.client.get(url).content.decode()
                self.assertIn("Invest Alchemy: ETF signals", english)
                chinese = self.client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
                self.assertIn("Invest Alchemy：ETF交易信号", chinese)
                self.assertIn("每个交易日收盘后的 BUY 与 SELL 信号。", chinese)


class CatalogueTestCase(SimpleTestCase):
    def test_it_translates_every_text_of_the_site(self):
        po = (settings.BASE_DIR / "locale/zh_Hans/LC_MESSAGES/django.po").read_text()
        entries = po.split("\n\n")[1:]  # the header is the one empty msgstr
        untranslated = [e for e in entries if e.rstrip().endswith('msgstr ""')]
        self.assertEqual(untranslated, [])
        self.assertNotIn("#, fuzzy", po)
