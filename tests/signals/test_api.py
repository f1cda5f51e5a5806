import xml.etree.ElementTree as ET
from datetime import date

from django.core.cache import cache
from django.test import override_settings

from signals.models import Signal
from tests.base import TushareTestCase, run_command

# A cache outside the database, so that counted queries are the views' own.
MEMORY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


class ApiTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-05")

    def test_latest_matches_the_stored_signals(self):
        body = self.client.get("/api/signals/latest/").json()
        self.assertEqual(body["run_date"], "2023-06-08")
        stored = {
            s.fund.ts_code: s
            for s in Signal.objects.filter(run_date=date(2023, 6, 8)).select_related("fund")
        }
        answered = {s["ts_code"]: s for group in body["lists"] for s in group["signals"]}
        self.assertEqual(set(answered), set(stored))
        for code, signal in stored.items():
            self.assertEqual(answered[code]["state"], signal.state)
            self.assertEqual(answered[code]["since"], signal.since.isoformat())
            self.assertAlmostEqual(answered[code]["change"], signal.change)
        self.assertEqual([g["slug"] for g in body["lists"]], ["long-etf", "other-etf"])

    def test_polling_is_cheap_with_etag_and_last_modified(self):
        first = self.client.get("/api/signals/latest/")
        self.assertTrue(first["ETag"])
        self.assertTrue(first["Last-Modified"])
        again = self.client.get("/api/signals/latest/", HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(again.status_code, 304)
        run_command("run_signals", date="2023-06-08")  # a new run: a new answer
        fresh = self.client.get("/api/signals/latest/", HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(fresh.status_code, 200)

    def test_one_date_and_its_errors(self):
        self.assertEqual(
            self.client.get("/api/signals/2023-06-06/").json()["run_date"], "2023-06-06"
        )
        missing = self.client.get("/api/signals/2023-06-03/")
        self.assertEqual(
            (missing.status_code, missing.json()["error"]), (404, "no signals for 2023-06-03")
        )
        bad = self.client.get("/api/signals/yesterday/")
        self.assertEqual(bad.status_code, 400)
        self.assertIn("YYYY-MM-DD", bad.json()["error"])

    def test_a_funds_history_with_filters_and_bad_parameters(self):
        body = self.client.get("/api/funds/510300.SH/history/", {"from": "2023-06-06"}).json()
        self.assertEqual(
            [s["run_date"] for s in body["signals"]], ["2023-06-08", "2023-06-07", "2023-06-06"]
        )
        limited = self.client.get("/api/funds/510300.sh/history/", {"limit": "1"}).json()
        self.assertEqual(len(limited["signals"]), 1)
        self.assertEqual(self.client.get("/api/funds/999999.SH/history/").status_code, 404)
        for params in ({"from": "June"}, {"limit": "0"}, {"limit": "many"}, {"limit": "99999"}):
            with self.subTest(params=params):
                response = self.client.get("/api/funds/510300.SH/history/", params)
                self.assertEqual(response.status_code, 400)
                self.assertIn("error", response.json())
        self.assertEqual(self.client.post("/api/signals/latest/").status_code, 405)

    def test_the_feeds_parse_and_list_the_days(self):
        rss = ET.fromstring(self.client.get("/feed/rss/").content)
        titles = [item.findtext("title") for item in rss.iter("item")]
        self.assertEqual(titles[0], "ETF signals 2023-06-08: 0 BUY, 0 SELL")
        self.assertEqual(len(titles), 4)
        atom = ET.fromstring(self.client.get("/feed/atom/").content)
        entries = atom.findall("{http://www.w3.org/2005/Atom}entry")
        self.assertEqual(len(entries), 4)
        link = entries[0].find("{http://www.w3.org/2005/Atom}link").get("href")
        self.assertTrue(link.endswith("/history/2023-06-08/"))


class ApiRequestsTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08")
        self.etag = self.client.get("/api/signals/latest/")["ETag"]

    def assertJsonError(self, response, status):
        self.assertEqual(response.status_code, status)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertIn("error", response.json())

    def test_it_answers_bad_fund_codes_and_huge_limits_without_a_server_error(self):
        for url in ("/api/funds/%00/history/", "/api/funds/510300.SH%00/history/",
                    "/api/funds/%0A/history/", f"/api/funds/{'5' * 200}.SH/history/"):  # fmt: skip
            with self.subTest(url=url):
                self.assertJsonError(self.client.get(url), 404)
        huge = {"limit": "9" * 5000}
        self.assertJsonError(self.client.get("/api/funds/510300.SH/history/", huge), 400)
        nul = {"from": "2023-06-01\x00"}
        self.assertJsonError(self.client.get("/api/funds/510300.SH/history/", nul), 400)

    def test_it_validates_before_answering_not_modified(self):
        for url, params, status in (
            ("/api/funds/999999.SH/history/", {}, 404),
            ("/api/funds/510300.SH/history/", {"limit": "abc"}, 400),
            ("/api/signals/2023-06-03/", {}, 404),
            ("/api/signals/yesterday/", {}, 400),
        ):
            with self.subTest(url=url, params=params):
                response = self.client.get(url, params, HTTP_IF_NONE_MATCH=self.etag)
                self.assertJsonError(response, status)
                self.assertFalse(response.has_header("ETag"))
        fine = self.client.get("/api/funds/510300.SH/history/", HTTP_IF_NONE_MATCH=self.etag)
        self.assertEqual(fine.status_code, 304)

    def test_it_answers_head_like_get_and_other_methods_with_a_json_405(self):
        head = self.client.head("/api/signals/latest/")
        self.assertEqual(head.status_code, 200)
        self.assertEqual(head["ETag"], self.etag)
        self.assertEqual(self.client.head("/api/funds/510300.SH/history/").status_code, 200)
        strict = self.client_class(enforce_csrf_checks=True)
        for method in ("post", "put", "delete", "patch"):
            with self.subTest(method=method):
                response = getattr(strict, method)("/api/signals/latest/")
                self.assertJsonError(response, 405)
                self.assertEqual(response["Allow"], "GET, HEAD")

    def test_it_answers_unknown_api_addresses_with_a_json_404(self):
        for url in ("/api/", "/api/nope/", "/api/signals/", "/api/funds/510300.SH/"):
            with self.subTest(url=url):
                self.assertJsonError(self.client.get(url), 404)
        strict = self.client_class(enforce_csrf_checks=True)
        self.assertJsonError(strict.post("/api/nope/"), 404)

    def test_a_funds_history_changes_its_etag_with_a_run_of_an_earlier_date(self):
        url = "/api/funds/510300.SH/history/"
        etag = self.client.get(url)["ETag"]
        self.assertEqual(self.client.get(url, HTTP_IF_NONE_MATCH=etag).status_code, 304)
        run_command("run_signals", date="2023-06-07")  # rewrites that day's rows
        self.assertEqual(self.client.get(url, HTTP_IF_NONE_MATCH=etag).status_code, 200)


@override_settings(CACHES=MEMORY_CACHE)
class FeedQueriesTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-29")

    def test_it_builds_a_feed_in_a_few_queries_whatever_its_length(self):
        Signal.objects.filter(run_date=date(2023, 6, 1), fund=self.hs300).update(state="BUY")
        buy = Signal.objects.select_related("fund").get(run_date=date(2023, 6, 1), fund=self.hs300)
        # The last run, the runs, the fund lists, their members, the days' BUY and SELL.
        with self.assertNumQueries(5):
            rss = ET.fromstring(self.client.get("/feed/rss/").content)
        items = {item.findtext("title"): item.findtext("description") for item in rss.iter("item")}
        self.assertEqual(len(items), 9)
        self.assertEqual(items["ETF signals 2023-06-01: 0 BUY, 0 SELL"], buy.summary_line())
        self.assertEqual(
            items["ETF signals 2023-06-08: 0 BUY, 0 SELL"],
            "No fund crossed its averages on this day.",
        )

    def test_it_builds_each_feed_once_per_run_and_language(self):
        for url in ("/feed/rss/", "/feed/atom/"):
            with self.subTest(url=url):
                first = self.client.get(url)
                with self.assertNumQueries(1):  # the last run, which names the cached feed
                    again = self.client.get(url)
                self.assertEqual(again.content, first.content)
                self.assertEqual(again["Content-Type"], first["Content-Type"])
                self.assertEqual(again["Last-Modified"], first["Last-Modified"])
                chinese = self.client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
                self.assertIn("ETF交易信号", chinese.content.decode())
        run_command("run_signals", date="2023-06-01")  # a run of an earlier day: a new feed
        with self.assertNumQueries(5):
            self.client.get("/feed/rss/")


@override_settings(CACHES=MEMORY_CACHE)
class ApiCacheTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-05")

    def test_a_funds_history_is_built_once_per_run_and_question(self):
        url = "/api/funds/510300.SH/history/"
        with self.assertNumQueries(3):  # the fund, the last run, its signals
            first = self.client.get(url, {"from": "2023-06-06"}).json()
        with self.assertNumQueries(2):  # the fund and the last run: the answer is kept
            self.assertEqual(self.client.get(url, {"from": "2023-06-06"}).json(), first)
        with self.assertNumQueries(3):  # another question
            self.assertEqual(len(self.client.get(url, {"limit": "1"}).json()["signals"]), 1)
        Signal.objects.filter(fund=self.hs300, run_date=date(2023, 6, 7)).update(state="BUY")
        self.assertEqual(self.client.get(url, {"from": "2023-06-06"}).json(), first)
        run_command("run_signals", date="2023-06-07")  # a new run: a new answer
        Signal.objects.filter(fund=self.hs300, run_date=date(2023, 6, 7)).update(state="BUY")
        states = [
            s["state"] for s in self.client.get(url, {"from": "2023-06-06"}).json()["signals"]
        ]
        self.assertEqual(states[1], "BUY")

    def test_the_latest_answer_is_built_once_per_run(self):
        self.client.get("/api/signals/latest/")
        with self.assertNumQueries(1):  # the latest run
            self.assertEqual(
                self.client.get("/api/signals/latest/").json()["run_date"], "2023-06-08"
            )
