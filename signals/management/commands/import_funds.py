"""Import funds from the provider's fund list or from a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from signals.funds import ImportFailed, funds_import, read_fund_csv
from signals.providers import ProviderError, get_provider


class Command(BaseCommand):
    help = (
        "Create or update funds: every exchange-traded fund the provider lists, or the "
        "funds of a CSV file of code,name. A bad line imports nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", type=Path, metavar="FILE", help="A file of code,name lines.")
        parser.add_argument("--list", metavar="SLUG", help="Also add the funds to this fund list.")
        parser.add_argument(
            "--provider", choices=["tushare", "csv"], help="Force a price provider."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = read_fund_csv(options["csv"]) if options["csv"] else None
            result = funds_import(
                provider=get_provider(options["provider"]), rows=rows, list_slug=options["list"]
            )
        except ImportFailed as e:
            for problem in e.problems:
                self.stderr.write(problem)
            raise CommandError(f"nothing imported: {len(e.problems)} problem(s)") from None
        except ProviderError as e:
            raise CommandError(str(e)) from None
        message = f"{result.created} funds created, {result.updated} updated"
        if options["list"]:
            message += f", {result.added_to_list} added to {options['list']}"
        self.stdout.write(self.style.SUCCESS(message))
