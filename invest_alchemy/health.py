"""`/healthz`: is this service doing its job? For Docker's HEALTHCHECK and monitors.

200 when the database answers, the newest successful run is recent enough and
the scheduler is not overdue; 503 with the reasons otherwise. The answer is JSON
and says the age of the last successful run either way.

It is a middleware at the top of the stack so that a probe on any address
(127.0.0.1 inside a container) gets an answer: no ALLOWED_HOSTS check, no https
redirect, no session, no language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django_q.models import Schedule

from signals.models import SignalRun
from signals.services import market_today
from signals.tasks import DAILY_SCHEDULE

PATH = "/healthz"
logger = logging.getLogger(__name__)


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != PATH:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response: HttpResponse = JsonResponse({"error": "use GET"}, status=405)
            response["Allow"] = "GET, HEAD"
        else:
            report = health_report()
            response = JsonResponse(report, status=200 if report["status"] == "ok" else 503)
            if report["problems"]:
                logger.warning("healthz: 503: %s", "; ".join(report["problems"]))
            # Django would log a 503 as an error and email the admins, on every probe.
            response._has_been_logged = True  # type: ignore[attr-defined]
        response["Cache-Control"] = "no-store"
        return response


def health_report() -> dict[str, Any]:
    problems: list[str] = []
    try:
        last = (
            SignalRun.objects.filter(status=SignalRun.Status.SUCCESS)
            .order_by("-run_date", "-finished_at")
            .values("run_date", "finished_at")
            .first()
        )
        next_run = (
            Schedule.objects.filter(name=DAILY_SCHEDULE).values_list("next_run", flat=True).first()
        )
    except DatabaseError as e:
        return {
            "status": "error",
            "problems": [f"database unreachable: {type(e).__name__}"],
            "database": "unreachable",
        }

    now = timezone.now()
    last_success = None
    if last:
        days = (market_today() - last["run_date"]).days
        finished = last["finished_at"]
        last_success = {
            "run_date": last["run_date"].isoformat(),
            "finished_at": finished.isoformat() if finished else None,
            "age_hours": round((now - finished).total_seconds() / 3600, 1) if finished else None,
            "age_days": days,
        }
        if days > settings.HEALTHZ_MAX_RUN_AGE_DAYS:
            problems.append(
                f"stale: the last successful run is for {last['run_date']}, {days} days ago "
                f"(more than HEALTHZ_MAX_RUN_AGE_DAYS={settings.HEALTHZ_MAX_RUN_AGE_DAYS})"
            )

    scheduler = None
    if next_run is not None:
        late = now - next_run
        overdue = late > timedelta(minutes=settings.HEALTHZ_SCHEDULE_GRACE_MINUTES)
        scheduler = {"next_run": next_run.isoformat(), "overdue": overdue}
        if overdue:
            problems.append(
                f"scheduler: the daily job was due at {next_run:%Y-%m-%d %H:%M %Z} and has not "
                "started (is the worker running?)"
            )

    return {
        "status": "error" if problems else "ok",
        "problems": problems,
        "database": "ok",
        "last_success": last_success,
        "scheduler": scheduler,
    }
