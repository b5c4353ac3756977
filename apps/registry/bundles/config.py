"""The deployment settings of a bundle (`deployment_config.json`): one table (FIELDS) that the /api schema, the
form and the validation are all built from, the defaults, and `config_resolve`.

Contract:
- `config_resolve(raw, *, context_length, defaults)` checks a request's `config` (a dict; unknown keys, wrong
  types and out-of-range values are field errors `config.<name>`, all reported at once in one ValidationFailed)
  and fills what it leaves out from `defaults`. It returns the full settings: every key of FIELDS plus
  `system_prompt_source` ("config" | "dataset" | "none").
- `max_tokens` may not exceed the model's context length.
- `generation_defaults(folders)` reads the first `generation_config.json` found (the export, the version, the
  base model) into these keys; what it does not set comes from SENSIBLE.
- `dataset_system_prompt(dataset_version)` is the most common system prompt of the version's examples ("" when
  none has one).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from apps.core.exceptions import ValidationFailed

SYSTEM_PROMPT_MAX = 20_000


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # float | int | str
    label: str
    help: str
    minimum: float | None = None
    maximum: float | None = None


FIELDS: tuple[Field, ...] = (
    Field("system_prompt", str, "System prompt",
          "sent as the first message; default: the training data's most common system prompt; empty: none",
          maximum=SYSTEM_PROMPT_MAX),
    Field("temperature", float, "Temperature", "0 is greedy (deterministic); 0–2", 0.0, 2.0),
    Field("top_p", float, "Top p", "nucleus sampling; 0–1 (1: off)", 0.0, 1.0),
    Field("top_k", int, "Top k", "sample among the k likeliest tokens; 0–1000 (0: off)", 0, 1000),
    Field("repeat_penalty", float, "Repeat penalty", "above 1 discourages repeating tokens; 0.5–2", 0.5, 2.0),
    Field("max_tokens", int, "Max tokens", "the longest answer, in tokens; 1 up to the context length", 1, 131_072),
)
BY_NAME = {f.name: f for f in FIELDS}
SAMPLING = tuple(f.name for f in FIELDS if f.name != "system_prompt")
SENSIBLE = {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "repeat_penalty": 1.1, "max_tokens": 512}
# generation_config.json key -> ours
_GENERATION_KEYS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                    "repetition_penalty": "repeat_penalty", "max_new_tokens": "max_tokens"}


def _check(field: Field, value, *, context_length: int) -> tuple[object, str | None]:
    """(the cleaned value, None) or (None, the message)."""
    if field.kind is str:
        if not isinstance(value, str):
            return None, "Must be text."
        if "\x00" in value:
            return None, "Must not contain NUL bytes."
        if len(value) > field.maximum:
            return None, f"At most {int(field.maximum)} characters (this has {len(value)})."
        return value, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, "Must be a number." if field.kind is float else "Must be a whole number."
    if field.kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                return None, "Must be a whole number."
            value = int(value)
    elif not math.isfinite(value):
        return None, "Must be a finite number."
    value = field.kind(value)
    upper = min(field.maximum, context_length) if field.name == "max_tokens" else field.maximum
    if not field.minimum <= value <= upper:
        if field.name == "max_tokens" and value > context_length:
            return None, f"At most the context length, {context_length} tokens."
        fmt = (lambda x: str(int(x))) if field.kind is int else (lambda x: f"{x:g}")
        return None, f"Must be between {fmt(field.minimum)} and {fmt(upper)}."
    return value, None


def config_validate(raw: dict | None, *, context_length: int) -> dict:
    """The keys `raw` gives, checked (ValidationFailed with every field error; fields are `config.<name>`)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("`config` must be an object.", field="config")
    errors, out = [], {}
    for key, value in raw.items():
        field = BY_NAME.get(key)
        if field is None:
            errors.append({"field": f"config.{key}"[:200],
                           "message": f"Unknown setting; the settings are: {', '.join(BY_NAME)}."})
            continue
        if value is None:
            continue  # "not given": the default
        cleaned, problem = _check(field, value, context_length=context_length)
        if problem:
            errors.append({"field": f"config.{key}", "message": problem})
        else:
            out[key] = cleaned
    if errors:
        raise ValidationFailed("The bundle's settings are not valid: " + "; ".join(
            f"{e['field'].removeprefix('config.')}: {e['message']}" for e in errors), errors=errors)
    return out


def config_resolve(raw: dict | None, *, context_length: int, defaults: dict) -> dict:
    """The full settings: `raw` checked, the rest from `defaults` (generation config + dataset prompt)."""
    given = config_validate(raw, context_length=context_length)
    out = {}
    for name in SAMPLING:
        value = given.get(name, defaults.get(name, SENSIBLE[name]))
        if name == "max_tokens":
            value = min(int(value), context_length)
        out[name] = value
    if "system_prompt" in given:
        out["system_prompt"] = given["system_prompt"]
        out["system_prompt_source"] = "config" if given["system_prompt"] else "none"
    else:
        prompt = defaults.get("system_prompt") or ""
        out["system_prompt"] = prompt
        out["system_prompt_source"] = "dataset" if prompt else "none"
    return out


def generation_defaults(folders: list[Path]) -> dict:
    """Sampling defaults from the first readable generation_config.json in `folders`, bounded to FIELDS; a
    config with `do_sample: false` means greedy (temperature 0)."""
    for folder in folders:
        path = Path(folder) / "generation_config.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        out = {}
        for theirs, ours in _GENERATION_KEYS.items():
            value = data.get(theirs)
            field = BY_NAME[ours]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                value = field.kind(value)
                if field.minimum <= value <= field.maximum:
                    out[ours] = value
        if data.get("do_sample") is False:
            out["temperature"] = 0.0
        return out
    return {}


def dataset_system_prompt(dataset_version, *, scan_limit: int = 5_000) -> str:
    """The most common first-message system prompt among the version's first `scan_limit` examples (ties: the
    first seen). Only each example's first message is read from the database."""
    if dataset_version is None:
        return ""
    from apps.datasets.models import Example

    counts: Counter[str] = Counter()
    rows = (Example.objects.filter(version=dataset_version).order_by("index")
            .values_list("messages__0", flat=True)[:scan_limit])
    for first in rows.iterator(chunk_size=1000):
        if isinstance(first, dict) and first.get("role") == "system":
            if isinstance(first.get("content"), str) and first["content"].strip():
                counts[first["content"]] += 1
    if not counts:
        return ""
    return counts.most_common(1)[0][0][:SYSTEM_PROMPT_MAX]
