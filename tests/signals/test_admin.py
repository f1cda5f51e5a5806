from datetime import date, datetime
from unittest import mock
from zoneinfo import ZoneInfo

import time_machine
from django.contrib.auth.models import User
from django.urls import reverse
from django_q.conf import Conf
from django_q.models import OrmQ, Success

from signals.models import PriceBar, Signal, SignalRun
from tests.base import TushareTestCase, run_command


class AdminTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        self.admin = User.objects.create_superuser("admin", "admin@example.com", "password")
        self.client.force_login(self.admin)

    def test_every_changelist_opens_with_filters(self):
        run_command("run_signals", date="2023-06-08")
        run = SignalRun.objects.get()
        pages = [
            reverse("admin:signals_fund_changelist") + "?q=300&active__exact=1",
            reverse("admin:signals_fund_changelist") + f"?lists__id__exact={self.long.pk}",
            reverse("admin:signals_fundlist_changelist"),
            reverse("admin:signals_fundlist_change", args=[self.long.pk]),
            reverse("admin:signals_pricebar_changelist") + "?trade_date__year=2023&q=510300",
            reverse("admin:signals_signal_changelist") + "?state__exact=EMPTY",
            reverse("admin:signals_signal_changelist") + f"?fund__lists__id__exact={self.other.pk}",
            reverse("admin:signals_signalrun_changelist"),
            reverse("admin:signals_signalrun_change", args=[run.pk]),
        ]
        for page in pages:
            with self.subTest(page=page):
                self.assertEqual(self.client.get(page).status_code, 200)

    def test_signals_and_bars_are_read_only(self):
        run_command("run_signals", date="2023-06-08")
        signal = Signal.objects.first()
        response = self.client.post(
            reverse("admin:signals_signal_change", args=[signal.pk]), {"state": "BUY"}
        )
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.client.get(reverse("admin:signals_pricebar_add")).status_code, 403)

    def test_a_list_rejects_a_short_window_not_shorter_than_the_long(self):
        url = reverse("admin:signals_fundlist_change", args=[self.other.pk])
        data = {
            "name": "Other ETF", "slug": "other-etf", "position": 2, "description": "",
            "strategy": "dma", "short_window": 22, "long_window": 11,
            "items-TOTAL_FORMS": 0, "items-INITIAL_FORMS": 0,
        }  # fmt: skip
        response = self.client.post(url, data)
        self.assertContains(response, "the short window must be shorter than the long window")

    def test_the_run_view_runs_signals_for_a_chosen_date(self):
        url = reverse("admin:signals_signalrun_run")
        self.assertContains(self.client.get(url), "Run signals")
        response = self.client.post(
            url, {"run_date": "2023-06-08", "fund_list": "long-etf"}, follow=True
        )
        self.assertContains(response, "Signals for 2023-06-08 (Long ETF) are queued")
        # The test settings run queued tasks at once, as the worker would.
        [task] = Success.objects.all()
        self.assertEqual(task.result[:26], "2023-06-08: run success: 0")
        self.assertEqual(Signal.objects.filter(run_date=date(2023, 6, 8)).count(), 2)
        self.assertTrue(PriceBar.objects.exists())

    def test_an_empty_date_runs_the_latest_trading_day(self):
        evening = datetime(2023, 6, 8, 18, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
        with time_machine.travel(evening):
            response = self.client.post(reverse("admin:signals_signalrun_run"), {"run_date": ""})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(Success.objects.get().result[:24], "2023-06-08: run success:")

    def test_the_run_view_only_queues_the_job(self):
        with mock.patch.object(Conf, "SYNC", False):
            response = self.client.post(
                reverse("admin:signals_signalrun_run"), {"run_date": "2023-06-08"}
            )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(OrmQ.objects.count(), 1)  # waiting for the worker
        self.assertFalse(SignalRun.objects.exists())

    def test_the_run_view_explains_a_closed_day_and_a_bad_date(self):
        url = reverse("admin:signals_signalrun_run")
        self.client.post(url, {"run_date": "2023-05-01"})
        self.assertEqual(
            Success.objects.get().result, "2023-05-01: not a trading day, nothing to do"
        )
        response = self.client.post(url, {"run_date": "2023-02-30"})
        self.assertContains(response, "Enter a valid date")
        self.assertFalse(SignalRun.objects.exists())

    def test_the_run_view_needs_staff(self):
        self.client.logout()
        response = self.client.get(reverse("admin:signals_signalrun_run"))
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_staff_who_may_only_view_runs_cannot_run_the_job(self):
        from django.contrib.auth.models import Permission

        viewer = User.objects.create_user("viewer", password="x", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_signalrun"))
        self.client.force_login(viewer)
        response = self.client.post(
            reverse("admin:signals_signalrun_run"), {"run_date": "2023-06-08"}
        )
        self.assertEqual(response.status_code, 302)
        self.assertFalse(SignalRun.objects.exists())
