"""The hyperparameters of a Together.ai run: validated under Together's names, types and bounds and
mapped onto its POST /fine-tunes body. Knows nothing of Django.

Contract: `together_fields(hp, method=)` returns (body fields, training_type fields, [(name as given,
message)]); `together_effective(hp, method=)` is what a Together run stores (the table's names, the
values sent); `unknown_names(hp, backend=)` the names that are neither a row, an alias nor a run option;
`together_field_names(method)` the (body, training_type) fields the table sends; `TRAINING_METHOD_FIELDS`
the body fields that belong inside Together's `training_method` object (dpo_beta)."""
from __future__ import annotations

from typing import Any

from workers.engine.hyperparameters.schema import RUN_OPTIONS
from workers.engine.hyperparameters.table import BY_NAME, TABLE, TOGETHER_NAMES, applicable, applies_checked
from workers.engine.hyperparameters.values import check

# rows whose Together section is "training_method": together_fields returns them with the body fields
TRAINING_METHOD_FIELDS = frozenset(spec.together.field for spec in TABLE
                                   if spec.together and spec.together.section == "training_method")


def together_fields(hp: dict, *, method: str) -> tuple[dict, dict, list[tuple[str, str]]]:
    """Validate a run's hyperparameters for Together and map them: (body fields, training_type fields,
    [(name as given, message)]). Each row is read under its Together name, its table name or an alias
    (the first given wins); missing rows get Together's default, or are left out when it has none.
    Rows that Together does not use (max_seq_len, ...) and unknown names are not looked at. Rows of
    section "training_method" (TRAINING_METHOD_FIELDS: dpo_beta) come back among the body fields."""
    hp = dict(hp or {})
    body: dict[str, Any] = {}
    training_type: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for spec in TABLE:
        t = spec.together
        if t is None or not applies_checked(spec, method, "together"):
            continue
        section = training_type if t.section == "training_type" else body
        names = tuple(dict.fromkeys((t.field, spec.name, *t.aliases)))
        given = next((n for n in names if hp.get(n) not in (None, "")), None)
        if given is None:
            if t.sends_default:
                section[t.field] = t.default(section) if callable(t.default) else t.default
            elif t.required:
                errors.append((names[0], t.required))
            continue
        clean, message = check(spec, hp[given], backend="together")
        if message:
            errors.append((given, message))
            continue
        section[t.field] = t.transform(clean) if t.transform else clean
    return body, training_type, errors


def together_effective(hp: dict, *, method: str) -> dict:
    """What a Together run stores: every row Together uses for `method`, under the table's name, with the
    value sent (the given one, or Together's default). Rows with errors are left out."""
    body, training_type, _errors = together_fields(hp, method=method)
    out = {}
    for spec in applicable(method, "together"):
        section = training_type if spec.together.section == "training_type" else body
        if spec.together.field in section:
            out[spec.name] = section[spec.together.field]
    return out


def unknown_names(hp: dict, *, backend: str = "local") -> list[str]:
    """Names in `hp` that are neither a row (or, for Together, one of its aliases) nor a run option."""
    known = TOGETHER_NAMES if backend == "together" else BY_NAME
    return [key for key, value in hp.items()
            if value not in (None, "") and key not in RUN_OPTIONS and key not in BY_NAME and key not in known]


def together_field_names(method: str) -> tuple[set[str], set[str]]:
    """The Together fields the table sends for `method`: (body, training_type)."""
    body, tt = set(), set()
    for spec in applicable(method, "together"):
        if spec.together:
            (tt if spec.together.section == "training_type" else body).add(spec.together.field)
    return body, tt
