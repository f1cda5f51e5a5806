from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

from signals.strategy import (
    BUY,
    EMPTY,
    HOLD,
    INSUFFICIENT,
    SELL,
    STRATEGIES,
    Params,
    Strategy,
    validate_params,
)

TS_CODE_RE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
DEFAULT_SHORT, DEFAULT_LONG = 11, 22


def validate_ts_code(value: str) -> None:
    if not TS_CODE_RE.match(value):
        raise ValidationError(f"{value!r} is not a Tushare code like 510300.SH")


class Fund(models.Model):
    ts_code = models.CharField(max_length=12, unique=True, validators=[validate_ts_code])
    name = models.CharField(max_length=100)
    exchange = models.CharField(max_length=2, editable=False)
    list_date = models.DateField(null=True, blank=True)
    delist_date = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True, help_text="Inactive funds are not fetched.")
    synced_until = models.DateField(
        null=True, blank=True, editable=False, help_text="Prices were fetched up to this day."
    )
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["ts_code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ts_code})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.exchange = self.ts_code.rpartition(".")[2]
        super().save(*args, **kwargs)


class FundList(models.Model):
    """A named, ordered group of funds, e.g. "Long ETF"; the digest follows these."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    position = models.PositiveSmallIntegerField(default=0)
    description = models.TextField(blank=True)
    strategy = models.CharField(
        max_length=20,
        default="dma",
        choices=[(key, s.label) for key, s in STRATEGIES.items()],
    )
    short_window = models.PositiveSmallIntegerField(
        default=DEFAULT_SHORT, validators=[MinValueValidator(1)]
    )
    long_window = models.PositiveSmallIntegerField(
        default=DEFAULT_LONG, validators=[MinValueValidator(2)]
    )
    funds: models.ManyToManyField[Fund, FundListItem] = models.ManyToManyField(
        Fund, through="FundListItem", related_name="lists"
    )

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            validate_params(self.params)
        except ValueError as e:
            raise ValidationError({"long_window": str(e)}) from None

    @property
    def params(self) -> Params:
        return Params(self.short_window, self.long_window)

    @property
    def strategy_impl(self) -> Strategy:
        return STRATEGIES[self.strategy]

    @property
    def strategy_code(self) -> str:
        return self.strategy_impl.code(self.params)


class FundListItem(models.Model):
    fund_list = models.ForeignKey(FundList, models.CASCADE, related_name="items")
    fund = models.ForeignKey(Fund, models.CASCADE, related_name="list_items")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["fund_list", "fund"], name="unique_fund_per_list"),
        ]

    def __str__(self) -> str:
        return f"{self.fund_list}: {self.fund}"


class PriceBar(models.Model):
    """One raw (unadjusted) daily bar with its adjustment factor.

    `adj_factor` stays empty until the provider has published it for the day;
    such a bar is never used as if it were complete.
    """

    # The unique (fund, trade_date) index serves lookups by fund.
    fund = models.ForeignKey(Fund, models.CASCADE, related_name="bars", db_index=False)
    trade_date = models.DateField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    pre_close = models.FloatField(null=True, blank=True)
    vol = models.FloatField(null=True, blank=True, help_text="Lots (100 shares).")
    amount = models.FloatField(null=True, blank=True, help_text="Thousand CNY.")
    adj_factor = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fund", "trade_date"], name="unique_bar_per_day"),
        ]
        indexes = [
            models.Index(
                fields=["fund", "trade_date"],
                condition=models.Q(adj_factor__isnull=True),
                name="bar_missing_adj",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.fund_id} {self.trade_date} {self.close}"


class SignalRun(models.Model):
    """One invocation of the signal job for one run date."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCESS = "success"
        INCOMPLETE = "incomplete", "incomplete (data not all published yet)"
        FAILED = "failed"

    run_date = models.DateField()
    strategy = models.CharField(max_length=200, help_text="Strategy codes used, e.g. dma-11-22.")
    provider = models.CharField(max_length=200)
    scope = models.CharField(max_length=200, default="all")
    backfill_from = models.DateField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    funds = models.PositiveIntegerField(default=0)
    buy = models.PositiveIntegerField(default=0)
    sell = models.PositiveIntegerField(default=0)
    hold = models.PositiveIntegerField(default=0)
    empty = models.PositiveIntegerField(default=0)
    insufficient = models.PositiveIntegerField(default=0)
    stale = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-run_date", "-started_at"]
        indexes = [models.Index(fields=["status", "-run_date"], name="run_status_date")]

    def __str__(self) -> str:
        return f"{self.run_date} {self.status}"

    @property
    def covers_everything(self) -> bool:
        """Whether the run computed every fund (not one fund or one list)."""
        return self.scope == "all" or self.scope.endswith("; all")


class Signal(models.Model):
    STATES = [(s, s) for s in (BUY, SELL, HOLD, EMPTY, INSUFFICIENT)]

    # Signals are derived rows written millions at a time by a backfill, from
    # fund ids just read from Fund: the database does not re-check each one
    # (Django still cascades deletes). The unique index serves lookups by fund.
    fund = models.ForeignKey(
        Fund, models.CASCADE, related_name="signals", db_index=False, db_constraint=False
    )
    strategy = models.CharField(max_length=40)
    run_date = models.DateField(help_text="D: the date the signal is for.")
    bar_date = models.DateField(help_text="T: the fund's last bar on or before D.")
    state = models.CharField(max_length=12, choices=STATES)
    stale = models.BooleanField(default=False, help_text="The fund has no complete bar on D.")
    note = models.CharField(max_length=200, blank=True)
    close = models.FloatField(null=True)
    qfq_close = models.FloatField(null=True)
    short_ma = models.FloatField(null=True)
    long_ma = models.FloatField(null=True)
    since = models.DateField(null=True)
    since_start = models.BooleanField(default=False)
    days = models.IntegerField(null=True)
    change = models.FloatField(null=True)
    # Which run wrote the row: a note, not a constraint the database checks on
    # each of the millions of rows a backfill writes.
    run = models.ForeignKey(
        SignalRun, models.SET_NULL, null=True, blank=True, db_constraint=False, db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fund", "strategy", "run_date"], name="unique_signal_per_day"
            ),
        ]
        indexes = [
            models.Index(fields=["run_date", "strategy", "state"], name="signal_date_state"),
        ]

    def __str__(self) -> str:
        return f"{self.fund_id} {self.run_date} {self.state}"

    @property
    def windows(self) -> tuple[str, str]:
        """The window lengths from the strategy code, e.g. ("11", "22") for dma-11-22."""
        parts = self.strategy.split("-")
        return (parts[1], parts[2]) if len(parts) == 3 else ("short", "long")

    def summary_line(self) -> str:
        """One line as the digest and the command print it, in the active language."""
        head = f"{self.fund.name} ({self.fund.ts_code}) {self.state}"
        short, long = self.windows
        if self.state in (BUY, SELL):
            line = _("%(head)s — close %(close)s, MA%(short)s %(short_ma)s, MA%(long)s %(long_ma)s")
            values: dict[str, object] = {
                "close": _price(self.close), "short_ma": _price(self.short_ma),
                "long_ma": _price(self.long_ma), "short": short, "long": long,
            }  # fmt: skip
        elif self.state in (HOLD, EMPTY):
            line = _("%(head)s since %(since)s (%(days)s days), %(change)s")
            if self.since_start:
                line = _(
                    "%(head)s since the start of the data, %(since)s (%(days)s days), %(change)s"
                )
            values = {"since": self.since, "days": self.days, "change": _percent(self.change)}
        else:
            line = _("%(head)s — not enough data for MA%(long)s yet")
            values = {"long": long}
        text = line % {"head": head, **values}
        if self.stale:
            text += _(" [stale: last bar %(day)s]") % {"day": self.bar_date}
        return text


def _price(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f}%"
