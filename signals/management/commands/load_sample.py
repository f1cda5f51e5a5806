"""Give an empty database the bundled sample's funds, lists and signals."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from signals.funds import FundRow, funds_import
from signals.models import Fund, FundList
from signals.providers import CsvProvider

SAMPLE_LISTS = {
    ("long-etf", "Long ETF", "Broad index funds held for the long run."): [
        "510300.SH", "510500.SH", "510050.SH", "159915.SZ", "512100.SH", "588000.SH",
        "159920.SZ", "513100.SH", "513500.SH", "159941.SZ",
    ],
    ("other-etf", "Other ETF", "Sector, gold and bond funds."): [
        "518880.SH", "511010.SH", "512880.SH", "512690.SH", "512800.SH", "512010.SH",
    ],
}  # fmt: skip


class Command(BaseCommand):
    help = (
        "On a database with no funds, import the bundled sample's funds into two lists "
        "(Long ETF, Other ETF) and compute their signals. Does nothing otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backfill-from",
            default="2023-01-03",
            metavar="YYYY-MM-DD",
            help="Store every day's signals from this date (default 2023-01-03).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if Fund.objects.exists():
            self.stdout.write("Funds exist already: sample not loaded.")
            return
        provider = CsvProvider(settings.SAMPLE_DATA_DIR)
        names = provider.fund_basic().set_index("ts_code")["name"]
        for position, ((slug, name, description), codes) in enumerate(SAMPLE_LISTS.items()):
            FundList.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description, "position": position}
            )
            rows = [FundRow(0, code, names[code]) for code in codes]
            funds_import(provider=provider, rows=rows, list_slug=slug)
        call_command(
            "run_signals",
            provider="csv",
            backfill_from=options["backfill_from"],
            verbosity=options["verbosity"],
            stdout=self.stdout._out,
            stderr=self.stderr._out,
        )
