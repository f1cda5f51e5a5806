import xml.etree.ElementTree as ET
from datetime import date

from signals.models import Signal
from tests.base import TushareTestCase, run_command


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
