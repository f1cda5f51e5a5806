"""/healthz: 200 while the database answers and the job keeps up, 503 otherwise."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from django.core import mail
from django.test import TestCase, override_settings
from django.utils import timezone
from django_q.models import Schedule

from signals.models import SignalRun
from signals.services import market_today
from signals.tasks import DAILY_SCHEDULE

ROOT = Path(__file__).resolve().parent.parent


def make_run(days_ago: int, status=SignalRun.Status.SUCCESS) -> SignalRun:
    return SignalRun.objects.create(
        run_date=market_today() - timedelta(days=days_ago),
        strategy="dma-11-22",
        provider="csv",
        status=status,
        finished_at=timezone.now() - timedelta(days=days_ago, hours=-1),
    )


def schedule(next_run) -> None:
    Schedule.objects.create(
        name=DAILY_SCHEDULE,
        func="signals.tasks.daily_signals",
        schedule_type=Schedule.CRON,
        cron="30 18 * * 1-5",
    )
    # Saving a cron schedule computes its next run; set it as the scheduler left it.
    Schedule.objects.filter(name=DAILY_SCHEDULE).update(next_run=next_run)


class HealthTestCase(TestCase):
    def health(self, **extra):
        response = self.client.get("/healthz", **extra)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response["Cache-Control"], "no-store")
        return response.status_code, response.json()

    def test_healthy_reports_the_age_of_the_last_successful_run(self):
        make_run(days_ago=1)
        make_run(days_ago=0, status=SignalRun.Status.FAILED)  # failures don't count
        schedule(next_run=timezone.now() + timedelta(hours=5))
        with self.assertNumQueries(2):
            status, body = self.health()
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["database"], "ok")
        self.assertEqual(body["problems"], [])
        last = body["last_success"]
        self.assertEqual(last["run_date"], str(market_today() - timedelta(days=1)))
        self.assertEqual(last["age_days"], 1)
        self.assertAlmostEqual(last["age_hours"], 23.0, delta=0.2)
        self.assertFalse(body["scheduler"]["overdue"])

    def test_a_new_site_without_runs_or_schedule_is_healthy(self):
        status, body = self.health()
        self.assertEqual((status, body["last_success"], body["scheduler"]), (200, None, None))

    def test_a_stale_last_run_is_503(self):
        make_run(days_ago=13)
        status, body = self.health()
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "error")
        self.assertIn("stale: the last successful run is for", body["problems"][0])
        self.assertEqual(body["last_success"]["age_days"], 13)
        with override_settings(HEALTHZ_MAX_RUN_AGE_DAYS=13):
            self.assertEqual(self.health()[0], 200)

    def test_a_long_holiday_is_not_stale(self):
        make_run(days_ago=11)  # Spring Festival: 9 closed days between two weekends
        self.assertEqual(self.health()[0], 200)

    @override_settings(ADMINS=[("Admin", "admin@example.com")])
    def test_an_overdue_schedule_means_the_worker_is_not_running(self):
        make_run(days_ago=0)
        schedule(next_run=timezone.now() - timedelta(minutes=61))
        status, body = self.health()
        self.assertEqual(status, 503)
        self.assertTrue(body["scheduler"]["overdue"])
        self.assertIn("is the worker running?", body["problems"][0])
        self.assertEqual(mail.outbox, [])  # a failing probe every 30 s must not mail the admins
        Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=59))
        self.assertEqual(self.health()[0], 200)  # within the grace period

    @override_settings(ALLOWED_HOSTS=["signals.example.com"], SECURE_SSL_REDIRECT=True)
    def test_it_answers_any_host_over_plain_http(self):
        # Docker probes 127.0.0.1 inside the container, without the proxy's https header.
        self.assertEqual(self.health(HTTP_HOST="172.18.0.3:8000")[0], 200)
        self.assertEqual(self.client.get("/", HTTP_HOST="signals.example.com").status_code, 301)

    def test_only_get_and_head(self):
        self.assertEqual(self.client.head("/healthz").status_code, 200)
        response = self.client.post("/healthz")
        self.assertEqual(response.status_code, 405)
        self.assertEqual(response["Allow"], "GET, HEAD")


def test_a_database_that_does_not_answer_is_503():
    """A real refused connection, in a process whose database is a closed port."""
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/healthz'); print(r.status_code, json.dumps(r.json()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "ANYMAIL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL="postgres://postgres@127.0.0.1:9/nowhere",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "503"
    assert json.loads(body) == {
        "status": "error",
        "problems": ["database unreachable: OperationalError"],
        "database": "unreachable",
    }
