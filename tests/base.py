from __future__ import annotations

import os
from io import StringIO
from typing import NoReturn

import pytest
from django.core.management import call_command
from django.test import TestCase

from signals.models import Fund, FundList, FundListItem


def make_fund(ts_code: str, name: str = "", **fields) -> Fund:
    return Fund.objects.create(ts_code=ts_code, name=name or f"Fund {ts_code}", **fields)


def make_list(slug: str, funds: list[Fund], **fields) -> FundList:
    fund_list = FundList.objects.create(slug=slug, name=fields.pop("name", slug.title()), **fields)
    for position, fund in enumerate(funds):
        FundListItem.objects.create(fund_list=fund_list, fund=fund, position=position)
    return fund_list


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tool or service is missing here; under CI=true, fail:
    CI runs on a machine that has them, and a skip there would hide a gap."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


def run_command(*args, **options) -> str:
    """Call a management command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


class BaseTestCase(TestCase):
    """Three sample funds in two lists: a dividend payer, a split and a merge."""

    def setUp(self) -> None:
        super().setUp()
        self.hs300 = make_fund("510300.SH", "沪深300ETF")
        self.nasdaq = make_fund("513100.SH", "纳指ETF")
        self.csi1000 = make_fund("512100.SH", "中证1000ETF")
        self.long = make_list("long-etf", [self.hs300, self.nasdaq], name="Long ETF", position=1)
        self.other = make_list("other-etf", [self.csi1000], name="Other ETF", position=2)


class TushareTestCase(BaseTestCase):
    """BaseTestCase with the loopback Tushare server as the price provider."""

    @pytest.fixture(autouse=True)
    def _tushare_server(self, tushare, settings, tmp_path):
        self.server = tushare
        self.settings_fixture = settings
        self.tmp = tmp_path
