from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import time_machine
from django.db import connection
from django.test import SimpleTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from signals.models import PriceBar, Signal, SignalRun
from signals.templatetags.signal_tags import percent, percent_plain, price
from tests.base import TushareTestCase, run_command

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shown(day: str, text: str) -> str:
    """A date as the pages write it: ISO for machines, the language's format for people."""
    return f'<time datetime="{day}">{text}</time>'


class PagesTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-29")

    def test_home_shows_the_latest_run_grouped_by_list_with_the_form(self):
        Signal.objects.filter(fund=self.csi1000, run_date=date(2023, 6, 8)).update(state="BUY")
        response = self.client.get("/")
        self.assertContains(
            response, f"Signals as of the close of {shown('2023-06-08', '8 Jun 2023')}."
        )
        self.assertContains(response, "BUY and SELL")
        body = response.content.decode()
        actions = body.index("BUY and SELL")
        self.assertLess(actions, body.index("Long ETF"))
        self.assertIn("中证1000ETF", body[actions : body.index("Long ETF")])
        self.assertContains(response, 'name="email"')
        self.assertContains(response, 'href="/about/signals/"')

    def test_history_lists_run_dates_and_jumps_to_a_date(self):
        response = self.client.get("/history/")
        self.assertContains(response, 'href="/history/2023-06-08/"')
        self.assertContains(response, 'href="/history/2023-05-29/"')
        self.assertRedirects(
            self.client.get("/history/", {"date": "2023-06-01"}), "/history/2023-06-01/"
        )
        self.assertEqual(self.client.get("/history/", {"date": "June"}).status_code, 400)

    def test_a_day_has_previous_and_next_and_unknown_days_are_404(self):
        response = self.client.get("/history/2023-06-01/")
        self.assertContains(response, f"Signals of {shown('2023-06-01', '1 Jun 2023')}")
        self.assertContains(response, 'rel="prev" href="/history/2023-05-31/"')
        self.assertContains(response, 'rel="next" href="/history/2023-06-02/"')
        self.assertEqual(self.client.get("/history/2023-06-03/").status_code, 404)
        self.assertEqual(self.client.get("/history/not-a-date/").status_code, 404)

    def test_the_fund_page_draws_the_chart_and_lists_round_trips(self):
        response = self.client.get("/funds/510300.SH/", {"range": "5y"})
        self.assertContains(response, "<svg")
        body = response.content.decode()
        for css in ("close", "ma-short", "ma-long"):
            self.assertIn(f'<path class="{css}" d="M', body)
        self.assertIn('class="marker buy"', body)
        self.assertIn('class="marker sell"', body)
        self.assertContains(response, "Round trips")
        self.assertContains(response, "win rate")
        self.assertEqual(self.client.get("/funds/510300.sh/").status_code, 200)
        self.assertEqual(self.client.get("/funds/510300.SH/", {"range": "2w"}).status_code, 404)
        self.assertEqual(self.client.get("/funds/999999.SH/").status_code, 404)

    def test_robots_keep_crawlers_out_of_personal_links(self):
        response = self.client.get("/robots.txt")
        self.assertEqual(response["Content-Type"], "text/plain")
        self.assertContains(response, "Disallow: /unsubscribe/")

    def test_list_and_about_pages(self):
        self.assertContains(self.client.get("/lists/long-etf/"), "沪深300ETF")
        self.assertEqual(self.client.get("/lists/nope/").status_code, 404)
        self.assertContains(self.client.get("/about/signals/"), "not investment advice")

    def test_pages_use_a_bounded_number_of_queries(self):
        for url in ("/", "/history/2023-06-08/", "/lists/long-etf/", "/history/"):
            with self.subTest(url=url), CaptureQueriesContext(connection) as queries:
                self.client.get(url)
            self.assertLessEqual(len(queries), 12, url)

    def test_the_signal_tables_are_built_once_per_run(self):
        self.client.get("/")  # renders and caches this run's tables
        with CaptureQueriesContext(connection) as queries:
            self.assertContains(self.client.get("/"), shown("2023-06-08", "8 Jun 2023"))
        # The latest run, the cached tables, and the subscription form's lists.
        self.assertLessEqual(len(queries), 3)
        buy = '<span class="badge buy">BUY</span>'
        Signal.objects.filter(run_date=date(2023, 6, 8), fund=self.hs300).update(state="BUY")
        self.assertNotContains(self.client.get("/"), buy)  # still this run's tables
        run_command("run_signals", date="2023-06-08")  # a new run of the date: new tables
        Signal.objects.filter(run_date=date(2023, 6, 8), fund=self.hs300).update(state="BUY")
        self.assertContains(self.client.get("/"), buy)

    def test_a_fund_page_is_built_once_per_run_and_range(self):
        self.client.get("/funds/510300.SH/")
        with CaptureQueriesContext(connection) as queries:
            self.assertContains(self.client.get("/funds/510300.SH/"), "<svg")
        self.assertLessEqual(len(queries), 3)  # the fund, the latest run, the cached page
        with CaptureQueriesContext(connection) as queries:
            self.client.get("/funds/510300.SH/", {"range": "all"})
        self.assertGreater(len(queries), 3)  # another range: built once more


class NumbersTestCase(SimpleTestCase):
    def test_it_rounds_percentages_half_up_like_the_summary_line(self):
        self.assertEqual(percent(-0.0099668), "-1.00%")
        self.assertEqual(percent(0.123456), "+12.35%")
        self.assertEqual(percent(-0.0396), "-3.96%")
        self.assertEqual(percent(-0.00001), "0.00%")
        self.assertEqual(percent(None), "")
        with translation.override("zh-hans"):
            self.assertEqual(percent(-0.0099668), "-1.00%")

    def test_it_rounds_the_win_rate_and_prices_half_up(self):
        self.assertEqual(percent_plain(2 / 3), "67%")
        self.assertEqual(percent_plain(0.5), "50%")
        self.assertEqual(price(3.9129999), "3.913")
        self.assertEqual(price(3.912), "3.912")


class RoundedNumbersTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")

    def test_it_shows_the_same_change_as_the_summary_line(self):
        signal = Signal.objects.get(fund=self.hs300, run_date=date(2023, 6, 8))
        signal.change = -0.0099668
        signal.save()
        self.assertIn("-1.00%", signal.summary_line())
        response = self.client.get("/")
        self.assertContains(response, '<td class="num">-1.00%</td>')
        self.assertNotContains(response, "-0.99%")


class HomePageMemoryTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")

    def test_it_keeps_no_visitors_query_string_in_the_shared_page(self):
        first = self.client.get("/", {"utm_source": "EVILMARK"})
        self.assertContains(first, 'name="next" type="hidden" value="/"')
        self.assertNotContains(first, "EVILMARK")
        self.assertNotContains(self.client.get("/"), "EVILMARK")

    def test_other_pages_switch_language_back_to_the_same_address(self):
        response = self.client.get("/funds/510300.SH/", {"range": "5y"})
        next_field = 'name="next" type="hidden" value="/funds/510300.SH/?range=5y"'
        self.assertContains(response, next_field)


class FundPageUntilTestCase(TushareTestCase):
    def test_it_ends_the_chart_with_the_run_the_page_shows(self):
        run_command("run_signals", date="2023-06-07")
        last = PriceBar.objects.filter(fund=self.hs300).latest("trade_date")
        self.assertEqual(last.trade_date, date(2023, 6, 7))
        # A bar of the next day is stored, but its run has not finished.
        last.pk, last.trade_date, last.close = None, date(2023, 6, 8), last.close * 2
        last.save()
        response = self.client.get("/funds/510300.SH/", {"range": "3m"})
        self.assertContains(response, "– 7 Jun 2023</title>")
        self.assertNotContains(response, "8 Jun 2023")
        self.assertNotContains(response, "2023-06-08")


class FreshnessTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        # The run finished at 18:42 in Shanghai (10:42 UTC).
        SignalRun.objects.update(finished_at=datetime(2023, 6, 8, 10, 42, 5, tzinfo=UTC))

    def home(self, when: datetime, language: str = "en"):
        with time_machine.travel(when, tick=False):
            return self.client.get("/", HTTP_ACCEPT_LANGUAGE=language)

    def test_it_shows_when_the_run_finished_in_beijing_time(self):
        response = self.home(datetime(2023, 6, 9, 9, 0, tzinfo=SHANGHAI))
        finished = shown("2023-06-08T18:42+08:00", "8 Jun 2023, 18:42")
        self.assertContains(response, f"Computed {finished} (Beijing time).")
        self.assertNotContains(response, "late-warning")
        chinese = self.home(datetime(2023, 6, 9, 9, 0, tzinfo=SHANGHAI), "zh-hans")
        self.assertContains(chinese, shown("2023-06-08T18:42+08:00", "2023年6月8日 18:42"))
        self.assertContains(chinese, "（北京时间）")

    @override_settings(TIME_ZONE="UTC")
    def test_it_says_beijing_time_whatever_the_servers_time_zone(self):
        response = self.home(datetime(2023, 6, 9, 9, 0, tzinfo=SHANGHAI))
        self.assertContains(response, "8 Jun 2023, 18:42</time> (Beijing time).")

    def test_it_warns_when_the_latest_run_is_older_than_a_long_weekend(self):
        # Friday's run seen on the Tuesday after a Monday holiday: not late yet.
        tuesday = datetime(2023, 6, 12, 23, 0, tzinfo=SHANGHAI)
        self.assertNotContains(self.home(tuesday), "late-warning")
        response = self.home(datetime(2023, 6, 13, 9, 0, tzinfo=SHANGHAI))
        self.assertContains(response, '<div class="warning" id="late-warning">')
        self.assertContains(response, "These signals are out of date.")
        latest = shown("2023-06-08", "8 Jun 2023")
        self.assertContains(response, f"The latest run is for {latest}, 5 days ago.")
        chinese = self.home(datetime(2023, 6, 13, 9, 0, tzinfo=SHANGHAI), "zh-hans")
        self.assertContains(chinese, "这些信号已过时。")
        # Shanghai's date counts: 00:30 on the 13th there is still the 12th in UTC.
        self.assertContains(self.home(datetime(2023, 6, 12, 16, 30, tzinfo=UTC)), "5 days ago")

    def test_it_shows_why_a_fund_is_stale_as_text(self):
        Signal.objects.filter(fund=self.hs300, run_date=date(2023, 6, 8)).update(
            stale=True,
            bar_date=date(2023, 6, 7),
            note="no trade on 2023-06-08; last bar 2023-06-07",
        )
        Signal.objects.filter(fund=self.nasdaq, run_date=date(2023, 6, 8)).update(
            stale=True, note="adjustment factor for 2023-06-08 not published yet"
        )
        response = self.client.get("/")
        self.assertContains(
            response,
            '<span class="stale-note">No trade on 8 Jun 2023; last traded 7 Jun 2023.</span>',
        )
        self.assertContains(response, "Its price adjustment for 8 Jun 2023 is not published yet.")
        self.assertNotContains(response, "title=")  # not only in a tooltip
        chinese = self.client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertContains(chinese, "2023年6月8日无成交；最后成交日为2023年6月7日。")
        self.assertContains(self.client.get("/lists/long-etf/"), "last traded 7 Jun 2023")
