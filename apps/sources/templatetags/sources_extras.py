"""Template filters of the sources pages."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value):
    """12345 -> '12 345' (a thin space between groups); '' for None, the value itself when not a number."""
    if value is None or value == "":
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    text = f"{number:,.0f}" if abs(number) >= 100 or number == int(number) else f"{number:,.2f}"
    return text.replace(",", "\u202f")
