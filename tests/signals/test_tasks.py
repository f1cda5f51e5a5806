from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine
from django.core import mail
from django.utils.module_loading import import_string
from django_q.models import Schedule

from signals.models import SignalRun
from subscriptions.models import Subscriber
from tests.base import TushareTestCase, run_command
from tests.tushare_server import Fault

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: str, clock: str = "18:30") -> time_machine.travel:
    return time_machine.travel(datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI))


class SchedulesTestCase(TushareTestCase):
    def test_setup_is_idempotent_and_the_function_imports(self):
        run_command("setup_schedules")
        run_command("setup_schedules")
        [daily] = Schedule.objects.filter(name="daily signals")
        self.assertEqual(
            (daily.schedule_type, daily.cron, daily.repeats), (Schedule.CRON, "30 18 * * 1-5", -1)
        )
        self.assertTrue(callable(import_string(daily.func)))


class DailyTaskTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        Subscriber.objects.create(email="reader@example.com", status="confirmed")

    def daily(self) -> str:
        return import_string("signals.tasks.daily_signals")()

    def test_a_trading_day_runs_and_sends_the_digest(self):
        with at("2023-06-08"):
            result = self.daily()
        self.assertEqual(result, "2023-06-08: 0 BUY, 0 SELL; digest sent to 1")
        self.assertEqual(SignalRun.objects.get().status, SignalRun.Status.SUCCESS)
        self.assertEqual([m.to for m in mail.outbox], [["reader@example.com"]])

    def test_weekends_and_holidays_are_skipped(self):
        for day in ("2023-06-03", "2023-05-01"):  # a Saturday; Labour Day, a Monday
            with self.subTest(day=day), at(day):
                self.assertEqual(self.daily(), f"{day}: closed")
        self.assertFalse(SignalRun.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_late_data_is_tried_again_later_that_evening(self):
        run_command("run_signals", date="2023-06-07")
        self.server.inject(Fault.empty(), api_name="fund_daily", times=3)
        with at("2023-06-08", "18:30"):
            self.assertEqual(self.daily(), "2023-06-08: not ready, next try at 19:00")
        retry = Schedule.objects.get(name="daily signals: retry 2023-06-08")
        self.assertEqual((retry.schedule_type, retry.args), (Schedule.ONCE, "'2023-06-08'"))
        self.assertEqual(mail.outbox, [])
        with at("2023-06-08", "19:00"):  # published by now
            result = import_string(retry.func)(*eval(f"({retry.args},)"))
        self.assertEqual(result, "2023-06-08: 0 BUY, 0 SELL; digest sent to 1")

    def test_late_adjustment_factors_are_tried_again_too(self):
        run_command("run_signals", date="2023-06-07")
        self.server.inject(Fault.empty(), api_name="fund_adj", times=3)
        with at("2023-06-08", "20:00"):
            self.assertEqual(self.daily(), "2023-06-08: not ready, next try at 20:30")
        self.assertEqual(mail.outbox, [])  # no digest from an incomplete run

    def test_after_the_last_try_the_admins_are_told_and_no_digest_goes_out(self):
        run_command("run_signals", date="2023-06-07")
        self.server.inject(Fault.empty(), api_name="fund_daily", times=3)
        with at("2023-06-08", "22:10"):
            self.assertTrue(self.daily().startswith("2023-06-08: gave up"))
        [alert] = mail.outbox
        self.assertEqual(alert.to, ["ops@example.com"])
        self.assertIn("No signals for 2023-06-08", alert.subject)
        self.assertFalse(Schedule.objects.filter(name__startswith="daily signals: retry").exists())
