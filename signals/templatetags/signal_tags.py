from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from signals.models import Signal
from signals.services import MARKET_TZ

register = template.Library()


def _rounded(value: float, places: int) -> Decimal:
    """The float rounded half up to `places` decimals.

    Django's number formatting truncates, so the rounding happens first. The
    float converts exactly, so the site shows what Signal.summary_line (the
    digest, the feeds) shows for the same value.
    """
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@register.filter
def percent(value: float | None) -> str:
    """+4.21% (signed, rounded half up), localised; empty for no value."""
    if value is None:
        return ""
    rounded = _rounded(value * 100, 2)
    sign = "+" if rounded > 0 else ""
    return f"{sign}{number_format(rounded, 2)}%"


@register.filter
def percent_plain(value: float | None) -> str:
    """67% (rounded half up to a whole percent); empty for no value."""
    return "" if value is None else f"{number_format(_rounded(value * 100, 0), 0)}%"


@register.filter
def price(value: float | None) -> str:
    return "" if value is None else number_format(_rounded(value, 3), 3)


@register.filter
def count(value: int | str | None) -> str:
    """A whole number with the language's thousands separator (1,234); empty for none."""
    return number_format(value, 0, force_grouping=True) if isinstance(value, int) else ""


@register.filter
def when(value: date | datetime | str | None, fmt: str = "") -> SafeString | str:
    """<time datetime="2023-06-08">8 Jun 2023</time>: read in the page's language, ISO inside.

    A datetime is shown in the market's time (Beijing, whatever TIME_ZONE says)
    with DATETIME_FORMAT; a date with DATE_FORMAT, or the format named by `fmt`.
    """
    if not isinstance(value, date):  # None, or a missing row's empty attribute
        return ""
    if isinstance(value, datetime):
        local = timezone.localtime(value, MARKET_TZ) if timezone.is_aware(value) else value
        shown = date_format(local, fmt or "DATETIME_FORMAT")
        return format_html(
            '<time datetime="{}">{}</time>', local.isoformat(timespec="minutes"), shown
        )
    return format_html(
        '<time datetime="{}">{}</time>', value.isoformat(), date_format(value, fmt or "DATE_FORMAT")
    )


@register.filter
def stale_reason(signal: Signal) -> str:
    """Why a fund is marked stale, in the page's language, from what the run noted."""
    day = date_format(signal.run_date)
    if signal.note.startswith("adjustment factor"):
        return _("Its price adjustment for %(day)s is not published yet.") % {"day": day}
    if signal.bar_date and signal.bar_date != signal.run_date:
        last = date_format(signal.bar_date)
        return _("No trade on %(day)s; last traded %(last)s.") % {"day": day, "last": last}
    return _("No trade on %(day)s.") % {"day": day}
