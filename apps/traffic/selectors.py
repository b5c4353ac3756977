"""Reads of proxy traffic, shared by the Requests page, the exports and the health page.

Visibility (decided with the roles of apps.accounts; the hub has no teams): a hub admin sees every request;
a member or a reviewer sees the requests made with their own API keys or session (`RequestEntry.user`).
The same scope applies to what they can export and to what their capture rules capture.

Filters (`FILTER_KEYS`, already validated by forms.RequestFilterForm or the export's stored spec): model
(alias or model asked for), key (API key id), status (`ok` < 400, `4xx`, `5xx`, `error` >= 400), served_by,
fallback (`yes` / `no`), latency_min / latency_max (ms), since / until (datetimes), q (full-text search:
PostgreSQL `websearch_to_tsquery` over the stored vector; on SQLite every word must appear, icontains).

Pagination is keyset on (created_at, log id), newest first: `page(...)` costs one index range scan whatever
the page, so the table stays fast with millions of rows; the total is counted up to COUNT_CAP only.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import Q, QuerySet

from apps.core.exceptions import NotFound
from apps.traffic.models import CaptureRule, RequestEntry, TrafficExport

FTS_CONFIG = "english"
PAGE_SIZE = 50
COUNT_CAP = 10_000
FILTER_KEYS = ("model", "key", "status", "served_by", "fallback", "latency_min", "latency_max", "since", "until",
               "q")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_CURSOR = re.compile(r"^(\d{1,20})_(\d{1,19})$")


def is_admin(user) -> bool:
    return bool(getattr(user, "is_hub_admin", False))


def visible_entries(*, user) -> QuerySet[RequestEntry]:
    if user is None or not getattr(user, "is_authenticated", False):
        return RequestEntry.objects.none()
    qs = RequestEntry.objects.all()
    return qs if is_admin(user) else qs.filter(user_id=user.pk)


def uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def apply_filters(qs: QuerySet[RequestEntry], f: dict) -> QuerySet[RequestEntry]:
    if f.get("model"):
        qs = qs.filter(Q(model=f["model"]) | Q(alias=f["model"]))
    if f.get("key"):
        qs = qs.filter(api_key_id=int(f["key"]))
    status = f.get("status")
    if status == "ok":
        qs = qs.filter(status_code__lt=400)
    elif status == "4xx":
        qs = qs.filter(status_code__gte=400, status_code__lt=500)
    elif status == "5xx":
        qs = qs.filter(status_code__gte=500)
    elif status == "error":
        qs = qs.filter(status_code__gte=400)
    if f.get("served_by"):
        qs = qs.filter(served_by=f["served_by"])
    if f.get("fallback") in ("yes", "no"):
        qs = qs.filter(fallback=f["fallback"] == "yes")
    if f.get("latency_min") is not None:
        qs = qs.filter(latency_ms__gte=float(f["latency_min"]))
    if f.get("latency_max") is not None:
        qs = qs.filter(latency_ms__lte=float(f["latency_max"]))
    if f.get("since"):
        qs = qs.filter(created_at__gte=_when(f["since"]))
    if f.get("until"):
        qs = qs.filter(created_at__lte=_when(f["until"]))
    q = (f.get("q") or "").strip()
    if q:
        if uses_postgres():
            qs = qs.filter(search=SearchQuery(q, config=FTS_CONFIG, search_type="websearch"))
        else:
            for word in q.split()[:10]:
                qs = qs.filter(text__icontains=word.strip('"'))
    return qs


def _when(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def filtered(*, user, filters: dict) -> QuerySet[RequestEntry]:
    return apply_filters(visible_entries(user=user), filters)


# -- keyset pages ------------------------------------------------------------------------------------
def cursor_of(entry: RequestEntry) -> str:
    micros = (entry.created_at - _EPOCH) // dt.timedelta(microseconds=1)  # exact, unlike float seconds
    return f"{micros}_{entry.log_id}"


def _parse_cursor(raw: str | None) -> tuple[dt.datetime, int] | None:
    m = _CURSOR.match(raw or "")
    if not m:
        return None
    try:
        when = _EPOCH + dt.timedelta(microseconds=int(m.group(1)))
    except (OverflowError, OSError, ValueError):
        return None
    return when, int(m.group(2))


@dataclass
class Page:
    rows: list
    older: str | None  # cursor for the next (older) page
    newer: str | None  # cursor for the previous (newer) page
    total: int
    total_capped: bool


def page(qs: QuerySet[RequestEntry], *, before: str | None = None, after: str | None = None,
         size: int = PAGE_SIZE) -> Page:
    """One page of `qs`, newest first: the rows older than `before`, or newer than `after` (the previous page)."""
    b, a = _parse_cursor(before), _parse_cursor(after)
    base = qs
    qs = qs.select_related("user").defer("text", "search")  # the table needs neither
    if a is not None:
        when, pk = a
        # (created_at, id) > (when, pk), written so the planner gets a range on the time index
        rows = list(qs.filter(Q(created_at__gte=when), Q(created_at__gt=when) | Q(log_id__gt=pk))
                    .order_by("created_at", "log_id")[:size + 1])
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        more_older = True
    else:
        if b is not None:
            when, pk = b
            qs = qs.filter(Q(created_at__lte=when), Q(created_at__lt=when) | Q(log_id__lt=pk))
        rows = list(qs.order_by("-created_at", "-log_id")[:size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = b is not None
    total = base.order_by().values("log_id")[:COUNT_CAP + 1].count()
    return Page(rows=rows, older=cursor_of(rows[-1]) if rows and more_older else None,
                newer=cursor_of(rows[0]) if rows and more_newer else None,
                total=min(total, COUNT_CAP), total_capped=total > COUNT_CAP)


def entry_get(*, user, log_id: int) -> RequestEntry:
    entry = visible_entries(user=user).select_related("log", "user").filter(log_id=log_id).first()
    if entry is None:
        raise NotFound("No such request.")
    return entry


def api_keys_for(*, user) -> list:
    """The API keys a user may filter by: an admin's choice is every key, a member's their own."""
    from apps.accounts.models import ApiKey

    qs = ApiKey.objects.select_related("user").order_by("user__username", "name")
    if not is_admin(user):
        qs = qs.filter(user_id=user.pk)
    return list(qs[:500])


def key_labels(ids) -> dict[int, str]:
    from apps.accounts.models import ApiKey

    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {k.pk: k.name for k in ApiKey.objects.filter(pk__in=ids)}


def recent_values(*, user, field: str, days: int = 7, limit: int = 100) -> list[str]:
    """Distinct models / targets seen lately (the filter suggestions)."""
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    qs = visible_entries(user=user).filter(created_at__gte=since).exclude(**{field: ""})
    return sorted(set(qs.order_by().values_list(field, flat=True).distinct()[:limit]))


def writable_datasets(*, user, limit: int = 300) -> list:
    from apps.datasets.models import Dataset

    qs = Dataset.objects.order_by("-created_at")
    if not is_admin(user):
        qs = qs.filter(owner_id=user.pk)
    return list(qs[:limit])


def rule_list(*, user) -> QuerySet[CaptureRule]:
    qs = CaptureRule.objects.select_related("dataset", "owner")
    return qs if is_admin(user) else qs.filter(owner_id=user.pk)


def export_list(*, user, limit: int = 20) -> list[TrafficExport]:
    qs = TrafficExport.objects.select_related("dataset", "version", "rule", "owner")
    if not is_admin(user):
        qs = qs.filter(owner_id=user.pk)
    return list(qs[:limit])
