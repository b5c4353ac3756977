"""One value of a hyperparameter: parsed, checked against its row, or refused with the message a
person sees (the same in the form, in /api 422 bodies and from the Together mapping). Knows nothing of
Django.

Contract: `check(row, value, backend=)` returns (clean value, None) or (None, message); numbers accept
numeric strings (what a form posts); weights an object, a JSON object or "name=weight, ..." text; Together's
numbers use Together's type and bounds and a message that names the hyperparameter. `parse_bool(value)`
reads a form's or a JSON body's boolean."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from workers.engine.hyperparameters.schema import Bounds, Hyperparameter


def _shown(value: Any) -> str:
    """How a rejected value is quoted: numbers (also numeric strings, as a form posts them) as numbers."""
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            num = float(value)
        except (TypeError, ValueError, OverflowError):
            num = None
        if num is not None and math.isfinite(num):
            return str(int(num)) if num.is_integer() and abs(num) < 1e15 else repr(num)
    return repr(value)


def parse_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return bool(value)


def _number(value: Any, typ: str, bounds: Bounds | None) -> tuple[Any, str | None]:
    """(number, None) or (None, the local message)."""
    if isinstance(value, bool):
        return None, "Must be a number."
    try:
        num = float(value)
    except (TypeError, ValueError, OverflowError):
        return None, "Must be a number."
    if not math.isfinite(num):
        return None, "Must be a finite number."
    if typ == "int" and num != int(num):
        return None, "Must be a whole number."
    if bounds is not None and not bounds.contains(num):
        return None, f"Must be {bounds.describe_local()} (got {_shown(value)})."
    return (int(num) if typ == "int" else num), None


def _weights(spec: Hyperparameter, value: Any) -> tuple[Any, str | None]:
    """{name: number} from an object, a JSON object string or "name=weight, name=weight" (what a form posts).
    Which names exist and which weights are allowed is the reward registry's to say (run_create asks it)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                return None, spec.invalid
        else:
            parsed: dict[str, Any] = {}
            for part in re.split(r"[,\n]", text):
                if not part.strip():
                    continue
                name, sep, weight = part.partition("=") if "=" in part else part.partition(":")
                if not sep or not name.strip():
                    return None, spec.invalid
                parsed[name.strip()] = weight.strip()
            value = parsed
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return None, spec.invalid
    out: dict[str, float] = {}
    for name, weight in value.items():
        if isinstance(weight, bool):
            return None, f"{name}: a weight is a number, not {weight!r}."
        try:
            out[name] = float(weight)
        except (TypeError, ValueError):
            return None, f"{name}: a weight is a number, not {str(weight)[:40]!r}."
    return out, None


def check(spec: Hyperparameter, value: Any, *, backend: str = "local") -> tuple[Any, str | None]:
    """Parse one non-empty value for `backend`: (clean value, None), or (None, the message for the user).

    Numbers accept numeric strings (what a form posts). Together's numbers use Together's type and bounds
    and a message that names the hyperparameter ("Epochs must be a whole number from 1 to 100 (got 0.5).")."""
    remote = backend == "together" and spec.together is not None
    typ = spec.together_type() if remote else spec.type
    if typ in ("int", "float"):
        bounds = spec.together_bounds() if remote else spec.bounds
        if remote and spec.together.also and value in spec.together.also:
            return value, None
        number, message = _number(value, typ, bounds)
        if message is None or not remote:
            return number, message
        what = "a whole number" if typ == "int" else "a number"
        rng = bounds.describe() if bounds else ""
        also = "".join(f', or "{a}"' for a in spec.together.also)
        return None, f"{spec.label} must be {what}{' ' + rng if rng else ''}{also} (got {_shown(value)})."
    if typ == "bool":
        return parse_bool(value), None
    if typ == "choice":
        if value not in spec.choices:
            return None, spec.invalid.format(choices=", ".join(spec.choices))
        return value, None
    if typ == "modules":
        if isinstance(value, str) and value.strip():
            return value.strip(), None
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
            return [v.strip() for v in value], None
        return None, spec.invalid
    if typ == "weights":
        return _weights(spec, value)
    if typ == "size":  # a named size, or an object of dims (grow's target_size: workers.engine.grow.plan)
        from workers.engine.grow.plan import parse_target

        clean, message = parse_target(value)
        return (clean, None) if message is None else (None, message if isinstance(value, dict) else
                                                      spec.invalid.format(choices=", ".join(spec.choices)))
    if typ == "prompts":
        if isinstance(value, str):
            value = [line for line in value.splitlines() if line.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return None, spec.invalid
        return list(value)[: spec.max_items or None], None
    # str
    if not isinstance(value, str) or not value.strip() or (spec.pattern and not re.fullmatch(spec.pattern, value)):
        return None, spec.invalid
    return value.strip(), None
