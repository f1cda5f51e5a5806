"""django-q2 entry points: thin wrappers around the services.

`daily_signals` is what the "daily signals" schedule runs after each close
(see `manage.py setup_schedules`). It skips closed days, tries again later
the same evening while the day's data is not published, and sends the
digest after a successful run.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from time import monotonic

from django.conf import settings
from django.core.mail import mail_admins
from django_q.models import Schedule

from invest_alchemy.logs import run_date_context
from signals.models import SignalRun
from signals.providers import ProviderError, get_provider
from signals.services import MARKET_TZ, RunError, market_today, signals_generate

logger = logging.getLogger(__name__)

DAILY_SCHEDULE = "daily signals"
RETRY_NAME = "daily signals: retry {day}"


def daily_signals(run_date: str | None = None, *, intended: str | None = None) -> str:
    """Run the day's signals and send the digest; the result says what happened.

    The cron schedule passes `intended`, the time it was due: an evening
    caught up after midnight (a worker that was down) still runs for its own
    day, not for the day it happens to run on.
    """
    if run_date:
        day = date.fromisoformat(run_date)
    elif intended:
        day = datetime.fromisoformat(intended).astimezone(MARKET_TZ).date()
    else:
        day = market_today()
    with run_date_context(day):
        logger.info("daily job started")
        try:
            result = _daily(day, started=monotonic())
        except Exception:
            logger.exception("daily job crashed")  # django-q then emails the admins
            raise
        logger.info("daily job done: %s", result)
        # Spent one-off retries of this day (an armed one has repeats=1): no
        # clutter of a row per late evening in the admin's schedules.
        Schedule.objects.filter(name=RETRY_NAME.format(day=day), repeats=0).delete()
        return result


def _daily(day: date, *, started: float) -> str:
    # signals_generate reads the exchange calendar once and stops on a closed day.
    try:
        outcome = signals_generate(run_date=day, provider=get_provider())
    except (RunError, ProviderError) as e:
        return _later(day, str(e))
    if outcome.closed:
        logger.info("the exchange is closed, nothing to do")
        return f"{day}: closed"
    run = outcome.run
    assert run is not None
    logger.info(
        "run %s %s: %d funds, %d BUY, %d SELL, %d stale, %d errors",
        run.pk, run.status, run.funds, run.buy, run.sell, run.stale, run.error_count,
    )  # fmt: skip
    if run.status == SignalRun.Status.INCOMPLETE:
        return _later(day, run.message)
    if run.status != SignalRun.Status.SUCCESS:
        return f"{day}: run failed ({run.message}); admins told, no digest"
    from subscriptions.services import digest_prepare
    from subscriptions.tasks import digest_deliver

    # The digest gets what is left of the task's time; the rest is scheduled.
    deadline = started + settings.DIGEST_SEND_SECONDS
    report, rest = digest_deliver(digest_prepare(run_date=day), deadline=deadline)
    later = f", {rest}" if rest else ""
    return f"{day}: {run.buy} BUY, {run.sell} SELL; digest sent to {report.sent}{later}"


def _later(day: date, reason: str) -> str:
    """Try again in SIGNALS_RETRY_MINUTES, until SIGNALS_LAST_TRY; then tell the admins."""
    now = datetime.now(MARKET_TZ)
    next_try = now + timedelta(minutes=settings.SIGNALS_RETRY_MINUTES)
    last_try = datetime.combine(day, time.fromisoformat(settings.SIGNALS_LAST_TRY), MARKET_TZ)
    if next_try > last_try:
        logger.error("giving up: %s", reason)
        mail_admins(
            f"No signals for {day}",
            f"The data for {day} was still not available at the last try: {reason}\n"
            f"No digest was sent. Run `manage.py run_signals --date {day} --send` by hand "
            "once the data is published.",
        )
        return f"{day}: gave up ({reason})"
    Schedule.objects.update_or_create(  # one pending retry per day, however often we fail
        name=RETRY_NAME.format(day=day),
        defaults={
            "func": "signals.tasks.daily_signals",
            "args": repr(day.isoformat()),
            "schedule_type": Schedule.ONCE,
            "repeats": 1,
            "next_run": next_try,
        },
    )
    logger.warning("not ready (%s); next try at %s", reason, next_try)
    return f"{day}: not ready, next try at {next_try:%H:%M}"


def run_signals(
    run_date: str | None = None, list_slug: str | None = None, dry_run: bool = False
) -> str:
    """The admin's "Run signals…": a date (default: the latest trading day),
    everything or one list, maybe a dry run."""
    requested = date.fromisoformat(run_date) if run_date else None
    with run_date_context(requested or "latest"):
        try:
            outcome = signals_generate(run_date=requested, list_slug=list_slug, dry_run=dry_run)
        except RunError as e:
            logger.warning("nothing run: %s", e)
            return f"{requested or 'latest'}: nothing run: {e}"
        day = outcome.run_date
        if outcome.closed:
            return f"{day}: not a trading day, nothing to do"
        run = outcome.run
        assert run is not None
        dry = " (dry run, nothing kept)" if dry_run else ""
        summary = (
            f"{day}: run {run.status}{dry}: {run.buy} BUY, {run.sell} SELL, {run.hold} HOLD, "
            f"{run.empty} EMPTY, {run.error_count} errors"
        )
        logger.info("%s", summary)
        return summary
