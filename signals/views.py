from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from signals import charts
from signals.models import Fund, FundList, Signal, SignalRun
from signals.selectors import (
    Day,
    FundHistory,
    fund_history,
    latest_run,
    published_dates,
    run_for_date,
    run_key,
)
from signals.services import market_today
from signals.strategy import BUY, SELL
from subscriptions.forms import SubscribeForm

RANGES = {"3m": 92, "1y": 366, "5y": 1827, "all": None}
RANGE_LABELS = {
    "3m": gettext_lazy("3 months"),
    "1y": gettext_lazy("1 year"),
    "5y": gettext_lazy("5 years"),
    "all": gettext_lazy("All data"),
}
DAY_CACHE_SECONDS = 7 * 24 * 3600
# The home page warns that its signals are out of date when the latest run's
# date is more than this many calendar days before today (in Asia/Shanghai).
# Four covers a weekend with a one-day holiday on either side (Friday's run
# seen on Tuesday); longer closures (Spring Festival, National Day) do warn,
# and the warning says the exchanges may be closed. /healthz allows more
# (HEALTHZ_MAX_RUN_AGE_DAYS) because it pages an operator, not a reader.
LATE_AFTER_DAYS = 4


def day_html(request: HttpRequest, run: SignalRun) -> str:
    """A run's signal tables, rendered once per run and language.

    The key names the run and when it finished, so a new run (or the same
    date run again) is a new key: nothing needs invalidating by hand.
    """
    return _cached_html(
        request,
        f"day:{run_key(run)}",
        "signals/_day.html",
        lambda: {"day": Day.load(run.run_date, run)},
    )


def _cached_html(
    request: HttpRequest, key: str, template: str, context: Callable[[], dict[str, Any]]
) -> str:
    key = f"html:{key}:{request.LANGUAGE_CODE}"
    html = cache.get(key)
    if html is None:
        html = render_to_string(template, context(), request=request)
        cache.set(key, html, timeout=DAY_CACHE_SECONDS)
    return str(html)


CSRF_MARK = "@@IA:csrf@@"


class _PageMemory:
    """Whole pages per process, as encoded parts around the CSRF token.

    A plain dict, not a cache backend: backends pickle, and at a few hundred
    kilobytes per page that copy is most of the cost of a request. It keeps
    the last few pages (one per run and language) and a note of the latest
    run, refreshed at most every SITE_RUN_CHECK_SECONDS.
    """

    keep = 8

    def __init__(self) -> None:
        self.pages: dict[str, list[bytes]] = {}
        self.run: tuple[float, SignalRun | None] | None = None
        self.lock = threading.Lock()

    def latest_run(self) -> SignalRun | None:
        seconds = settings.SITE_RUN_CHECK_SECONDS
        now = time.monotonic()
        noted = self.run
        if not seconds or noted is None or now - noted[0] >= seconds:
            noted = (now, latest_run())
            self.run = noted
        return noted[1]

    def get(self, key: str) -> list[bytes] | None:
        return self.pages.get(key)

    def put(self, key: str, parts: list[bytes]) -> None:
        with self.lock:
            self.pages[key] = parts
            while len(self.pages) > self.keep:
                self.pages.pop(next(iter(self.pages)))

    def clear(self) -> None:
        with self.lock:
            self.pages.clear()
            self.run = None


page_memory = _PageMemory()


def home(request: HttpRequest) -> HttpResponse:
    """The whole page, rendered once per run and language in each process.

    The page is kept with a placeholder where the forms' CSRF token goes;
    each visitor's own token is put in on the way out.
    """
    run = page_memory.latest_run()
    late = days_late(run)
    key = f"home:{run_key(run)}:{late}:{request.LANGUAGE_CODE}"  # late: a new page each day
    parts = page_memory.get(key)
    if parts is None:
        ctx = {
            "run": run,
            "late": late,
            "day_html": day_html(request, run) if run else "",
            "form": SubscribeForm(initial={"language": request.LANGUAGE_CODE}),
            "csrf_token": CSRF_MARK,
        }
        page = render_to_string("signals/home.html", ctx, request=request)
        # Encoded once: a request only joins the parts around its own token.
        parts = [part.encode() for part in page.split(CSRF_MARK)]
        page_memory.put(key, parts)
    return HttpResponse(get_token(request).encode().join(parts))


def days_late(run: SignalRun | None) -> int:
    """How many days old the run's signals are, when that is more than expected; else 0."""
    age = (market_today() - run.run_date).days if run else 0
    return age if age > LATE_AFTER_DAYS else 0


def robots(request: HttpRequest) -> HttpResponse:
    """Crawlers may read everything but the admin and the personal links."""
    lines = ["User-agent: *", "Disallow: /admin/", "Disallow: /confirm/",
             "Disallow: /unsubscribe/", "Disallow: /preferences/", ""]  # fmt: skip
    return HttpResponse("\n".join(lines), content_type="text/plain")


def about(request: HttpRequest) -> HttpResponse:
    return render(request, "signals/about.html")


def history(request: HttpRequest) -> HttpResponse:
    """Every published run date; ?date=YYYY-MM-DD jumps to it, or to the run before."""
    dates = published_dates()
    wanted = request.GET.get("date")
    if wanted:
        try:
            day = date.fromisoformat(wanted)
        except ValueError:
            ctx = {"dates": dates, "error": _("Enter a date as YYYY-MM-DD.")}
            return render(request, "signals/history.html", ctx, status=400)
        # A weekend or holiday shows the last run before it (the first run if none).
        shown = next((d for d in dates if d <= day), dates[-1] if dates else None)
        if shown is None:  # the page says there are no signals yet
            return render(request, "signals/history.html", {"dates": dates}, status=404)
        return redirect("signals:day", run_date=shown.isoformat())
    return render(request, "signals/history.html", {"dates": dates})


def day(request: HttpRequest, run_date: str) -> HttpResponse:
    try:
        when = date.fromisoformat(run_date)
    except ValueError:
        raise Http404("not a date") from None
    if run_date != when.isoformat():  # 20230608 and the like: one address per day
        return redirect("signals:day", run_date=when.isoformat(), permanent=True)
    run = run_for_date(when)
    dates = published_dates()  # newest first
    older = next((d for d in dates if d < when), None)
    newer = next((d for d in reversed(dates) if d > when), None)
    if run is None:
        ctx: dict[str, Any] = {"day": when, "older": older, "newer": newer}
        return render(request, "signals/no_day.html", ctx, status=404)
    ctx = {"run": run, "day_html": day_html(request, run), "newer": newer, "older": older}
    return render(request, "signals/day.html", ctx)


def fund_list(request: HttpRequest, slug: str) -> HttpResponse:
    fund_list = get_object_or_404(FundList.objects.prefetch_related("items__fund"), slug=slug)
    run = latest_run()
    signals = {}
    if run:
        rows = Signal.objects.filter(run_date=run.run_date, strategy=fund_list.strategy_code)
        signals = {s.fund_id: s for s in rows.filter(fund__in=fund_list.funds.all())}
    items = [(item.fund, signals.get(item.fund_id)) for item in fund_list.items.all()]
    return render(
        request, "signals/list.html", {"fund_list": fund_list, "items": items, "run": run}
    )


def fund(request: HttpRequest, ts_code: str) -> HttpResponse:
    fund = get_object_or_404(Fund, ts_code=ts_code)  # checked and upper-cased by the URL
    chosen = request.GET.get("range", "1y")
    if chosen not in RANGES:
        raise Http404("unknown range")
    run = latest_run()
    key = f"fund:{fund.pk}:{chosen}:{run_key(run)}"
    body = _cached_html(
        request, key, "signals/_fund.html", lambda: _fund_context(fund, chosen, run)
    )
    return render(request, "signals/fund.html", {"fund": fund, "body": body})


def _fund_context(fund: Fund, chosen: str, run: SignalRun | None) -> dict[str, Any]:
    """The fund's history evaluated, charted and paired into round trips.

    It ends with the run the page shows: bars fetched since (a run still going,
    or one that failed) are not shown before their signals are published.
    """
    found = fund_history(fund, until=run.run_date if run else None)
    ranges = list(RANGE_LABELS.items())
    ctx: dict[str, Any] = {"fund": fund, "ranges": ranges, "chosen": chosen, "history": found}
    ctx["lists"] = list(fund.lists.all())
    if found is not None:
        ctx["chart"] = _chart(found, RANGES[chosen])
        current = Signal.objects.filter(fund=fund, strategy=found.strategy_code)
        ctx["signal"] = current.filter(run_date=run.run_date).first() if run else None
        ctx["trips"] = list(reversed(found.trips))
    return ctx


def _chart(history: FundHistory, days: int | None) -> str:
    """The chart over the chosen range: close, both averages, BUY/SELL markers."""
    dates = history.dates
    start = 0
    if days is not None:
        start = int(np.searchsorted(dates, dates[-1] - np.timedelta64(days, "D")))
    shown, qfq, state = dates[start:], history.qfq[start:], history.states.state[start:]
    markers = [
        charts.Marker(shown[i].item(), float(qfq[i]), str(state[i]))
        for i in np.flatnonzero((state == BUY) | (state == SELL))
    ]
    series = [
        charts.Series(_("Close (forward-adjusted)"), "close", qfq),
        charts.Series(f"MA{history.params.short}", "ma-short", history.short_ma[start:]),
        charts.Series(f"MA{history.params.long}", "ma-long", history.long_ma[start:]),
    ]
    title = f"{history.fund.name}: {date_format(shown[0].item())} – {date_format(shown[-1].item())}"
    return charts.svg(shown, series, markers, title=title, day_label=date_format)
