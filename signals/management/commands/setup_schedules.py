"""Create or update the scheduled jobs; safe to run on every start."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.models import Schedule

from signals.tasks import DAILY_SCHEDULE


class Command(BaseCommand):
    help = "Create or update the django-q2 schedule of the daily signal job (by name)."

    def handle(self, *args: Any, **options: Any) -> None:
        # Cron is read in Q_CLUSTER["time_zone"], the market's clock. The default,
        # "30 18 * * 1-5", is 18:30 Monday to Friday, after the close (15:00) and
        # Tushare's evening publication; holidays are skipped by the task itself.
        # Q_CLUSTER["catch_up"] is False: a missed evening is not replayed.
        # Names are not unique in django-q2: a copy made in the admin ("Save as
        # new") would run the job twice and break update_or_create. Keep the first.
        same_name = Schedule.objects.filter(name=DAILY_SCHEDULE).order_by("pk")
        extra = list(same_name.values_list("pk", flat=True)[1:])
        if extra:
            Schedule.objects.filter(pk__in=extra).delete()
            self.stdout.write(f"Removed {len(extra)} extra schedule(s) named {DAILY_SCHEDULE!r}")
        old_cron = same_name.values_list("cron", flat=True).first()
        schedule, created = Schedule.objects.update_or_create(
            name=DAILY_SCHEDULE,
            defaults={
                "func": "signals.tasks.daily_signals",
                "schedule_type": Schedule.CRON,
                "cron": settings.SIGNALS_SCHEDULE_CRON,
                "repeats": -1,
                # The task learns when it was due, so a late run keeps its day.
                "intended_date_kwarg": "intended",
            },
        )
        if not created and old_cron != schedule.cron:
            # django-q2 works out a cron schedule's next run only when creating it;
            # after a change of SIGNALS_SCHEDULE_CRON the old time would stand.
            # (An unchanged schedule keeps its time: an evening missed while the
            # worker was down still runs once when it is back.)
            schedule.next_run = schedule.calculate_next_run()
            Schedule.objects.filter(pk=schedule.pk).update(next_run=schedule.next_run)
        verb = "created" if created else "updated"
        self.stdout.write(
            f"Schedule {schedule.name!r} {verb}: cron {schedule.cron}, next run {schedule.next_run}"
        )
