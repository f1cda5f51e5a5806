"""Importing funds from the provider's fund list or from a CSV of code,name."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from django.db import transaction
from django.db.models import Max

from signals.models import TS_CODE_RE, Fund, FundList, FundListItem
from signals.providers import Provider


class ImportFailed(Exception):
    """Nothing was imported; `problems` lists every bad line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class FundRow:
    line: int
    ts_code: str
    name: str


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    added_to_list: int = 0


def read_fund_csv(path: Path) -> list[FundRow]:
    """Rows of a `code,name` file (a header line is allowed); every problem at once."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ImportFailed([f"cannot read {path}: {e}"]) from None
    rows, problems = [], []
    for line, record in enumerate(csv.reader(text.splitlines()), start=1):
        if not record or all(not cell.strip() for cell in record):
            continue
        if line == 1 and record[0].strip().lower() in {"code", "ts_code"}:
            continue
        if len(record) != 2:
            problems.append(f"line {line}: expected 2 columns (code,name), found {len(record)}")
            continue
        code, name = record[0].strip().upper(), record[1].strip()
        if not TS_CODE_RE.match(code):
            problems.append(f"line {line}: {record[0]!r} is not a code like 510300.SH")
        elif not name:
            problems.append(f"line {line}: {code} has no name")
        elif len(name) > 100:
            problems.append(f"line {line}: the name of {code} is longer than 100 characters")
        else:
            rows.append(FundRow(line, code, name))
    seen: dict[str, int] = {}
    for row in rows:
        if row.ts_code in seen:
            problems.append(
                f"line {row.line}: {row.ts_code} already appears on line {seen[row.ts_code]}"
            )
        seen.setdefault(row.ts_code, row.line)
    if problems:
        raise ImportFailed(problems)
    if not rows:
        raise ImportFailed([f"{path} lists no funds"])
    return rows


def funds_import(
    *, provider: Provider, rows: Sequence[FundRow] | None = None, list_slug: str | None = None
) -> ImportResult:
    """Create or update funds from the provider's list, all of it or the `rows` named.

    Every row is checked against the provider's list before anything is
    written; one unknown code means nothing is imported.
    """
    basic = provider.fund_basic().set_index("ts_code", drop=False)
    basic = basic[~basic.index.duplicated()]
    if rows is None:
        names = {str(code): str(name) for code, name in basic["name"].items()}
        wanted = [FundRow(0, code, name) for code, name in names.items() if TS_CODE_RE.match(code)]
    else:
        unknown = [
            f"line {r.line}: {r.ts_code} is not a fund the provider knows"
            for r in rows
            if r.ts_code not in basic.index
        ]
        if unknown:
            raise ImportFailed(unknown)
        wanted = list(rows)
    fund_list = FundList.objects.filter(slug=list_slug).first() if list_slug else None
    if list_slug and fund_list is None:
        raise ImportFailed([f"unknown fund list {list_slug!r}: create it in the admin first"])
    result = ImportResult()
    with transaction.atomic():
        existing = {
            f.ts_code: f for f in Fund.objects.filter(ts_code__in=[r.ts_code for r in wanted])
        }
        for row in wanted:
            info = basic.loc[row.ts_code]
            values = {
                "name": row.name,
                "list_date": _day(info.get("list_date")),
                "delist_date": _day(info.get("delist_date")),
            }
            fund = existing.get(row.ts_code)
            if fund is None:
                fund = Fund(ts_code=row.ts_code, active=values["delist_date"] is None, **values)
                fund.save()
                result.created += 1
            else:
                for key, value in values.items():
                    setattr(fund, key, value)
                fund.save()
                result.updated += 1
            if fund_list is not None:
                result.added_to_list += _add_to_list(fund_list, fund)
    return result


def _add_to_list(fund_list: FundList, fund: Fund) -> int:
    if FundListItem.objects.filter(fund_list=fund_list, fund=fund).exists():
        return 0
    last = fund_list.items.aggregate(last=Max("position"))["last"]
    FundListItem.objects.create(fund_list=fund_list, fund=fund, position=(last or 0) + 1)
    return 1


def _day(value: object) -> date | None:
    return value if isinstance(value, date) and not pd.isna(value) else None
