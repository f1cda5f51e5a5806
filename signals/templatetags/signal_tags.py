from __future__ import annotations

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def percent(value: float | None) -> str:
    """+4.21% (signed), localised; empty for no value."""
    if value is None:
        return ""
    sign = "+" if value > 0 else ""
    return f"{sign}{number_format(value * 100, 2)}%"


@register.filter
def percent_plain(value: float | None) -> str:
    return "" if value is None else f"{number_format(value * 100, 0)}%"


@register.filter
def price(value: float | None) -> str:
    return "" if value is None else number_format(value, 3)
