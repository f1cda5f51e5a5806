"""Run the daily signal job by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management import call_command
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    no_translations,
)
from tqdm import tqdm

from signals.models import SignalRun
from signals.services import RunError, RunOutcome, signals_generate


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"bad date {value!r}: use YYYY-MM-DD") from None


class Command(BaseCommand):
    help = (
        "Fetch missing prices, compute and store the signals of a trade date, and print "
        "them grouped by fund list. Running it twice for a date leaves the same rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date",
            help="Trade date YYYY-MM-DD (default: the latest trade date on or before "
            "today, Asia/Shanghai).",
        )
        parser.add_argument(
            "--fund",
            action="append",
            default=[],
            metavar="TS_CODE",
            help="Only this fund (repeatable).",
        )
        parser.add_argument("--list", metavar="SLUG", help="Only the funds of this fund list.")
        parser.add_argument(
            "--backfill-from",
            metavar="YYYY-MM-DD",
            help="Also compute and store every trading day's signals from this date.",
        )
        parser.add_argument(
            "--provider", choices=["tushare", "csv"], help="Force a price provider."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Compute and print, keep nothing."
        )
        parser.add_argument(
            "--send", action="store_true", help="Send the digest after a successful run."
        )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        try:
            outcome = signals_generate(
                run_date=parse_date(options["date"]) if options["date"] else None,
                fund_codes=options["fund"],
                list_slug=options["list"],
                backfill_from=(
                    parse_date(options["backfill_from"]) if options["backfill_from"] else None
                ),
                dry_run=options["dry_run"],
                provider_name=options["provider"],
                progress=self._progress if verbosity >= 1 else None,
            )
        except RunError as e:
            raise CommandError(str(e)) from None
        if outcome.closed:
            self.stdout.write(f"{outcome.run_date} is not a trading day: nothing to do.")
            return
        if verbosity >= 1:
            self._print(outcome)
        run = outcome.run
        assert run is not None
        if run.status == SignalRun.Status.FAILED:
            raise CommandError(f"run for {run.run_date} failed: {run.message}")
        if run.status == SignalRun.Status.INCOMPLETE:
            raise CommandError(f"run for {run.run_date} incomplete: {run.message}")
        if options["send"] and not outcome.dry_run:
            call_command(
                "send_digest", date=run.run_date.isoformat(), stdout=self.stdout._out,
                stderr=self.stderr._out, verbosity=verbosity,
            )  # fmt: skip

    def _progress(self, total: int, desc: str) -> tqdm[Any]:
        return tqdm(total=total, desc=desc, unit="fund", file=self.stderr._out, mininterval=0.5)

    def _print(self, outcome: RunOutcome) -> None:
        run = outcome.run
        assert run is not None
        title = f"Signals for {outcome.run_date}"
        if outcome.dry_run:
            title += " (dry run, nothing stored)"
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        for name, signals in outcome.groups():
            self.stdout.write(self.style.MIGRATE_LABEL(name))
            for signal in signals:
                self.stdout.write(f"  {signal.summary_line()}")
        for error in run.errors:
            self.stdout.write(self.style.ERROR(f"  {error['ts_code']}: {error['error']}"))
        if run.message:
            self.stdout.write(self.style.WARNING(run.message))
        summary = (
            f"{run.buy} BUY, {run.sell} SELL, {run.hold} HOLD, {run.empty} EMPTY, "
            f"{run.insufficient} INSUFFICIENT, {run.stale} stale, {run.error_count} errors; "
            f"{outcome.stored} signals stored, "
            f"{outcome.sync.bars} bars fetched ({outcome.sync.mode})"
        )
        style = self.style.SUCCESS if run.status == SignalRun.Status.SUCCESS else self.style.ERROR
        self.stdout.write(style(summary))
