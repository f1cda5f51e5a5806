"""Send, or resume sending, the digest of a run date."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.services import (
    DigestError,
    delivery_counts,
    digest_for_date,
    digest_prepare,
    digest_send,
)


class Command(BaseCommand):
    help = (
        "Send the digest of a run date to every confirmed subscriber who has not had it "
        "yet. Safe to run again after a crash: nobody gets it twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date", help="Run date YYYY-MM-DD (default: the latest successful run)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run_date = date.fromisoformat(options["date"]) if options["date"] else None
        except ValueError:
            raise CommandError(f"bad date {options['date']!r}: use YYYY-MM-DD") from None
        try:
            digest = digest_prepare(run_date=digest_for_date(run_date))
        except DigestError as e:
            raise CommandError(str(e)) from None
        report = digest_send(digest=digest)
        for error in report.errors:
            self.stderr.write(error)
        counts = delivery_counts(digest)
        summary = (
            ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no recipients"
        )
        self.stdout.write(
            f"Digest {digest.run_date}: {report.sent} sent now, {report.retry} to retry, "
            f"{report.failed} failed; in all {summary}."
        )
