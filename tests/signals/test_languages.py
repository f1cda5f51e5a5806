from datetime import date

from django.conf import settings
from django.core import mail
from django.test import SimpleTestCase
from django.utils import translation

from signals.models import Signal
from signals.templatetags.signal_tags import count, when
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
        Signal.objects.filter(fund=self.hs300).update(days=1234)
        chinese = self.client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertContains(chinese, "-3.96%")
        self.assertContains(chinese, '<time datetime="2023-06-08">2023年6月8日</time>')
        self.assertContains(chinese, '<td class="num">1,234</td>')
        self.assertNotContains(chinese, "8 Jun 2023")
        english = self.client.get("/", HTTP_ACCEPT_LANGUAGE="en")
        self.assertContains(english, '<time datetime="2023-06-08">8 Jun 2023</time>')
        self.assertContains(english, '<td class="num">1,234</td>')
        self.assertNotContains(english, "2023年6月8日")

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


class LocalizedDatesTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-06")

    def test_every_page_writes_dates_in_the_visitors_language(self):
        for url, english, chinese in (
            ("/history/2023-06-07/", "Signals of <time datetime=\"2023-06-07\">7 Jun 2023",
             '<time datetime="2023-06-07">2023年6月7日</time> 信号'),
            ("/history/", ">8 Jun</time></a>", ">6月8日</time></a>"),
            ("/lists/long-etf/", "As of <time datetime=\"2023-06-08\">8 Jun 2023</time>.",
             "数据截至 <time datetime=\"2023-06-08\">2023年6月8日</time>。"),
            ("/funds/510300.SH/", '<td><time datetime="2023-04-04">4 Apr 2023</time></td>',
             '<td><time datetime="2023-04-04">2023年4月4日</time></td>'),
            ("/history/2023-06-10/", "<title>10 Jun 2023 · Invest Alchemy</title>",
             "<title>2023年6月10日 · Invest Alchemy</title>"),
        ):  # fmt: skip
            with self.subTest(url=url):
                status = 404 if url.endswith("06-10/") else 200
                page = self.client.get(url)
                self.assertContains(page, english, status_code=status)
                page = self.client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
                self.assertContains(page, chinese, status_code=status)

    def test_addresses_and_the_api_keep_iso_dates(self):
        chinese = self.client.get("/history/2023-06-07/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertContains(chinese, 'rel="next" href="/history/2023-06-08/"')
        body = self.client.get("/api/signals/latest/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
        self.assertEqual(body["run_date"], "2023-06-08")
        rss = self.client.get("/feed/rss/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        self.assertIn("ETF信号 2023-06-08", rss)


class FormatsTestCase(SimpleTestCase):
    def test_it_groups_large_counts_in_thousands(self):
        for language in ("en", "zh-hans"):
            with self.subTest(language=language), translation.override(language):
                self.assertEqual(count(1234567), "1,234,567")
                self.assertEqual(count(42), "42")
                self.assertEqual(count(None), "")

    def test_it_writes_a_date_for_people_and_for_machines(self):
        with translation.override("en"):
            self.assertEqual(
                when(date(2023, 6, 8)), '<time datetime="2023-06-08">8 Jun 2023</time>'
            )
            self.assertEqual(
                when(date(2023, 6, 8), "MONTH_DAY_FORMAT"),
                '<time datetime="2023-06-08">8 Jun</time>',
            )
        with translation.override("zh-hans"):
            self.assertEqual(
                when(date(2023, 6, 8)), '<time datetime="2023-06-08">2023年6月8日</time>'
            )
        self.assertEqual(when(None), "")


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
