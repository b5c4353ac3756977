from django import template

from apps.core.templatetags.jobs_extras import short_duration

register = template.Library()


# Seconds -> "1 h 02 min", "3 min 05 s", "12 s": the same format as the Jobs page.
register.filter("duration_s", short_duration)


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


@register.filter
def percent(value):
    """A share 0..1 as a whole percentage ("83 %"); empty for anything else."""
    try:
        return f"{float(value) * 100:.0f} %"
    except (TypeError, ValueError):
        return ""
