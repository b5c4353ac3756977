"""Template filters for job pages: seconds as a short duration, a job's progress as text."""
from django import template

register = template.Library()


@register.filter
def short_duration(value):
    """Seconds -> '1 h 02 min', '3 min 05 s', '12 s' ('' for None)."""
    try:
        s = int(round(float(value)))
    except (TypeError, ValueError):
        return ""
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600:02d} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


@register.filter
def progress_text(progress):
    """{current, total, unit, message} -> '12 / 40 steps · message'."""
    if not isinstance(progress, dict):
        return ""
    current, total, unit = progress.get("current"), progress.get("total"), progress.get("unit") or ""
    parts = []
    if current is not None and total:
        parts.append(f"{_num(current)} / {_num(total)} {unit}".strip())
    elif current is not None:
        parts.append(f"{_num(current)} {unit}".strip())
    if progress.get("message"):
        parts.append(str(progress["message"]))
    return " · ".join(parts)


def _num(value):
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{int(f):,}" if f == int(f) else f"{f:,.1f}"
