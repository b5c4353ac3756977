"""Number formats of the evaluation pages: a score (3 decimals, "—" for none), a signed difference, an interval,
and a bar's width class (tenths) for the inline score bars."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def score(value) -> str:
    return "—" if value is None else f"{float(value):.3f}"


@register.filter
def signed(value) -> str:
    return "—" if value is None else f"{float(value):+.3f}".replace("-", "−")


@register.filter
def interval(row) -> str:
    if not row or row.get("low") is None:
        return ""
    return f"[{signed(row['low'])}, {signed(row['high'])}]"


@register.filter
def verdict(row) -> str:
    """better / worse / no clear difference, from a paired row's 95 % interval."""
    if not row or row.get("low") is None or (row.get("n") or 0) < 2:
        return "too few pairs"
    if row["low"] > 0:
        return "better"
    if row["high"] < 0:
        return "worse"
    return "no clear difference"


@register.filter
def tenths(value) -> int:
    return 0 if value is None else max(0, min(10, round(float(value) * 10)))


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)
