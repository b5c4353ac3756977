from django import template

register = template.Library()


@register.filter
def duration_s(value):
    """Seconds -> '1 h 02 min', '3 min 05 s', '12 s'."""
    try:
        s = int(round(float(value)))
    except (TypeError, ValueError):
        return ""
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


@register.filter
def human_count(value):
    try:
        n = float(value)
    except (TypeError, ValueError):
        return ""
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit} ({int(n):,})"
    return f"{int(n)}"
