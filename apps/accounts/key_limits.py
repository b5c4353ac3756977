"""The limits an API key carries on /v1, in one table: the API-keys page's form, `/api/api-keys`, the
service's validation and the README all read FIELDS. Enforcement is apps.proxy.limits.

Contract:
- `allowed_aliases` / `allowed_models`: names a key may call. None (or an empty list) = every name of
  that kind. A requested name that matches an entry of either list is allowed; any other name is allowed
  only when the list of its kind is unset: an alias name needs `allowed_aliases` unset, any other name (a
  model version `mv-12`, a provider's model, a Claude name such as `claude-sonnet-4-5`) needs
  `allowed_models` unset. Entries are exact names or patterns with `*` and `?` (`claude-*`); version
  ids are stored as `mv-<id>` (`12` and `mv-12` name the same version).
- `rpm`, `tpm`: requests and tokens per minute (a sliding 60-second window shared by every web process);
  `monthly_tokens`: tokens per calendar month (UTC); `expires_at`: after it the key gets 401 key_expired.
  None = unlimited / never.
- `clean(values)` validates and normalises the fields present in `values` and returns
  `(cleaned, errors)` with errors in the `{"field", "message"}` shape of ApplicationError.
- `looser(field, old, new)` says whether `new` allows more than `old` (members may only tighten).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

MAX_NAMES = 100
MAX_NAME_CHARS = 200
_VERSION_RE = re.compile(r"^(?:mv-)?([0-9]{1,18})$")
_NAME_RE = re.compile(r"^[^\s,\x00-\x1f\x7f]+$")  # printable, no spaces, no commas (the form's separator)


@dataclass(frozen=True)
class LimitField:
    name: str
    label: str
    kind: str  # "names" | "int" | "datetime"
    help: str
    max: int | None = None


FIELDS = (
    LimitField("allowed_aliases", "Allowed aliases", "names",
               "Alias names this key may call, comma-separated; * and ? are wildcards. Empty: every alias."),
    LimitField("allowed_models", "Allowed models", "names",
               "Other model names this key may call directly (mv-12, a provider's model, claude-*). "
               "Empty: every model."),
    LimitField("rpm", "Requests per minute", "int", "Over any 60 seconds, shared by every web process. "
               "Empty: unlimited.", max=1_000_000),
    LimitField("tpm", "Tokens per minute", "int", "Prompt + completion tokens over any 60 seconds. "
               "Empty: unlimited.", max=10**12),
    LimitField("monthly_tokens", "Monthly token budget", "int", "Tokens per calendar month (UTC). "
               "Empty: unlimited.", max=10**15),
    LimitField("expires_at", "Expires at (UTC)", "datetime", "After this moment the key is refused. "
               "Empty: never."),
)
BY_NAME = {f.name: f for f in FIELDS}
NAMES = tuple(BY_NAME)


def normalize_name(name: str) -> str:
    """`12` and `mv-12` both name model version 12: compare them as `mv-12`."""
    m = _VERSION_RE.match(name)
    return f"mv-{int(m.group(1))}" if m else name


def _clean_names(field: str, value) -> tuple[list[str] | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return None, "Give a list of names."
    names: list[str] = []
    for raw in value:
        name = raw.strip()
        if not name:
            continue
        if len(name) > MAX_NAME_CHARS:
            return None, f"Each name is at most {MAX_NAME_CHARS} characters."
        if not _NAME_RE.match(name):
            return None, f"{name[:40]!r} is not a model name: no spaces, commas or control characters."
        name = normalize_name(name)
        if name not in names:
            names.append(name)
    if len(names) > MAX_NAMES:
        return None, f"At most {MAX_NAMES} names."
    return names or None, None


def _clean_int(spec: LimitField, value) -> tuple[int | None, str | None]:
    if value is None or value == "":
        return None, None
    if isinstance(value, bool) or not isinstance(value, int):
        return None, "Give a whole number."
    if value < 1 or value > spec.max:
        return None, f"Must be between 1 and {spec.max:,}."
    return value, None


def _clean_datetime(value, now: dt.datetime) -> tuple[dt.datetime | None, str | None]:
    if value is None or value == "":
        return None, None
    if not isinstance(value, dt.datetime):
        return None, "Give a date and time."
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)  # the dashboard's times are UTC
    if value <= now:
        return None, "Must be in the future (revoke the key to stop it now)."
    return value, None


def clean(values: dict, *, now: dt.datetime) -> tuple[dict, list[dict]]:
    """Validate the limit fields present in `values` (others are ignored)."""
    cleaned, errors = {}, []
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None:
            continue
        if spec.kind == "names":
            out, err = _clean_names(name, value)
        elif spec.kind == "int":
            out, err = _clean_int(spec, value)
        else:
            out, err = _clean_datetime(value, now)
        if err:
            errors.append({"field": name, "message": err})
        else:
            cleaned[name] = out
    return cleaned, errors


def looser(field: str, old, new) -> bool:
    """Whether `new` allows more than `old` for this field (None is "unlimited" / "every name")."""
    if old is None:
        return False
    if new is None:
        return True
    if BY_NAME[field].kind == "names":
        return not set(new) <= set(old)
    return new > old


# --- matching (apps.proxy.limits) -------------------------------------------------------------------
@lru_cache(maxsize=4096)
def matcher(names: tuple[str, ...]):
    """A predicate for `name in names`, where entries with `*` or `?` are patterns."""
    exact = frozenset(n for n in names if "*" not in n and "?" not in n)
    patterns = [n for n in names if n not in exact]
    if not patterns:
        return exact.__contains__
    rx = re.compile("|".join("(?:" + re.escape(p).replace(r"\*", ".*").replace(r"\?", ".") + ")"
                             for p in patterns) + r"\Z")
    return lambda name: name in exact or rx.match(name) is not None


def summary(key) -> list[str]:
    """Short human phrases for a key's limits (the API-keys page)."""
    out = []
    if key.rpm:
        out.append(f"{key.rpm:,} req/min")
    if key.tpm:
        out.append(f"{key.tpm:,} tokens/min")
    if key.monthly_tokens:
        out.append(f"{key.monthly_tokens:,} tokens/month")
    if key.allowed_aliases:
        out.append("aliases: " + ", ".join(key.allowed_aliases))
    if key.allowed_models:
        out.append("models: " + ", ".join(key.allowed_models))
    return out
