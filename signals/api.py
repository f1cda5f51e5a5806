"""A read-only JSON API: the latest signals, one run date, one fund's history.

Answers carry ETag and Last-Modified from the run they come from, so a
client polling after each close gets a cheap 304 until a new run lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import condition

from signals.models import Fund, Signal, SignalRun
from signals.selectors import (
    last_finished_run,
    latest_run,
    run_for_date,
    run_key,
    signals_by_list,
)

MAX_HISTORY = 5000
CACHE_SECONDS = 7 * 24 * 3600


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def signal_json(signal: Signal) -> dict[str, Any]:
    return {
        "ts_code": signal.fund.ts_code,
        "name": signal.fund.name,
        "strategy": signal.strategy,
        "run_date": signal.run_date.isoformat(),
        "bar_date": signal.bar_date.isoformat(),
        "state": signal.state,
        "stale": signal.stale,
        "note": signal.note,
        "close": signal.close,
        "qfq_close": signal.qfq_close,
        "short_ma": signal.short_ma,
        "long_ma": signal.long_ma,
        "since": signal.since.isoformat() if signal.since else None,
        "since_start": signal.since_start,
        "days": signal.days,
        "change": signal.change,
    }


def run_json(run: SignalRun) -> dict[str, Any]:
    """The answer for a run, built once per run (the key changes with each run)."""
    return _cached(f"run-json:{run_key(run)}", lambda: _run_json(run))


def _cached(key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """An answer's body, built once under a key that names its run."""
    cached = cache.get(key)
    if cached is None:
        cached = build()
        cache.set(key, cached, timeout=CACHE_SECONDS)
    return dict(cached)


def _run_json(run: SignalRun) -> dict[str, Any]:
    groups = signals_by_list(run.run_date)
    return {
        "run_date": run.run_date.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "counts": {
            "buy": run.buy,
            "sell": run.sell,
            "hold": run.hold,
            "empty": run.empty,
            "insufficient": run.insufficient,
            "stale": run.stale,
        },  # fmt: skip
        "lists": [
            {"slug": fl.slug, "name": fl.name, "signals": [signal_json(s) for s in signals]}
            for fl, signals in groups
        ],
    }


def _run_etag(run: SignalRun | None) -> str | None:
    return f"run-{run.pk}-{run.finished_at.timestamp():.0f}" if run and run.finished_at else None


def _run_modified(run: SignalRun | None) -> datetime | None:
    return run.finished_at if run else None


def read_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """GET, and HEAD answered like GET; any other method is a JSON 405.

    CSRF-exempt: nothing here changes state, and a POST should learn that it
    is not allowed rather than fail the CSRF check.
    """

    @csrf_exempt
    @wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = error(405, f"{request.method} is not allowed: use GET")
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return inner


def answer(request: HttpRequest, run: SignalRun | None, body: Callable[[], Any]) -> HttpResponse:
    """The JSON body, or a 304 when the client already has this run's answer.

    Called only once the request is known to be valid, so an error is never
    answered with a 304 nor carries the run's ETag.
    """

    @condition(
        etag_func=lambda _r: _run_etag(run), last_modified_func=lambda _r: _run_modified(run)
    )
    def respond(request: HttpRequest) -> HttpResponse:
        return JsonResponse(body(), json_dumps_params={"ensure_ascii": False})

    return respond(request)


@read_only
def latest(request: HttpRequest) -> HttpResponse:
    run = latest_run()
    if run is None:
        return error(404, "no signals yet")
    return answer(request, run, lambda: run_json(run))


@read_only
def by_date(request: HttpRequest, run_date: str) -> HttpResponse:
    try:
        day = date.fromisoformat(run_date)
    except ValueError:
        return error(400, f"{run_date!r} is not a date: use YYYY-MM-DD")
    run = run_for_date(day)
    if run is None:
        return error(404, f"no signals for {day}")
    return answer(request, run, lambda: run_json(run))


@read_only
def fund_history(request: HttpRequest, ts_code: str) -> HttpResponse:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD&limit=N (newest first, at most 5000)."""
    fund = Fund.objects.filter(ts_code=ts_code).first()
    if fund is None:
        return error(404, f"unknown fund {ts_code!r}")
    try:
        start = date.fromisoformat(request.GET["from"]) if "from" in request.GET else None
        end = date.fromisoformat(request.GET["to"]) if "to" in request.GET else None
    except ValueError:
        return error(400, "from and to must be dates as YYYY-MM-DD")
    limit = _limit(request.GET.get("limit", "250"))
    if limit is None:
        return error(400, f"limit must be a whole number from 1 to {MAX_HISTORY}")
    # A fund's history changes with a run of any date: the last one to finish names it.
    run = last_finished_run()
    key = f"fund-json:{fund.pk}:{start}:{end}:{limit}:{run_key(run)}"
    return answer(request, run, lambda: _cached(key, lambda: _fund_json(fund, start, end, limit)))


def _fund_json(fund: Fund, start: date | None, end: date | None, limit: int) -> dict[str, Any]:
    rows = Signal.objects.filter(fund=fund).select_related("fund").order_by("-run_date")
    if start:
        rows = rows.filter(run_date__gte=start)
    if end:
        rows = rows.filter(run_date__lte=end)
    signals = [signal_json(s) for s in rows[:limit]]
    return {"ts_code": fund.ts_code, "name": fund.name, "signals": signals}


def _limit(text: str) -> int | None:
    """A whole number from 1 to MAX_HISTORY, else None (checked before int())."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_HISTORY)):
        return None
    return int(text) if 1 <= int(text) <= MAX_HISTORY else None


@csrf_exempt
def not_found(request: HttpRequest) -> HttpResponse:
    """Any other address under /api/: a JSON 404 like the API's own errors."""
    return error(404, "no such API address: see /api/signals/latest/")
