import io
import logging
import re
from datetime import datetime
from unittest import mock
from zoneinfo import ZoneInfo

import time_machine
from django.core import mail
from django.utils.module_loading import import_string
from django_q.models import Schedule

from invest_alchemy.logs import OneLineFormatter
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

    def test_a_copy_of_the_schedule_is_removed(self):
        run_command("setup_schedules")
        copy = Schedule.objects.get(name="daily signals")
        copy.pk = None
        copy.save()  # the admin's "Save as new"
        self.assertIn("Removed 1 extra schedule(s)", run_command("setup_schedules"))
        [daily] = Schedule.objects.filter(name="daily signals")
        self.assertEqual(daily.intended_date_kwarg, "intended")

    def test_a_new_cron_moves_the_next_run_and_an_unchanged_one_keeps_it(self):
        with at("2023-06-08", "12:00"):
            run_command("setup_schedules")
            missed = datetime(2023, 6, 7, 18, 30, tzinfo=SHANGHAI)  # the worker was down
            Schedule.objects.update(next_run=missed)
            run_command("setup_schedules")
            self.assertEqual(Schedule.objects.get().next_run, missed)  # still runs once
            self.settings_fixture.SIGNALS_SCHEDULE_CRON = "0 20 * * 1-5"
            run_command("setup_schedules")
        self.assertEqual(
            Schedule.objects.get().next_run, datetime(2023, 6, 8, 20, 0, tzinfo=SHANGHAI)
        )


class DailyTaskTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        Subscriber.objects.create(email="reader@example.com", status="confirmed")

    def daily(self, **kwargs) -> str:
        return import_string("signals.tasks.daily_signals")(**kwargs)

    def test_a_trading_day_runs_and_sends_the_digest(self):
        with at("2023-06-08"):
            result = self.daily()
        self.assertEqual(result, "2023-06-08: 0 BUY, 0 SELL; digest sent to 1")
        self.assertEqual(SignalRun.objects.get().status, SignalRun.Status.SUCCESS)
        self.assertEqual([m.to for m in mail.outbox], [["reader@example.com"]])

    def test_an_evening_caught_up_after_midnight_runs_for_its_own_day(self):
        # The worker was down on Thursday evening and comes back on Friday morning:
        # the scheduler passes the time the run was due (18:30 Shanghai, in UTC).
        with at("2023-06-09", "08:00"):
            result = self.daily(intended="2023-06-08T10:30:00+00:00")
        self.assertEqual(result, "2023-06-08: 0 BUY, 0 SELL; digest sent to 1")
        self.assertEqual(SignalRun.objects.get().run_date.isoformat(), "2023-06-08")

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
        Schedule.objects.filter(pk=retry.pk).update(repeats=0)  # as the scheduler leaves it
        with at("2023-06-08", "19:00"):  # published by now
            result = import_string(retry.func)(*eval(f"({retry.args},)"))
        self.assertEqual(result, "2023-06-08: 0 BUY, 0 SELL; digest sent to 1")
        self.assertFalse(Schedule.objects.filter(pk=retry.pk).exists())  # spent, cleared

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


class JobLogTestCase(TushareTestCase):
    """The job's log: one line per event, each naming the run date."""

    def setUp(self):
        super().setUp()
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(OneLineFormatter())
        logging.getLogger().addHandler(handler)
        self.addCleanup(logging.getLogger().removeHandler, handler)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def test_every_line_of_a_run_names_its_date(self):
        with at("2023-06-08"):
            import_string("signals.tasks.daily_signals")()
        job = [
            line for line in self.lines() if re.search(r" (signals|subscriptions)\.tasks ", line)
        ]
        self.assertEqual(len(job), 4, job)  # started, run, digest, done
        for line in job:
            self.assertRegex(line, r"^\S+ INFO \w+\.tasks run_date=2023-06-08 ")
        self.assertIn("subscriptions.tasks run_date=2023-06-08 digest: sent to 0", job[2])
        self.assertIn("run_date=2023-06-08 run ", job[1])
        self.assertIn("success: 3 funds, 0 BUY, 0 SELL, 0 stale, 0 errors", job[1])

    def test_a_task_that_crashes_is_reported_to_the_admins(self):
        # What django-q2 logs when a task raises; the settings send it to ADMINS.
        self.settings_fixture.ADMINS = [("Ops", "ops@example.com")]
        logging.getLogger("django-q").error(
            "Failed 'signals.tasks.daily_signals' (daily signals) - KeyError"
        )
        [report] = mail.outbox
        self.assertEqual(report.to, ["ops@example.com"])
        self.assertIn("Failed 'signals.tasks.daily_signals'", report.subject)
        # Its other errors repeat every few seconds while, say, Redis is down: logs only.
        logging.getLogger("django-q").error("Error 111 connecting to 127.0.0.1:6379.")
        self.assertEqual(len(mail.outbox), 1)

    def test_a_crash_is_logged_as_one_line_with_its_traceback(self):
        with at("2023-06-08"), mock.patch("signals.tasks.signals_generate", side_effect=KeyError):
            with self.assertRaises(KeyError):
                import_string("signals.tasks.daily_signals")()
        [crash] = [line for line in self.lines() if "daily job crashed" in line]
        self.assertRegex(crash, r"ERROR signals\.tasks run_date=2023-06-08 daily job crashed\\n")
        self.assertIn("Traceback (most recent call last):\\n", crash)
        self.assertIn("KeyError", crash)
        outside = logging.LogRecord("x", logging.INFO, "", 0, "after the job", None, None)
        self.assertNotIn("run_date", OneLineFormatter().format(outside))
