"""The hyperparameter table as the apps use it, and the run-create API schema derived from it.

Contract: the table itself lives in the Django-free `workers.engine.hyperparameters` (the engine reads its
defaults from it); this module re-exports it and derives the pydantic/django-ninja pieces:

- `HyperparametersIn`: the typed `hyperparameters` object of POST /api/runs (and /runs/estimate,
  /pipelines, relaunch). Every row is a documented property: its JSON type, its bounds
  (minimum/exclusiveMinimum/maximum/exclusiveMaximum), its enum, its help, the methods and backends that use
  it (`x-methods`, `x-backends`, `x-group`) and its Together.ai mapping. Types are enforced here; bounds,
  enums and cross-field rules are enforced once, by the service (`hyperparameters.<name>` field errors with
  the same messages the form shows). Other names (Together aliases such as `n_epochs`) pass through to the
  service, which refuses names it does not know.
- `top_level_fields()`: the same properties accepted at the top level of the run body (older clients).
- `api_hyperparameters(payload)`: the dict the service gets, top-level values winning.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from workers.engine.hyperparameters import (  # noqa: F401  (re-exported: the apps import the table from here)
    BACKEND_METHODS,
    BACKENDS,
    BY_NAME,
    CONTINUE_LR_FACTOR,
    GROUPS,
    LR_SCHEDULERS,
    METHODS,
    RUN_OPTIONS,
    TABLE,
    Hyperparameter,
    applicable,
    check,
    default_text,
    grouped,
    markdown_table,
    together_text,
)

_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "choice": "string", "str": "string"}


def _annotation(spec: Hyperparameter):
    if spec.type == "int":
        base = int
        if spec.together and spec.together.also:
            base = Union[int, Literal[spec.together.also]]  # type: ignore[valid-type]
    elif spec.type == "float":
        base = float
    elif spec.type == "bool":
        base = bool
    elif spec.type == "modules":
        base = Union[str, list[str]]
    elif spec.type == "prompts":
        base = Union[list[str], str]
    elif spec.type == "size":  # a named size or {dimension: int} (grow's target_size)
        base = Union[str, dict[str, int]]
    elif spec.type == "weights":  # {component: weight}; names and values are checked by the service
        base = Union[dict[str, Any], str]
    else:  # choice, str
        base = str
    return Optional[base]


def describe(spec: Hyperparameter) -> str:
    """The API description of a row: its help, who uses it, its default, its Together mapping."""
    usable = [m for m in spec.methods if any(m in BACKEND_METHODS[b] for b in spec.backends)]
    parts = [spec.help, f"Methods: {', '.join(usable)}. Backends: {', '.join(spec.backends)}."]
    default = default_text(spec)
    if default:
        parts.append(f"Default (local): {default}.")
    if spec.together:
        parts.append(f"Together.ai: {together_text(spec)}.")
    return " ".join(parts)


def _schema_extra(spec: Hyperparameter):
    numeric = spec.bounds.json_schema() if spec.bounds else {}

    def extra(schema: dict) -> None:
        for branch in schema.get("anyOf", [schema]):
            kind = branch.get("type")
            if kind in ("integer", "number"):
                branch.update(numeric)
            elif kind == "string" and spec.choices:
                branch["enum"] = list(spec.choices)
            elif kind == "string" and spec.pattern:
                branch["pattern"] = f"^{spec.pattern}$"
        schema["x-methods"] = list(spec.methods)
        schema["x-backends"] = list(spec.backends)
        schema["x-group"] = spec.group

    return extra


def _api_field(spec: Hyperparameter):
    return (_annotation(spec), Field(None, title=spec.label, description=describe(spec),
                                     json_schema_extra=_schema_extra(spec)))


class _OpenSchema(BaseModel):
    # Together aliases (n_epochs, ...) reach the service; it refuses names the table does not know. A plain
    # pydantic model: ninja's Schema validator reads declared fields only and would drop the others.
    model_config = ConfigDict(extra="allow")


HyperparametersIn = create_model(
    "HyperparametersIn", __base__=_OpenSchema,
    __doc__="A run's hyperparameters (empty or missing: the method's default). Generated from the "
            "hyperparameter table; keys that the chosen method or backend does not use are ignored.",
    **{spec.name: _api_field(spec) for spec in TABLE},
)


def top_level_fields() -> dict[str, Any]:
    """Field definitions for `create_model`: every row that a user sets (not `model`: that is base_model)."""
    return {spec.name: _api_field(spec) for spec in TABLE if spec.in_form}


def api_hyperparameters(payload) -> dict:
    """The hyperparameters dict for run_create from a RunIn-like payload: the `hyperparameters` object
    (with any extra names) overlaid by the top-level fields that were given."""
    nested = payload.hyperparameters
    hp = dict(nested.model_dump(exclude_none=True) if hasattr(nested, "model_dump") else (nested or {}))
    for name in top_level_fields():
        value = getattr(payload, name, None)
        if value is not None:
            hp[name] = value
    return hp
