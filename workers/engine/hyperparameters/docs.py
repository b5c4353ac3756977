"""The reference documentation of the hyperparameter table: the README's "Hyperparameters" table
(`manage.py hyperparameters --markdown` prints it) and the texts it is made of. Knows nothing of Django.

Contract: `markdown_table()` is the README's section verbatim; `default_text(row)` and
`together_text(row)` are its "default (local)" and "Together.ai" cells (the form shows them too)."""
from __future__ import annotations

from typing import Any

from workers.engine.hyperparameters.schema import BACKEND_METHODS, METHODS, Bounds, Hyperparameter
from workers.engine.hyperparameters.table import grouped


def _fmt(value: Any) -> str:
    if isinstance(value, dict):  # weights
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "(the preset's)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[]" if not value else ", ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _num(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ") if float(x).is_integer() else f"{x:g}"


def _range(bounds: Bounds | None, typ: str) -> str:
    if bounds is None:
        return ""
    lo = "" if bounds.min is None else _num(bounds.min)
    hi = "" if bounds.max is None else _num(bounds.max)
    left = "(" if bounds.min_exclusive or bounds.min is None else "["
    right = ")" if bounds.max_exclusive or bounds.max is None else "]"
    return f"{left}{lo}, {hi or '∞'}{right}"


def default_text(spec: Hyperparameter) -> str:
    if "local" not in spec.backends:
        return ""
    if isinstance(spec.default, dict):
        text = ", ".join(f"{m} {_fmt(v)}" for m, v in spec.default.items())
    else:
        text = _fmt(spec.default) if spec.default is not None else ""
    if spec.continuing_factor:
        text += f" (×{spec.continuing_factor:g} when continuing)"
    if spec.model_limit:
        text += f" (capped at the model's {spec.model_limit.replace('_', ' ')})"
    return text


def together_text(spec: Hyperparameter) -> str:
    t = spec.together
    if t is None:
        return ""
    where = f"training_type.{t.field}" if t.section == "training_type" else t.field
    parts = [f"`{where}`"]
    if t.aliases:
        parts.append("aliases " + ", ".join(f"`{a}`" for a in t.aliases))
    if t.type and t.type != spec.type:
        parts.append(t.type)
    if t.bounds:
        parts.append(_range(t.bounds, t.type or spec.type) + "".join(f' or "{a}"' for a in t.also))
    if t.sends_default:
        parts.append("default " + ("2 × lora_r" if callable(t.default) else _fmt(t.default)))
    if t.required:
        parts.append("required")
    return "; ".join(parts)


def markdown_table() -> str:
    """The reference table of every hyperparameter (the README's section is this, verbatim)."""
    lines = ["| name | type | range / choices | default (local) | methods | backends | Together.ai | what it does |",
             "|---|---|---|---|---|---|---|---|"]
    for _key, title, rows in grouped():
        lines.append(f"| **{title}** | | | | | | | |")
        for spec in rows:
            rng = _range(spec.bounds, spec.type) if spec.bounds else ", ".join(spec.choices)
            usable = [m for m in spec.methods if any(m in BACKEND_METHODS[b] for b in spec.backends)]
            methods = "all" if tuple(usable) == METHODS else ", ".join(usable)
            help_text = spec.help.replace("|", "\\|")
            lines.append(f"| `{spec.name}` | {spec.type} | {rng} | {default_text(spec)} | {methods} | "
                         f"{', '.join(spec.backends)} | {together_text(spec)} | {help_text} |")
    return "\n".join(lines) + "\n"
