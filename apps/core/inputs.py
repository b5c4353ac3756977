"""Ids and text at the edges: the one place that decides what a well-formed id or string from a URL, a
query string or a request body looks like, for every interface (dashboard, /api, /v1).

Contract:
- An id is ASCII digits only, between 1 and MAX_ID (the database's bigint range). `²`, `٣`, `-1`, `1e3`,
  `99999999999999999999` and the empty string are not ids.
- URLs use the `id` path converter (`register_url_converters()`, called by each urls.py that uses it): a
  path segment that is not an id does not match, so Django answers 404 before any view or query runs.
- Query strings and form fields go through `parse_id` / `parse_id_list` (None for "not given"; a bad value
  raises `NotFound` for a single id — it names nothing — and `ValidationFailed` for a list).
- /api parameters and bodies are typed with `Id`, `PageNumber`, `Text`, `PathText`, `Slug`, `JSONList` and
  `JSONDict`: pydantic rejects a bad value with a 422 and the bounds appear in the OpenAPI schema.
- A link may prefill a dashboard form (`form_initial_from_query`, e.g. the command bar's form_url): each value is
  checked by the form's own field and a value it refuses is left out, never an error (nothing is posted).
- No string that reaches the database or the filesystem contains a NUL byte (PostgreSQL text and jsonb
  cannot store one; `os.path` raises on one): `Text`, `PathText` and the JSON types reject it. `PathText`
  also refuses a component longer than NAME_MAX bytes (`os.stat` raises "File name too long" on one).
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from apps.core.exceptions import NotFound, ValidationFailed

MAX_ID = 2**63 - 1  # PostgreSQL bigint / SQLite INTEGER
MAX_PAGE = 2**31 - 1  # a page past this is a 422; a page past the last row is an empty page
NO_NUL_PATTERN = r"^[^\u0000]*$"
# Exactly what django.utils.text.slugify leaves unchanged: lower-case ASCII letters, digits, `_` and `-`,
# starting and ending with a letter or digit, never two dashes in a row.
SLUG_PATTERN = r"^[a-z0-9]+(?:(?:(?:_|-_)+-?|-)[a-z0-9]+)*$"


def is_id(raw: object) -> bool:
    """True for an int, or a string of ASCII digits, in 1..MAX_ID."""
    if isinstance(raw, bool):
        return False
    if isinstance(raw, int):
        return 1 <= raw <= MAX_ID
    if not isinstance(raw, str) or not raw or len(raw) > 19 or not (raw.isascii() and raw.isdigit()):
        return False
    return 1 <= int(raw) <= MAX_ID


def parse_id(raw: str | None, *, what: str = "object") -> int | None:
    """A query-string or form id: None when absent or empty; NotFound when it cannot name anything."""
    if raw is None or raw == "":
        return None
    if not is_id(raw):
        raise NotFound(f"No such {what}.")
    return int(raw)


def parse_id_list(raw: str | list[str] | None, *, field: str = "ids", limit: int = 100) -> list[int]:
    """`1,2,3` (or several `ids=` values) -> [1, 2, 3]; blanks are skipped, anything else is a 422."""
    parts: list[str] = []
    for chunk in ([raw] if isinstance(raw, str) else list(raw or [])):
        parts += [p.strip() for p in chunk.split(",")]
    parts = [p for p in parts if p]
    bad = [p for p in parts if not is_id(p)]
    if bad:
        shown = ", ".join(repr(b)[:24] for b in bad[:3])
        raise ValidationFailed(f"`{field}` takes ids (whole numbers from 1 to {MAX_ID}), comma-separated; "
                               f"not {shown}.", field=field)
    if len(parts) > limit:
        raise ValidationFailed(f"At most {limit} ids.", field=field)
    return list(dict.fromkeys(int(p) for p in parts))


def has_nul(value: Any) -> bool:
    """True when a NUL byte appears in a string, or in any key or string inside lists and dicts."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


def reject_nul(value: Any) -> Any:
    if has_nul(value):
        raise ValueError("must not contain NUL bytes (\\u0000)")
    return value


NAME_MAX = 255  # bytes in one path component on Linux and macOS filesystems


def _usable_path(value: str) -> str:
    """A filesystem path the OS can be asked about: no NUL byte, no component longer than NAME_MAX bytes."""
    reject_nul(value)
    if any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in value.split("/")):
        raise ValueError(f"has a path component longer than {NAME_MAX} bytes")
    return value


def _slug(value: str) -> str:
    import re

    if not re.fullmatch(SLUG_PATTERN, value):
        raise ValueError("must be a slug: lower-case letters, digits, `-` and `_`, starting and ending with a "
                         "letter or digit, no `--`")
    return value


def query_text(query, key: str, default: str = "") -> str:
    """A free-text query-string value for a dashboard page; a NUL byte in it is a 422."""
    value = query.get(key) or default
    if "\x00" in value:
        raise ValidationFailed(f"`{key}` must not contain NUL bytes.", field=key)
    return value


class IdConverter:
    """URL converter `<id:name>`: ASCII digits naming a row (1..MAX_ID); anything else is a 404."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        if not is_id(value):
            raise ValueError(value)  # the resolver treats it as "no match"
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(value)


class IndexConverter:
    """URL converter `<index:name>`: a 0-based position, ASCII digits, at most MAX_ID."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(value)
        return number

    def to_url(self, value: int | str) -> str:
        return str(value)


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
               "off": False}


def form_initial_from_query(query, form, keys=None) -> dict:
    """Initial values for `form` from a query string (`keys`, or every key that names a field of the form): a
    boolean from true/false/yes/no/on/off/1/0, a multiple choice from repeated or comma-separated values
    (unknown choices dropped), anything else through the field's `clean`. A value the field refuses is left
    out: the page keeps its own, and the form validates what is posted."""
    from django import forms
    from django.core.exceptions import ValidationError

    out: dict = {}
    for key in (keys if keys is not None else list(query)):
        field = form.fields.get(key)
        if field is None:
            continue
        if isinstance(field, forms.MultipleChoiceField):  # `generators=fim&generators=docstring` or `=fim,docstring`
            known = dict(field.choices)
            picked = [v for v in (v.strip() for item in query.getlist(key) for v in item.split(",")) if v in known]
            if picked:
                out[key] = list(dict.fromkeys(picked))
            continue
        raw = (query.get(key) or "").strip()
        if not raw:
            continue
        if isinstance(field, forms.BooleanField):
            if raw.lower() in _BOOL_WORDS:
                out[key] = _BOOL_WORDS[raw.lower()]
            continue
        try:
            out[key] = field.clean(raw)
        except ValidationError:
            continue
    return out


def register_url_converters() -> None:
    """Make `<id:...>` and `<index:...>` available to path(); every urls.py that uses them calls this."""
    from django.urls import register_converter
    from django.urls.converters import get_converters

    known = get_converters()
    for name, converter in (("id", IdConverter), ("index", IndexConverter)):
        if name not in known:
            register_converter(converter, name)


_no_nul_schema = {"pattern": NO_NUL_PATTERN}

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Index = Annotated[int, Field(ge=0, le=MAX_ID)]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE)]
Text = Annotated[str, AfterValidator(reject_nul), Field(json_schema_extra=_no_nul_schema)]
PathText = Annotated[str, AfterValidator(_usable_path),
                     Field(min_length=1, max_length=1000, json_schema_extra=_no_nul_schema)]
Slug = Annotated[str, AfterValidator(_slug),
                 Field(min_length=1, max_length=100, json_schema_extra={"pattern": SLUG_PATTERN})]
JSONList = Annotated[list, AfterValidator(reject_nul)]
JSONDict = Annotated[dict[str, Any], AfterValidator(reject_nul)]
