"""Template filters that turn stored values into words, for every page's tables and key/value lists.

- `num`: a number with thousands separators (12345 -> "12,345", 1234.5678 -> "1,234.57"; `num:1` keeps one
  decimal); anything that is not a number is shown as it is (None -> "—").
- `show`: a config value as a person reads it: None or "" -> "—", True/False -> "yes"/"no", a list ->
  its items joined by commas, a dict -> "key: value" pairs joined by commas, a float -> at most 6
  significant digits; never a Python repr such as `None`, `['a', 'b']` or `{'k': 1}`.
- `target`: a proxy target's label as people read it: `version:12` -> a link "mv-12" to the version's page,
  `provider:openrouter/gpt-4o` -> "openrouter · gpt-4o" (escaped); anything else as it is.
Load with `{% load hub_format %}`."""
from __future__ import annotations

import math
import re

from django import template
from django.urls import reverse
from django.utils.html import escape, format_html

register = template.Library()

DASH = "—"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@register.filter
def num(value, decimals=None):
    """Thousands separators. Integers (and floats that are whole) without decimals unless `decimals` is
    given; other floats rounded to `decimals` (default 2, trailing zeros dropped). Strings holding a number
    are formatted too; anything else comes back unchanged (None -> "—")."""
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    if not _is_number(value):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if decimals is not None:
        try:
            d = max(0, min(int(decimals), 10))
        except (TypeError, ValueError):
            d = 2
        return f"{value:,.{d}f}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _scalar(value) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


@register.filter
def show(value) -> str:
    """A value as words: see the module docstring."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [show(v) for v in value]
        return ", ".join(items) if items else DASH
    if isinstance(value, dict):
        if not value:
            return DASH
        return ", ".join(f"{k}: {show(v)}" for k, v in value.items())
    return _scalar(value)


_VERSION_LABEL = re.compile(r"version:([0-9]{1,18})")


def target_text(label) -> str:
    """A proxy target's label (apps.proxy.selectors.target_label) as people read it, in plain text (chart
    legends): `version:12` -> `mv-12`, `provider:openrouter/gpt-4o` -> `openrouter · gpt-4o`."""
    label = str(label or "")
    m = _VERSION_LABEL.fullmatch(label)
    if m:
        return f"mv-{m[1]}"
    if label.startswith("provider:") and "/" in label:
        provider, model = label[len("provider:"):].split("/", 1)
        return f"{provider} · {model}"
    return label


@register.filter
def target(label) -> str:
    """A proxy target's label for a page: target_text, a version linked to its page."""
    if not label:
        return DASH
    label = str(label)
    m = _VERSION_LABEL.fullmatch(label)
    if m:
        return format_html('<a href="{}">mv-{}</a>', reverse("registry:detail", args=[int(m[1])]), m[1])
    return escape(target_text(label))
