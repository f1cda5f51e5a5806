"""The daily signal job: sync prices, compute signals, store them, record the run.

`signals_generate` is the one entry point shared by `manage.py run_signals`,
the scheduled task, the admin action and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from signals import history
from signals.models import DEFAULT_LONG, DEFAULT_SHORT, Fund, FundList, Signal, SignalRun
from signals.prices import Calendar, CalendarError, SyncReport, prices_sync
from signals.providers import Provider, ProviderError, get_provider, last_open_day
from signals.strategy import BUY, EMPTY, HOLD, INSUFFICIENT, SELL, STRATEGIES, Params, Strategy

logger = logging.getLogger(__name__)

MARKET_TZ = ZoneInfo("Asia/Shanghai")
STATE_ORDER = {BUY: 0, SELL: 1, HOLD: 2, EMPTY: 3, INSUFFICIENT: 4}
DEFAULT_STRATEGY = "dma"


class RunError(Exception):
    """The run could not be done; the message is one line for the operator."""


@dataclass(frozen=True)
class Target:
    """One fund evaluated with one strategy configuration."""

    fund: Fund
    strategy: Strategy
    params: Params

    @property
    def code(self) -> str:
        return self.strategy.code(self.params)


@dataclass
class RunOutcome:
    run_date: date
    closed: bool = False
    dry_run: bool = False
    run: SignalRun | None = None
    signals: list[Signal] = field(default_factory=list)
    lists: list[FundList] = field(default_factory=list)
    sync: SyncReport = field(default_factory=SyncReport)
    stored: int = 0

    def groups(self) -> list[tuple[str, list[Signal]]]:
        """Signals grouped like the digest: each fund list, BUY, SELL, HOLD, EMPTY."""
        listed = group_by_list(self.lists, self.signals)
        groups = [(fund_list.name, found) for fund_list, found in listed if found]
        seen = {id(s) for _fl, found in listed for s in found}
        rest = [s for s in self.signals if id(s) not in seen]
        if rest:
            groups.append(("Funds in no list", sort_signals(rest)))
        return groups


def group_by_list(
    lists: Iterable[FundList], signals: Iterable[Signal]
) -> list[tuple[FundList, list[Signal]]]:
    """Each list with its members' signals (of the list's own strategy), sorted."""
    by_key = {(s.fund_id, s.strategy): s for s in signals}
    out = []
    for fund_list in lists:
        keys = ((item.fund_id, fund_list.strategy_code) for item in fund_list.items.all())
        out.append((fund_list, sort_signals(by_key[k] for k in keys if k in by_key)))
    return out


def sort_signals(signals: Iterable[Signal]) -> list[Signal]:
    return sorted(signals, key=lambda s: STATE_ORDER.get(s.state, 9))


def market_today() -> date:
    return datetime.now(MARKET_TZ).date()


def signals_generate(
    *,
    run_date: date | None = None,
    fund_codes: Sequence[str] = (),
    list_slug: str | None = None,
    backfill_from: date | None = None,
    dry_run: bool = False,
    provider: Provider | None = None,
    provider_name: str | None = None,
    progress: history.Progress | None = None,
) -> RunOutcome:
    """Bring prices up to `run_date`, compute and store its signals, record the run.

    Running it twice for the same date leaves the same rows. A closed day
    changes nothing. With `backfill_from`, every trading day from that date
    to `run_date` gets its signals too. With `dry_run`, nothing is kept.
    """
    targets, lists = resolve_targets(fund_codes=fund_codes, list_slug=list_slug)
    try:
        provider = provider or get_provider(provider_name)
        run_date, calendar = _run_date_and_calendar(provider, run_date, targets, backfill_from)
    except (ProviderError, CalendarError) as e:
        raise RunError(str(e)) from e
    if backfill_from and backfill_from > run_date:
        raise RunError(f"--backfill-from {backfill_from} is after the run date {run_date}")
    outcome = RunOutcome(run_date=run_date, dry_run=dry_run, lists=lists)
    try:
        if not calendar.is_open(run_date):
            outcome.closed = True
            return outcome
    except (ProviderError, CalendarError) as e:
        raise RunError(str(e)) from e

    with _kept_unless(dry_run):
        run = SignalRun.objects.create(
            run_date=run_date,
            strategy=", ".join(sorted({t.code for t in targets})),
            provider=provider.name,
            scope=_describe_scope(fund_codes, list_slug),
            backfill_from=backfill_from,
        )
        outcome.run = run
        try:
            _execute(outcome, provider, calendar, targets, backfill_from, progress)
        except (ProviderError, CalendarError) as e:
            # Data not there (yet): the caller says so, and the scheduled task
            # tries again and tells the admins only after its last try.
            _finish(run, [], {}, message=str(e), failed=True, tell_admins=False)
            raise RunError(str(e)) from e
        except BaseException as e:  # a crash, or Ctrl-C: the run must not stay "running"
            _finish(run, [], {}, message=f"crashed: {type(e).__name__}: {e}", failed=True)
            raise
    return outcome


def _execute(
    outcome: RunOutcome,
    provider: Provider,
    calendar: Calendar,
    targets: list[Target],
    backfill_from: date | None,
    progress: history.Progress | None,
) -> None:
    run, run_date = outcome.run, outcome.run_date
    assert run is not None
    funds = list({t.fund.pk: t.fund for t in targets}.values())
    outcome.sync = prices_sync(provider=provider, funds=funds, calendar=calendar, until=run_date)
    errors = dict(outcome.sync.errors)
    computable = [t for t in targets if t.fund.ts_code not in errors]
    if backfill_from:
        days = calendar.open_days(backfill_from, run_date)
        result = history.backfill(computable, days, run, progress=progress)
    else:
        result = history.extend(computable, run_date, run)
    errors.update(result.errors)
    outcome.signals = result.signals
    outcome.stored = result.stored
    message = ""
    if outcome.sync.adj_missing:
        days_text = ", ".join(str(d) for d in outcome.sync.adj_missing)
        message = f"adjustment factors not published yet for {days_text}; run again later"
    # Without the day's factors every fund would show yesterday's state: the
    # run is incomplete, and no digest goes out until a later run completes it.
    incomplete = run_date in outcome.sync.adj_missing
    _finish(run, result.signals, errors, message=message, failed=False, incomplete=incomplete)


def _finish(
    run: SignalRun,
    signals: Sequence[Signal],
    errors: dict[str, str],
    *,
    message: str,
    failed: bool,
    incomplete: bool = False,
    tell_admins: bool = True,
) -> None:
    counts = {state: 0 for state in STATE_ORDER}
    for signal in signals:
        counts[signal.state] += 1
    run.funds = len({s.fund_id for s in signals}) + len(errors)
    run.buy, run.sell, run.hold = counts[BUY], counts[SELL], counts[HOLD]
    run.empty, run.insufficient = counts[EMPTY], counts[INSUFFICIENT]
    run.stale = sum(1 for s in signals if s.stale)
    run.errors = [{"ts_code": code, "error": text} for code, text in sorted(errors.items())]
    run.error_count = len(errors)
    # A run that computed no fund at all has nothing to say, however few funds it had.
    too_many = run.error_count > settings.SIGNALS_MAX_ERRORS
    if too_many:
        message = (
            f"{run.error_count} funds failed, more than SIGNALS_MAX_ERRORS="
            f"{settings.SIGNALS_MAX_ERRORS}; {message}".rstrip("; ")
        )
    elif errors and not signals:  # however few funds: a run that computed none says nothing
        too_many = True
        message = f"no fund could be computed; {message}".rstrip("; ")
    run.status = SignalRun.Status.SUCCESS
    if incomplete:
        run.status = SignalRun.Status.INCOMPLETE
    if failed or too_many:
        run.status = SignalRun.Status.FAILED
    run.message = message
    run.finished_at = timezone.now()
    run.save()
    if run.status == SignalRun.Status.FAILED and tell_admins:
        _tell_admins(run)


def _tell_admins(run: SignalRun) -> None:
    lines = [f"The signal run for {run.run_date} failed: {run.message}", ""]
    lines += [f"{e['ts_code']}: {e['error']}" for e in run.errors]
    try:
        mail_admins(f"Signal run for {run.run_date} failed", "\n".join(lines))
    except Exception:  # a broken mail set-up must not hide the run's own failure
        logger.exception("could not email the admins about run %s", run.pk)


@contextmanager
def _kept_unless(dry_run: bool) -> Iterator[None]:
    """A dry run happens inside a transaction that is rolled back."""
    if not dry_run:
        yield
        return
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _run_date_and_calendar(
    provider: Provider, run_date: date | None, targets: Sequence[Target], backfill_from: date | None
) -> tuple[date, Calendar]:
    """The run's date (default: the latest trading day) and the calendar it needs.

    One `trade_cal` call in the usual case, with or without a date: the
    calendar that finds the latest trading day also serves the run.
    """
    if run_date is not None:
        start = _calendar_start(targets, run_date, backfill_from)
        return run_date, Calendar.load(provider, start, run_date)
    today = market_today()
    start = _calendar_start(targets, today - timedelta(days=30), backfill_from)
    calendar = Calendar.load(provider, start, today)
    recent = calendar.open_days(today - timedelta(days=30), today)
    if recent:
        return recent[-1], calendar
    # Nothing open for a month: files that end in the past (the bundled sample).
    run_date = last_open_day(provider, today)
    return run_date, Calendar.load(
        provider, _calendar_start(targets, run_date, backfill_from), run_date
    )


def _calendar_start(targets: Sequence[Target], run_date: date, backfill_from: date | None) -> date:
    start = run_date - timedelta(days=90)
    synced = [t.fund.synced_until for t in targets if t.fund.synced_until]
    candidates = [start, *(d + timedelta(days=1) for d in synced)]
    if backfill_from:
        candidates.append(backfill_from)
    return min(candidates)


def _describe_scope(fund_codes: Sequence[str], list_slug: str | None) -> str:
    parts = []
    if list_slug:
        parts.append(f"list {list_slug}")
    if fund_codes:
        parts.append("funds " + ", ".join(fund_codes))
    return "; ".join(parts) or "all"


def resolve_targets(
    *, fund_codes: Sequence[str] = (), list_slug: str | None = None
) -> tuple[list[Target], list[FundList]]:
    """The (fund, strategy) pairs a run covers, and the lists to group them by."""
    lists = list(FundList.objects.prefetch_related("items"))
    if list_slug is not None:
        lists = [fl for fl in lists if fl.slug == list_slug]
        if not lists:
            known = ", ".join(FundList.objects.values_list("slug", flat=True)) or "none"
            raise RunError(f"unknown fund list {list_slug!r} (known: {known})")
    funds = Fund.objects.filter(active=True)
    if fund_codes:
        codes = [c.strip().upper() for c in fund_codes]
        found = {f.ts_code: f for f in Fund.objects.filter(ts_code__in=codes)}
        unknown = [c for c in codes if c not in found]
        if unknown:
            raise RunError(
                f"unknown fund {', '.join(unknown)}: import it with manage.py import_funds"
            )
        funds = Fund.objects.filter(ts_code__in=codes)
    by_pk = {f.pk: f for f in funds}
    targets: dict[tuple[int, str], Target] = {}
    listed: set[int] = set()
    for fund_list in lists:
        for item in fund_list.items.all():
            listed.add(item.fund_id)
            fund = by_pk.get(item.fund_id)
            if fund is not None:
                target = Target(fund, fund_list.strategy_impl, fund_list.params)
                targets.setdefault((fund.pk, target.code), target)
    if list_slug is not None and fund_codes:
        missing = [
            c for c in fund_codes if not any(t.fund.ts_code == c.upper() for t in targets.values())
        ]
        if missing:
            raise RunError(f"fund {', '.join(missing)} is not in list {list_slug!r}")
    if list_slug is None:
        # Funds that belong to no list still get the default signal.
        strategy = STRATEGIES[DEFAULT_STRATEGY]
        params = Params(DEFAULT_SHORT, DEFAULT_LONG)
        for fund in by_pk.values():
            if fund.pk not in listed:
                target = Target(fund, strategy, params)
                targets.setdefault((fund.pk, target.code), target)
    if not targets:
        raise RunError("no active funds to compute: add some with manage.py import_funds")
    return list(targets.values()), lists
