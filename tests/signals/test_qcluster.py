"""The real thing: `manage.py qcluster` runs the due daily job and the digest goes out.

Each test starts the cluster as a subprocess with the production settings
module against the test database (PostgreSQL: the subprocess cannot see
SQLite's in-memory test database), makes the "daily signals" schedule of
`manage.py setup_schedules` due now for the bundled sample's last trading day,
and waits until the run succeeded and the digest reached a loopback SMTP
server. Then the cluster is stopped with SIGTERM and must exit cleanly.

django-q2's scheduler looks for due schedules only from the sentinel's guard
loop, once its counter of guard cycles reaches 30 seconds: the first look is
about 30 s after the cluster started, whatever `guard_cycle` is (below 30).
That wait is most of each test's time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from signals.models import SignalRun
from subscriptions.models import Delivery, Subscriber
from tests.base import make_fund, make_list, run_command, unavailable
from tests.processes import ServiceProcess
from tests.smtp_server import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
DAILY = "daily signals"  # the schedule `manage.py setup_schedules` makes
RUN_DATE = "2023-06-08"  # the bundled sample's last trading day
READER = "reader@example.com"
REDIS_DB = 13
QUEUE_KEY = "django_q:invest_alchemy:q"  # the Redis broker's list, for Q_CLUSTER's name
STAT_KEY = "django_q:invest_alchemy:cluster"  # where a broker keeps a running cluster's status
FINISH_WITHIN = 90  # seconds: the scheduler's first look (~30 s) plus the run
STOP_WITHIN = 30
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Only what a process needs to start; everything the app reads is set explicitly,
# so that no EMAIL_*, ANYMAIL_*, TUSHARE_* or DJANGO_SETTINGS_MODULE leaks in.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@pytest.fixture
def redis_db():
    """A Redis database of its own, empty before and after the test."""
    import redis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        unavailable(f"Redis is not reachable at {url}: {e}")
    client.flushdb()
    try:
        yield url, client
    finally:
        client.flushdb()
        client.close()


def cluster_env(test_database_url: str, sink: SmtpSink, redis_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("PG")}
    env.update(
        DJANGO_SETTINGS_MODULE="invest_alchemy.settings",
        SECRET_KEY="qcluster-test-secret-" + "k" * 40,
        DEBUG="0",
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=test_database_url,
        REDIS_URL=redis_url,  # empty: the database is the broker
        EMAIL_URL=f"smtp://{sink.host}:{sink.port}",
        ANYMAIL_PROVIDER="",
        ADMINS="",
        SIGNALS_PROVIDER="csv",
        PRICE_CSV_DIR=str(settings.SAMPLE_DATA_DIR),
        TUSHARE_TOKEN="",
        DIGEST_SEND_RATE="0",
        Q_WORKERS="1",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def qcluster(env: dict[str, str], log: Path) -> ServiceProcess:
    """`manage.py qcluster`; its sentinel and workers share its process group."""
    command = [sys.executable, "manage.py", "qcluster"]
    return ServiceProcess(
        command, cwd=ROOT, env=env, log=log, label="manage.py qcluster", stop_within=STOP_WITHIN
    )


def seed() -> Subscriber:
    """Three sample funds in two lists, a confirmed reader, the daily schedule due now."""
    hs300 = make_fund("510300.SH", "沪深300ETF")
    nasdaq = make_fund("513100.SH", "纳指ETF")
    csi1000 = make_fund("512100.SH", "中证1000ETF")
    make_list("long-etf", [hs300, nasdaq], name="Long ETF", position=1)
    make_list("other-etf", [csi1000], name="Other ETF", position=2)
    reader = Subscriber.objects.create(email=READER, status=Subscriber.Status.CONFIRMED)
    run_command("setup_schedules")
    # As created, it waits for the next 18:30; make it due now, for a sample date
    # (the job without arguments would run for today, which the sample lacks).
    updated = Schedule.objects.filter(name=DAILY).update(
        next_run=timezone.now() - timedelta(seconds=1), args=repr(RUN_DATE)
    )
    assert updated == 1
    return reader


def wait_for_the_daily_task(cluster: ServiceProcess) -> Task:
    """The task the scheduler made from the schedule, once its result is recorded."""
    deadline = time.monotonic() + FINISH_WITHIN
    while True:
        task = Task.objects.filter(group=DAILY).first()
        if task is not None:
            return task
        if not cluster.running():
            pytest.fail("qcluster exited before running the daily task" + cluster.output())
        if time.monotonic() > deadline:
            pytest.fail(
                f"no result of the daily task within {FINISH_WITHIN} s; "
                f"signal runs: {list(SignalRun.objects.values_list('run_date', 'status'))}, "
                f"deliveries: {list(Delivery.objects.values_list('status', flat=True))}"
                + cluster.output()
            )
        time.sleep(0.5)


def run_the_daily_job(
    env: dict[str, str],
    sink: SmtpSink,
    tmp_path: Path,
    while_running: Callable[[ServiceProcess], None] | None = None,
) -> ServiceProcess:
    """Start the cluster, check the job ran and the digest arrived, stop the cluster."""
    reader = seed()
    started = timezone.now()
    with qcluster(env, tmp_path / "qcluster.log") as cluster:
        task = wait_for_the_daily_task(cluster)
        out = cluster.output
        assert task.success, f"the daily task failed: {task.result}" + out()
        assert task.func == "signals.tasks.daily_signals", out()
        assert task.args == (RUN_DATE,), out()
        assert task.result == f"{RUN_DATE}: 0 BUY, 0 SELL; digest sent to 1", out()

        run = SignalRun.objects.get(run_date=date.fromisoformat(RUN_DATE))
        assert (run.status, run.funds, run.error_count, run.scope) == (
            SignalRun.Status.SUCCESS,
            3,
            0,
            "all",
        ), f"{run.status}: {run.message}" + out()
        assert run.provider.startswith("csv:"), run.provider + out()

        [delivery] = Delivery.objects.filter(subscriber=reader)
        assert delivery.digest.run_date == run.run_date, out()
        assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 1), (
            f"{delivery.status}: {delivery.last_error}" + out()
        )
        assert delivery.sent_at is not None and delivery.sent_at >= started, out()
        [message] = sink.to(READER)
        assert message["Subject"] == f"ETF signals {RUN_DATE}: 0 BUY, 0 SELL", out()
        text = message.get_body(("plain",))
        assert text is not None and "510300.SH" in text.get_content(), out()

        # The cron schedule stays, next due at the next weekday 18:30 market time.
        schedule = Schedule.objects.get(name=DAILY)
        next_run = schedule.next_run.astimezone(SHANGHAI)
        assert (schedule.task, schedule.repeats) == (task.id, -1), out()
        assert next_run > timezone.now(), f"next run {next_run}" + out()
        assert (next_run.hour, next_run.minute, next_run.weekday() < 5) == (18, 30, True), (
            f"next run {next_run}" + out()
        )
        assert Task.objects.count() == 1, "the job ran more than once" + out()
        if while_running:
            while_running(cluster)

        code = cluster.stop()
        assert code == 0, (
            f"qcluster did not stop cleanly on SIGTERM within {STOP_WITHIN} s (exit {code})" + out()
        )
        assert not cluster.leftovers(), "processes of the cluster outlived it" + out()
    assert len(sink.to(READER)) == 1, "the digest was sent twice" + cluster.output()
    return cluster


def test_the_cluster_runs_the_due_daily_job_with_the_database_as_broker(
    test_database_url, smtp, tmp_path
):
    cluster = run_the_daily_job(cluster_env(test_database_url, smtp), smtp, tmp_path)
    assert not OrmQ.objects.exists(), "the task is still queued" + cluster.output()


def test_the_cluster_runs_the_due_daily_job_with_redis_as_broker(
    test_database_url, redis_db, smtp, tmp_path
):
    url, client = redis_db

    def redis_is_the_broker(cluster: ServiceProcess) -> None:
        # The Redis broker keeps the cluster's status in Redis (the ORM one in the cache).
        assert client.keys(f"{STAT_KEY}:*"), "no cluster status in Redis" + cluster.output()

    env = cluster_env(test_database_url, smtp, redis_url=url)
    cluster = run_the_daily_job(env, smtp, tmp_path, while_running=redis_is_the_broker)
    assert client.llen(QUEUE_KEY) == 0, "the task is still queued in Redis" + cluster.output()
    assert not OrmQ.objects.exists(), "a task went to the database's queue" + cluster.output()
