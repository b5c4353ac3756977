"""The hyperparameters of a local run: defaults, validation, and what the engine assumes. Knows
nothing of Django.

Contract: `local_defaults(method, continuing=, limits=)` is what empty inputs mean (the learning rate
scaled when continuing, max_seq_len capped at the base model's context length); `clean_local(hp,
method=, ...)` returns (effective configuration, [(name, message)]): every value the engine will use,
rows the method does not use ignored, unknown names refused with `unknown_message`. `ENGINE_DEFAULTS` is
what the engine falls back to for a key a job does not carry (a lora run's defaults, plus scratch's)."""
from __future__ import annotations

from typing import Any

from workers.engine.hyperparameters.table import BY_NAME, TABLE, applicable, applies_checked
from workers.engine.hyperparameters.values import check, parse_bool


def local_defaults(method: str, *, continuing: bool = False, limits: dict | None = None) -> dict:
    """The effective value of every hyperparameter a local run of `method` uses, when nothing is given.
    `limits`: the base model's {context_length, hidden_size} (caps max_seq_len's default)."""
    limits = limits or {}
    out = {}
    for spec in applicable(method, "local"):
        value = spec.default_for(method, continuing=continuing, limit=limits.get(spec.model_limit))
        if value is not None:
            out[spec.name] = value
    return out


def clean_local(hp: Any, *, method: str, continuing: bool = False,
                limits: dict | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """Validate a local run's hyperparameters: (effective configuration, [(name, message)]).

    Empty values (None, "") mean the default. Keys that the table has but `method` does not use are
    ignored (neither validated nor stored); names the table does not know are errors. Run options
    (RUN_OPTIONS) are left to the caller, except allow_truncation, which is kept as a boolean. The result
    holds every value the engine will use, so run pages and comparisons show the whole configuration."""
    if not isinstance(hp, dict):
        return {}, [("", "Must be an object.")]
    limits = {k: v for k, v in (limits or {}).items() if v}
    errors: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    for key, value in hp.items():
        if value is None or value == "":
            continue
        if key == "stages":
            continue
        if key == "allow_truncation":
            out[key] = parse_bool(value)
            continue
        spec = BY_NAME.get(key)
        if spec is None:
            errors.append((key, unknown_message(key)))
            continue
        if not applies_checked(spec, method, "local"):
            continue
        clean, message = check(spec, value)
        if message:
            errors.append((key, message))
            continue
        limit = limits.get(spec.model_limit) if spec.model_limit else None
        if limit and clean > limit:
            errors.append((key, spec.limit_message.format(value=clean, limit=limit)))
            continue
        out[key] = clean
    for name, value in local_defaults(method, continuing=continuing, limits=limits).items():
        out.setdefault(name, value)
    return out, errors


def unknown_message(name: str) -> str:
    return f"Unknown hyperparameter {name!r}."


def _engine_defaults() -> dict:
    out = {}
    for spec in TABLE:
        if "local" not in spec.backends:
            continue
        method = "lora" if "lora" in spec.methods else spec.methods[0]
        value = spec.default_for(method)
        if value is not None:
            out[spec.name] = value
    return out


# what the engine assumes for a key a job does not carry (a lora run's defaults, plus scratch's)
ENGINE_DEFAULTS: dict[str, Any] = _engine_defaults()
