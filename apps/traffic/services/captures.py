"""What happens when the worker records a request log (`capture`, run by apps.proxy.services.request_log_record
through `captured` once the log row is committed; never on the request path), and the capture-rule batches.

`capture(row, payload)` (1) writes the row's `RequestEntry` — facets, the conversation's text and, on
PostgreSQL, its full-text vector, in one INSERT ... ON CONFLICT — and (2) offers the request to every enabled
`CaptureRule` (cached per process for RULES_TTL_S) whose pattern
matches its alias or model: sampled deterministically by the request id (`sampled`: the first 8 bytes of
sha256(request_id) against P% of 2**64, so a 10% rule keeps a subset of what a 20% rule keeps, and a
redelivered log decides the same), scoped like the Requests page (a member's rule captures only that
member's requests), failed requests never, and with `only_successful` only requests that finished cleanly.
A sampled request waits as a `CaptureItem`. It never raises: a failure is logged and the log row is kept.

Batching, so a busy proxy does not make a version per request: `capture_flush` cuts a rule's waiting items
into ONE new version of its dataset (the latest ready version's examples + the new ones, through the
"traffic.export" job) when CAPTURE_BATCH items wait, or when the oldest has waited CAPTURE_MAX_WAIT_S.
The worker sends `traffic_capture_flush(rule_id)` when a rule's batch fills (after commit); the scheduler
sends `traffic_tick` every minute (workers/traffic.py) for the time limit, and it also indexes request logs
that have no entry yet (rows logged before this app, or whose capture failed), TICK_REINDEX at a time.
Environment: HUB_CAPTURE_BATCH (default 200), HUB_CAPTURE_MAX_WAIT_S (default 600), in training_hub/settings.py.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import functools
import hashlib
import logging
import time

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import F, Min, TextField, Value
from django.utils import timezone

from apps.core.jobs import enqueue as jobs
from apps.traffic import convert
from apps.traffic.models import CaptureItem, CaptureRule, RequestEntry
from apps.traffic.selectors import FTS_CONFIG, uses_postgres

log = logging.getLogger(__name__)

TICK_REINDEX = 2000
RULES_TTL_S = 5.0
NEW_FIELDS = ("alias", "served_by", "fallback", "api_key_id", "attempts", "upstream_ms", "overhead_ms")


def capture_batch() -> int:
    return int(settings.HUB_CAPTURE_BATCH)


def capture_max_wait_s() -> float:
    return float(settings.HUB_CAPTURE_MAX_WAIT_S)


def log_field(row, payload: dict | None, name: str, default=None):
    """A request-log field: the row's column when the model has it (apps.proxy, interfaces §2), else the
    worker's payload key, else `default`."""
    value = getattr(row, name, None)
    if value is None or value == "":
        value = (payload or {}).get(name)
    return default if value is None or value == "" else value


def served_by_of(row, payload: dict | None = None) -> str:
    served = log_field(row, payload, "served_by", "")
    if served:
        return str(served)[:300]
    if row.model_version_id:
        return f"version:{row.model_version_id}"
    return (row.model_served or "")[:300]


def entry_fields(row, payload: dict | None = None) -> tuple[dict, convert.Conversation]:
    conv = convert.conversation(row.endpoint, row.request, row.response)
    key_id = log_field(row, payload, "api_key_id")
    fields = dict(
        created_at=row.created_at, user_id=row.user_id, api_key_id=int(key_id) if key_id else None,
        endpoint=row.endpoint[:64], model=(row.model_requested or "")[:200],
        alias=str(log_field(row, payload, "alias", ""))[:200], served_by=served_by_of(row, payload),
        fallback=bool(log_field(row, payload, "fallback", False)), status_code=row.status_code,
        latency_ms=row.latency_ms, stream=row.stream, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, preview=convert.preview(conv),
        text=convert.search_text(conv) or (row.error or "")[:2000],
    )
    return fields, conv


def entry_upsert(row, payload: dict | None = None) -> tuple[RequestEntry, convert.Conversation]:
    """Write (or refresh: a retry updates its first row) the entry of a request log: one INSERT ... ON
    CONFLICT statement, the full-text vector computed by PostgreSQL in the same statement."""
    fields, conv = entry_fields(row, payload)
    entry = RequestEntry(log_id=row.pk, **fields)
    if uses_postgres():
        entry.search = SearchVector(Value(fields["text"], output_field=TextField()), config=FTS_CONFIG)
    update = [*fields, *(["search"] if uses_postgres() else [])]
    RequestEntry.objects.bulk_create([entry], update_conflicts=True, unique_fields=["log"], update_fields=update)
    entry.search = None
    return entry, conv


# -- capture rules -----------------------------------------------------------------------------------
def sampled(request_id: str, percentage: float) -> bool:
    """Deterministic by request id: the same request always gets the same answer, and the requests a
    P% rule keeps are a subset of what a larger percentage keeps."""
    h = int.from_bytes(hashlib.sha256(str(request_id).encode()).digest()[:8], "big")
    return h < float(percentage) / 100.0 * 2**64


def rule_matches(rule: CaptureRule, entry: RequestEntry) -> bool:
    names = [n for n in (entry.alias, entry.model) if n]
    return any(fnmatch.fnmatchcase(n, rule.pattern) for n in names)


def _may_capture(rule: CaptureRule, entry: RequestEntry) -> bool:
    return getattr(rule.owner, "is_hub_admin", False) or entry.user_id == rule.owner_id


def _capturable(entry: RequestEntry, conv: convert.Conversation, *, only_successful: bool) -> bool:
    if entry.status_code >= 400 or not entry.status_code or conv.problems:
        return False
    return conv.clean or not only_successful


_rules_cache: dict = {}


def enabled_rules() -> list[CaptureRule]:
    """The enabled rules, read at most every RULES_TTL_S per process (a rule made or changed elsewhere
    applies within that; one made here at once: the rule services call `forget_rules`)."""
    now = time.monotonic()
    hit = _rules_cache.get("rules")
    if hit is None or now - hit[0] > RULES_TTL_S:
        hit = _rules_cache["rules"] = (now, list(CaptureRule.objects.filter(enabled=True).select_related("owner")))
    return hit[1]


def forget_rules() -> None:
    _rules_cache.clear()


@contextlib.contextmanager
def _own_savepoint():
    """A savepoint only when a transaction is open (a failure here must not break the caller's); in autocommit
    each statement stands alone already, so no BEGIN/COMMIT round trips are added."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield


def capture(row, payload: dict | None = None) -> None:
    """Index one recorded request log and offer it to the capture rules (see the module docstring)."""
    try:
        with _own_savepoint():
            entry, conv = entry_upsert(row, payload)
        for rule in enabled_rules():
            if not (rule_matches(rule, entry) and _may_capture(rule, entry)
                    and _capturable(entry, conv, only_successful=rule.only_successful)
                    and sampled(row.request_id, rule.percentage)):
                continue
            with transaction.atomic():
                _, created = CaptureItem.objects.get_or_create(rule_id=rule.pk, log_id=row.pk)
                if not created:
                    continue
                CaptureRule.objects.filter(pk=rule.pk).update(captured=F("captured") + 1)
                waiting = CaptureItem.objects.filter(rule_id=rule.pk, export__isnull=True).count()
                if waiting and waiting % capture_batch() == 0:
                    jobs.enqueue("traffic_capture_flush", rule.pk, queue_name="default")
    except Exception:  # indexing and capture must never lose the log itself
        log.exception("could not index or capture request log %s", getattr(row, "request_id", "?"))


def captured(row, payload: dict | None = None):
    """The one-line hook of request_log_record: `capture(row, payload)` once the log's transaction commits
    (never inside it: the log row is written whatever happens here), then the row."""
    transaction.on_commit(functools.partial(capture, row, payload), robust=True)
    return row


def capture_flush(*, rule_id: int | None = None, force: bool = False) -> list:
    """Cut every due batch (or rule `rule_id`'s) into a new dataset version, one per rule; returns the
    exports made. Due: CAPTURE_BATCH items wait, the oldest waited CAPTURE_MAX_WAIT_S, or `force`."""
    from apps.traffic.services.exports import capture_export_create, export_process

    rules = CaptureRule.objects.filter(items__export__isnull=True).distinct()
    if rule_id is not None:
        rules = rules.filter(pk=rule_id)
    made = []
    now = timezone.now()
    for rule in rules:
        waiting = CaptureItem.objects.filter(rule=rule, export__isnull=True)
        stats = waiting.aggregate(oldest=Min("created_at"))
        count = waiting.count()
        due = force or count >= capture_batch() or (
            stats["oldest"] is not None and now - stats["oldest"] >= dt.timedelta(seconds=capture_max_wait_s()))
        if not count or not due:
            continue
        export = capture_export_create(rule_id=rule.pk)
        if export is None:
            continue
        made.append(export_process(export_id=export.pk))
    return made


def reindex_missing(*, limit: int = TICK_REINDEX) -> int:
    """Write entries for request logs that have none (older rows, a failed capture). Returns the count."""
    from apps.proxy.models import RequestLog

    rows = list(RequestLog.objects.filter(traffic_entry__isnull=True).order_by("-pk")[:limit])
    for row in rows:
        try:
            with transaction.atomic():
                entry_upsert(row)
        except Exception:
            log.exception("could not index request log %s", row.request_id)
    return len(rows)
