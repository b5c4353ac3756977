"""The example filter of review tasks and bulk actions: one parser, one translation to a queryset.

Keys (all optional): `q` (text in the messages or the source file), `category`, `code` (a validation issue
code), `split` (train | validation), `source_file`, `min_turns` / `max_turns` (messages per example),
`min_tokens` / `max_tokens` (the version's token count), `tag` (a tag given in the task), `state`
(pending | agreed | disputed | resolved | accepted | rejected | unreviewed; items only). An unknown key or a
bad value is a 422 naming `filter.<key>`."""
from __future__ import annotations

from django.db.models import Func, IntegerField, Q

from apps.core.exceptions import ValidationFailed

TEXT_KEYS = ("q", "category", "code", "split", "source_file", "tag")
INT_KEYS = ("min_turns", "max_turns", "min_tokens", "max_tokens")
STATES = ("pending", "agreed", "disputed", "resolved", "accepted", "rejected", "unreviewed")
KEYS = TEXT_KEYS + INT_KEYS + ("state",)
ITEM_KEYS = ("state", "tag")


class JSONArrayLength(Func):
    """jsonb_array_length on PostgreSQL, json_array_length on SQLite."""

    output_field = IntegerField()
    function = "jsonb_array_length"

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="json_array_length", **extra)


def parse_filter(raw, *, field: str = "filter", items: bool = True) -> dict:
    """A clean filter dict (empty values dropped) or ValidationFailed with one error per bad key. `items`
    False (a new task's filter: there are no items yet) refuses the item keys `state` and `tag`."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("The filter must be an object.", field=field)
    errors, out = [], {}
    for key, value in raw.items():
        if key not in KEYS or (key in ITEM_KEYS and not items):
            allowed = [k for k in KEYS if items or k not in ITEM_KEYS]
            errors.append({"field": f"{field}.{key}", "message": f"Unknown filter `{key}` (use {', '.join(allowed)})."})
            continue
        if value is None or value == "":
            continue
        if key in INT_KEYS:
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
                errors.append({"field": f"{field}.{key}", "message": f"`{key}` must be a whole number ≥ 0."})
                continue
            value = int(value)
            if not 0 <= value <= 10**9:
                errors.append({"field": f"{field}.{key}", "message": f"`{key}` must be between 0 and 10^9."})
                continue
        else:
            if not isinstance(value, str) or "\x00" in value or len(value) > 500:
                errors.append({"field": f"{field}.{key}", "message": f"`{key}` must be text (at most 500 characters)."})
                continue
            if key == "split" and value not in ("train", "validation"):
                errors.append({"field": f"{field}.split", "message": "`split` must be train or validation."})
                continue
            if key == "state" and value not in STATES:
                errors.append({"field": f"{field}.state", "message": f"`state` must be one of {', '.join(STATES)}."})
                continue
            if key == "tag" and "|" in value:
                errors.append({"field": f"{field}.tag", "message": "A tag cannot contain `|`."})
                continue
        out[key] = value
    if errors:
        raise ValidationFailed("Invalid filter.", errors=errors)
    return out


def example_q(f: dict, prefix: str = "") -> Q:
    """The Example part of a filter as a Q (prefix "example__" when filtering review items)."""
    q = Q()
    p = prefix
    if f.get("q"):
        q &= Q(**{f"{p}messages__icontains": f["q"]}) | Q(**{f"{p}source_file__icontains": f["q"]})
    if f.get("category"):
        q &= Q(**{f"{p}category": f["category"]})
    if f.get("code"):
        q &= Q(**{f"{p}issues__contains": f"|{f['code']}|"})
    if f.get("split"):
        q &= Q(**{f"{p}split": f["split"]})
    if f.get("source_file"):
        q &= Q(**{f"{p}source_file": f["source_file"]})
    if f.get("min_tokens") is not None:
        q &= Q(**{f"{p}token_count__gte": f["min_tokens"]})
    if f.get("max_tokens") is not None:
        q &= Q(**{f"{p}token_count__lte": f["max_tokens"]})
    return q


def needs_turns(f: dict) -> bool:
    return f.get("min_turns") is not None or f.get("max_turns") is not None


def turns_q(f: dict) -> Q:
    q = Q()
    if f.get("min_turns") is not None:
        q &= Q(_turns__gte=f["min_turns"])
    if f.get("max_turns") is not None:
        q &= Q(_turns__lte=f["max_turns"])
    return q


def filter_examples(qs, f: dict):
    """Example queryset narrowed by the filter's example keys."""
    qs = qs.filter(example_q(f))
    if needs_turns(f):
        qs = qs.annotate(_turns=JSONArrayLength("messages")).filter(turns_q(f))
    return qs


def filter_items(qs, f: dict):
    """ReviewItem queryset narrowed by the whole filter (example keys, tag, state)."""
    qs = qs.filter(example_q(f, "example__"))
    if needs_turns(f):
        qs = qs.annotate(_turns=JSONArrayLength("example__messages")).filter(turns_q(f))
    if f.get("tag"):
        qs = qs.filter(tags__contains=f"|{f['tag']}|")
    state = f.get("state")
    if state in ("pending", "agreed", "disputed", "resolved"):
        qs = qs.filter(state=state)
    elif state == "accepted":
        qs = qs.filter(final_decision="accept")
    elif state == "rejected":
        qs = qs.filter(final_decision="reject")
    elif state == "unreviewed":
        qs = qs.filter(done=0).exclude(state="resolved")
    return qs
