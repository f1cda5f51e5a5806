import shutil
from datetime import date, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import talib
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management.base import CommandError
from django.utils.module_loading import import_string

from signals.models import FundList, PriceBar, Signal, SignalRun
from signals.strategy import (
    STRATEGIES,
    Indicators,
    Params,
    Strategy,
    direction_of,
    round_to_tick,
)
from tests.base import TushareTestCase, make_fund, run_command
from tests.tushare_server import Fault

COMPARED = ["state", "stale", "bar_date", "close", "qfq_close", "short_ma", "long_ma", "since",
            "since_start", "days", "change"]  # fmt: skip


def snapshot(**filters) -> dict:
    """Stored signals as comparable values, keyed by fund and run date."""
    rows = Signal.objects.filter(**filters).select_related("fund")
    return {
        (s.fund.ts_code, s.run_date): tuple(
            round(v, 9) if isinstance(v, float) else v for v in (getattr(s, f) for f in COMPARED)
        )
        for s in rows
    }


class RunSignalsTestCase(TushareTestCase):
    def test_it_computes_stores_and_prints_signals_grouped_by_list(self):
        out = run_command("run_signals", date="2023-06-08")
        self.assertEqual(Signal.objects.filter(run_date=date(2023, 6, 8)).count(), 3)
        run = SignalRun.objects.get()
        self.assertEqual(run.status, SignalRun.Status.SUCCESS)
        self.assertEqual(run.provider, "tushare")
        self.assertEqual((run.funds, run.error_count), (3, 0))
        self.assertLess(out.index("Long ETF"), out.index("沪深300ETF (510300.SH)"))
        self.assertLess(out.index("纳指ETF (513100.SH)"), out.index("Other ETF"))
        self.assertIn("中证1000ETF (512100.SH) EMPTY since 2023-04-26 (43 days)", out)
        hs300 = Signal.objects.get(fund=self.hs300, run_date=date(2023, 6, 8))
        self.assertEqual(hs300.strategy, "dma-11-22")
        self.assertEqual(hs300.bar_date, date(2023, 6, 8))
        self.assertEqual(hs300.qfq_close, hs300.close)

    def test_it_is_idempotent(self):
        run_command("run_signals", date="2023-06-08")
        first = snapshot()
        self.server.reset_calls()
        run_command("run_signals", date="2023-06-08")
        self.assertEqual(snapshot(), first)
        self.assertEqual(Signal.objects.count(), 3)
        self.assertEqual(self.server.count("fund_daily") + self.server.count("fund_adj"), 0)

    def test_daily_increment_costs_three_calls(self):
        run_command("run_signals", date="2023-06-07")
        self.server.reset_calls()
        run_command("run_signals", date="2023-06-08")
        self.assertEqual(
            [c.api_name for c in self.server.calls], ["trade_cal", "fund_daily", "fund_adj"]
        )
        self.assertEqual(self.server.calls[1].params["trade_date"], "20230608")

    def test_the_daily_job_and_a_run_without_a_date_cost_three_calls_too(self):
        run_command("run_signals", date="2023-06-06")
        evening = datetime(2023, 6, 7, 18, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
        with time_machine.travel(evening):
            self.server.reset_calls()
            run_command("run_signals")  # the latest trading day: 2023-06-07
            self.assertEqual(
                [c.api_name for c in self.server.calls], ["trade_cal", "fund_daily", "fund_adj"]
            )
            self.assertTrue(SignalRun.objects.filter(run_date=date(2023, 6, 7)).exists())
        with time_machine.travel(evening + timedelta(days=1)):
            self.server.reset_calls()
            import_string("signals.tasks.daily_signals")()
            self.assertEqual(
                [c.api_name for c in self.server.calls], ["trade_cal", "fund_daily", "fund_adj"]
            )
            self.assertTrue(SignalRun.objects.filter(run_date=date(2023, 6, 8)).exists())

    def test_incremental_day_equals_recomputation_from_scratch(self):
        # 513100.SH split (2022-01-14) and 512100.SH merge (2022-09-05) are inside the range.
        run_command("run_signals", date="2021-12-01")
        days = [c.cal_date for c in self._open_days(date(2021, 12, 2), date(2022, 9, 30))]
        for day in days[::7] + [date(2022, 1, 14), date(2022, 9, 5), date(2022, 9, 6)]:
            run_command("run_signals", date=day.isoformat())
        incremental = snapshot()
        self.assertGreater(len(incremental), 3 * 30)
        for day in sorted({day for _code, day in incremental}):
            Signal.objects.all().delete()
            run_command("run_signals", date=day.isoformat())
            fresh = snapshot(run_date=day)
            self.assertEqual(fresh, {k: v for k, v in incremental.items() if k[1] == day}, day)

    def test_a_lists_backfill_keeps_the_whole_markets_day_records(self):
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-01")
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-01", list="other-etf")
        day = SignalRun.objects.filter(run_date=date(2023, 6, 5))
        self.assertEqual(
            sorted((r.scope.split("; ")[1], r.funds) for r in day),
            [("all", 3), ("list other-etf", 1)],
        )
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-01")  # again
        self.assertEqual(day.count(), 2)  # the market's record replaced, not added

    def test_backfill_matches_day_by_day_runs(self):
        out = run_command("run_signals", date="2022-09-30", backfill_from="2022-08-15")
        self.assertIn("HOLD", out)
        backfilled = snapshot()
        days = sorted({day for _code, day in backfilled})
        self.assertEqual(days[0], date(2022, 8, 15))
        self.assertEqual(len(backfilled), 3 * len(days))
        Signal.objects.all().delete()
        for day in days:
            run_command("run_signals", date=day.isoformat())
        self.assertEqual(snapshot(), backfilled)

    def test_backfill_twice_leaves_the_same_rows(self):
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-01")
        first = snapshot()
        runs = set(SignalRun.objects.values_list("run_date", "status", "funds", "hold", "empty"))
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-01")
        self.assertEqual(snapshot(), first)
        again = SignalRun.objects.exclude(run_date=date(2023, 6, 8))
        self.assertEqual(set(again.values_list("run_date", "status", "funds", "hold", "empty")),
                         {r for r in runs if r[0] != date(2023, 6, 8)})  # fmt: skip

    def test_each_backfilled_day_gets_a_run_with_its_counts(self):
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-29")
        days = sorted({day for _code, day in snapshot()})
        runs = {r.run_date: r for r in SignalRun.objects.all()}
        self.assertEqual(sorted(runs), days)
        for day, run in runs.items():
            stored = Signal.objects.filter(run_date=day)
            self.assertEqual(run.status, SignalRun.Status.SUCCESS)
            self.assertEqual(run.funds, 3)
            self.assertEqual(run.hold, stored.filter(state="HOLD").count())
            self.assertEqual(run.empty, stored.filter(state="EMPTY").count())
            self.assertEqual(set(stored.values_list("run_id", flat=True)), {runs[days[-1]].pk})

    def test_a_closed_day_says_so_and_changes_nothing(self):
        out = run_command("run_signals", date="2023-05-01")  # Labour Day, a Monday
        self.assertIn("2023-05-01 is not a trading day", out)
        self.assertFalse(SignalRun.objects.exists())
        self.assertFalse(PriceBar.objects.exists())

    def test_a_suspended_fund_is_marked_stale(self):
        run_command("run_signals", date="2022-01-13", fund=["513100.SH"])
        signal = Signal.objects.get(fund=self.nasdaq)
        self.assertTrue(signal.stale)
        self.assertEqual(signal.bar_date, date(2022, 1, 12))
        self.assertIn("no trade on 2022-01-13", signal.note)

    def test_missing_adjustment_factor_is_stale_not_yesterdays_signal(self):
        run_command("run_signals", date="2023-06-07")
        self.server.inject(Fault.empty(), api_name="fund_adj", times=3)
        with self.assertRaisesMessage(CommandError, "run for 2023-06-08 incomplete"):
            run_command("run_signals", date="2023-06-08")
        signals = Signal.objects.filter(run_date=date(2023, 6, 8))
        self.assertEqual({s.stale for s in signals}, {True})
        self.assertEqual({s.bar_date for s in signals}, {date(2023, 6, 7)})
        self.assertIn("adjustment factor for 2023-06-08 not published yet", signals[0].note)
        run = SignalRun.objects.get(run_date=date(2023, 6, 8))
        self.assertEqual(run.status, SignalRun.Status.INCOMPLETE)
        self.assertIn("adjustment factors not published yet for 2023-06-08", run.message)
        # The factor arrives: the next run completes the bar and the signal.
        run_command("run_signals", date="2023-06-08")
        self.assertFalse(Signal.objects.filter(run_date=date(2023, 6, 8), stale=True).exists())
        latest = SignalRun.objects.filter(run_date=date(2023, 6, 8)).order_by("-finished_at")
        self.assertEqual(latest.first().status, SignalRun.Status.SUCCESS)
        self.assertFalse(PriceBar.objects.filter(adj_factor__isnull=True).exists())

    def test_dry_run_keeps_nothing(self):
        out = run_command("run_signals", date="2023-06-08", dry_run=True)
        self.assertIn("dry run", out)
        self.assertIn("沪深300ETF (510300.SH)", out)
        self.assertFalse(Signal.objects.exists())
        self.assertFalse(SignalRun.objects.exists())
        self.assertFalse(PriceBar.objects.exists())

    def test_it_filters_by_fund_and_by_list(self):
        run_command("run_signals", date="2023-06-08", fund=["510300.SH"])
        self.assertEqual(
            list(Signal.objects.values_list("fund__ts_code", flat=True)), ["510300.SH"]
        )
        run_command("run_signals", date="2023-06-08", list="other-etf")
        self.assertEqual(Signal.objects.count(), 2)
        self.assertEqual(SignalRun.objects.first().scope, "list other-etf")

    def test_a_list_with_other_windows_gets_its_own_signals(self):
        self.other.short_window, self.other.long_window = 5, 20
        self.other.save()
        run_command("run_signals", date="2023-06-08")
        signal = Signal.objects.get(fund=self.csi1000)
        self.assertEqual(signal.strategy, "dma-5-20")
        self.assertEqual(signal.windows, ("5", "20"))

    def test_more_failures_than_the_threshold_fail_the_run(self):
        self.settings_fixture.SIGNALS_MAX_ERRORS = 1
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        make_fund("159999.SZ", "Unknown one")
        make_fund("159998.SZ", "Unknown two")
        with self.assertRaisesMessage(
            CommandError, "2 funds failed, more than SIGNALS_MAX_ERRORS=1"
        ):
            run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get()
        self.assertEqual(run.status, SignalRun.Status.FAILED)
        self.assertEqual([e["ts_code"] for e in run.errors], ["159998.SZ", "159999.SZ"])
        self.assertEqual(Signal.objects.count(), 3)  # the good funds still have theirs
        self.assertEqual(len(mail.outbox), 1)
        self.assertIn("159999.SZ", mail.outbox[0].body)

    def test_a_crash_marks_the_run_failed_and_tells_the_admins(self):
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("signals.history.extend", lambda *a: 1 / 0)
            with self.assertRaises(ZeroDivisionError):
                run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get()
        self.assertEqual(run.status, SignalRun.Status.FAILED)
        self.assertIn("crashed: ZeroDivisionError", run.message)
        self.assertEqual(len(mail.outbox), 1)

    def test_a_fund_not_listed_yet_is_skipped_without_error(self):
        make_fund("588999.SH", "Listed later", list_date=date(2024, 1, 2))
        run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get()
        self.assertEqual((run.status, run.error_count, run.funds), (SignalRun.Status.SUCCESS, 0, 3))

    def test_failures_up_to_the_threshold_keep_the_run_successful(self):
        make_fund("159999.SZ", "Unknown one")
        run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get()
        self.assertEqual((run.status, run.error_count), (SignalRun.Status.SUCCESS, 1))

    def test_backfill_shows_a_progress_bar(self):
        from io import StringIO

        from django.core.management import call_command

        err = StringIO()
        call_command(
            "run_signals",
            date="2023-06-08",
            backfill_from="2023-06-01",
            stdout=StringIO(),
            stderr=err,
        )
        self.assertIn("backfill 6 days: 100%", err.getvalue())
        self.assertIn("3/3", err.getvalue())

    def _open_days(self, start, end):
        from signals.providers import get_provider

        calendar = get_provider().trade_cal(start, end)
        return list(calendar[calendar["is_open"]].itertuples())


class RunSignalsErrorsTestCase(TushareTestCase):
    def test_a_bad_date_is_one_clear_line(self):
        with self.assertRaisesMessage(CommandError, "bad date '2023-13-01': use YYYY-MM-DD"):
            run_command("run_signals", date="2023-13-01")

    def test_an_unknown_fund_is_refused(self):
        with self.assertRaisesMessage(CommandError, "unknown fund 159000.SZ"):
            run_command("run_signals", date="2023-06-08", fund=["159000.SZ"])
        self.assertFalse(SignalRun.objects.exists())

    def test_an_unknown_list_is_refused(self):
        with self.assertRaisesMessage(CommandError, "unknown fund list 'nope'"):
            run_command("run_signals", date="2023-06-08", list="nope")

    def test_forcing_tushare_without_a_token_is_refused(self):
        self.settings_fixture.TUSHARE_TOKEN = ""
        with self.assertRaisesMessage(CommandError, "TUSHARE_TOKEN is not set"):
            run_command("run_signals", date="2023-06-08", provider="tushare")

    def test_a_provider_that_is_down_fails_with_the_call_named(self):
        self.server.inject(Fault.http(500), times=3)
        with self.assertRaisesMessage(CommandError, "Tushare trade_cal("):
            run_command("run_signals", date="2023-06-08")

    def test_a_provider_down_during_the_run_marks_it_failed(self):
        run_command("run_signals", date="2023-06-07")
        self.server.inject(Fault.http(500), api_name="fund_daily", times=3)
        expected = "Tushare fund_daily(trade_date=20230608) failed after 3 tries"
        with self.assertRaisesMessage(CommandError, expected):
            run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get(run_date=date(2023, 6, 8))
        self.assertEqual(run.status, SignalRun.Status.FAILED)
        self.assertIn("failed after 3 tries", run.message)

    def test_backfill_after_the_run_date_is_refused(self):
        with self.assertRaisesMessage(CommandError, "is after the run date"):
            run_command("run_signals", date="2023-06-01", backfill_from="2023-06-08")


class FundDeletionTestCase(TushareTestCase):
    def test_deleting_a_fund_deletes_its_bars_and_signals(self):
        run_command("run_signals", date="2023-06-08", backfill_from="2023-06-01")
        self.hs300.delete()
        self.assertFalse(Signal.objects.filter(fund_id=self.hs300.pk).exists())
        self.assertFalse(PriceBar.objects.filter(fund_id=self.hs300.pk).exists())
        self.assertTrue(Signal.objects.filter(fund=self.nasdaq).exists())


class CsvLateDayTestCase(TushareTestCase):
    """A CSV folder whose calendar runs a day ahead of its bars."""

    def test_an_open_day_without_bars_is_not_published_yet_and_is_fetched_later(self):
        sample = settings.SAMPLE_DATA_DIR
        folder = self.tmp / "prices"
        folder.mkdir()
        for name in ("fund_basic", "trade_cal"):
            shutil.copy(sample / f"{name}.csv", folder)

        def copy_until(last: str) -> None:
            for name in ("fund_daily", "fund_adj"):
                lines = (sample / f"{name}.csv").read_text().splitlines(keepends=True)
                rows = [line for line in lines[1:] if line.split(",")[1] <= last]
                (folder / f"{name}.csv").write_text(lines[0] + "".join(rows))

        self.settings_fixture.PRICE_CSV_DIR = str(folder)
        copy_until("20230607")
        run_command("run_signals", date="2023-06-07", provider="csv")
        with self.assertRaisesMessage(CommandError, "fund_daily.csv has no rows for 2023-06-08"):
            run_command("run_signals", date="2023-06-08", provider="csv")
        self.assertFalse(PriceBar.objects.filter(trade_date=date(2023, 6, 8)).exists())
        self.assertFalse(
            SignalRun.objects.filter(run_date=date(2023, 6, 8), status="success").exists()
        )

        copy_until("20230608")  # the day's files arrive
        run_command("run_signals", date="2023-06-08", provider="csv")
        self.assertEqual(PriceBar.objects.filter(trade_date=date(2023, 6, 8)).count(), 3)
        run = SignalRun.objects.filter(run_date=date(2023, 6, 8)).latest("started_at")
        self.assertEqual((run.status, run.stale), (SignalRun.Status.SUCCESS, 0))


def ema_indicators(qfq: np.ndarray, params: Params) -> Indicators:
    """Exponential averages: each depends on the whole history, not on a window."""
    short_ma = round_to_tick(talib.EMA(qfq, timeperiod=params.short))
    long_ma = round_to_tick(talib.EMA(qfq, timeperiod=params.long))
    return Indicators(short_ma, long_ma, direction_of(short_ma, long_ma))


EMA = Strategy("ema", "Exponential averages", ema_indicators, lookback=lambda params: None)


class SecondStrategyTestCase(TushareTestCase):
    """A strategy registered beside the DMA runs with no change to the run code."""

    def test_its_daily_runs_equal_a_full_evaluation(self):
        days = ["2023-05-29", "2023-05-30", "2023-05-31", "2023-06-01", "2023-06-02"]
        with mock.patch.dict(STRATEGIES, {"ema": EMA}):
            FundList.objects.filter(slug="long-etf").update(strategy="ema")
            for day in days:
                run_command("run_signals", date=day)  # each extends the day before
            daily = snapshot(run_date=date(2023, 6, 2))
            Signal.objects.all().delete()
            run_command("run_signals", date="2023-06-02")
            self.assertEqual(snapshot(run_date=date(2023, 6, 2)), daily)
        strategies = Signal.objects.values_list("fund__ts_code", "strategy")
        self.assertEqual(
            sorted(strategies),
            [("510300.SH", "ema-11-22"), ("512100.SH", "dma-11-22"), ("513100.SH", "ema-11-22")],
        )

        # The averages are not the DMA's: the registered strategy was used.
        def averages(strategy: str) -> list:
            rows = Signal.objects.filter(strategy=strategy, fund__lists__slug="long-etf")
            return sorted(rows.values_list("fund__ts_code", "short_ma", "long_ma"))

        ema = averages("ema-11-22")
        FundList.objects.filter(slug="long-etf").update(strategy="dma")
        run_command("run_signals", date="2023-06-02")
        self.assertNotEqual(averages("dma-11-22"), ema)
