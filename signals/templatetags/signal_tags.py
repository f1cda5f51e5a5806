from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils.formats import number_format

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
