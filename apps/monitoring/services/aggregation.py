"""Roll the proxy's request logs up into per-minute rows (MinuteStat), incrementally and idempotently.
Called by the `monitoring_aggregate` actor every minute (workers/monitoring.py); never on the request path.

Contract:
- `traffic_stats(start, end, per_minute, sets, alias)` aggregates RequestLog rows with start <= created_at <
  end into cells: "cell" = (alias, target), "alias" = (alias, *), "target" = (*, target), "all" = (*, *),
  per minute or over the whole span. PostgreSQL does it in one query (GROUPING SETS, percentile_cont; the
  roll-up writes it with INSERT ... SELECT); any other database in Python with the same definitions
  (`engine="python"` forces that path: the two agree). Milliseconds are kept to 3 decimals.
- `rollup_run()` recomputes, whole, every minute that (a) holds a request log newer than the watermark (the
  highest id rolled up so far; a late row, logged minutes after its request, has a new id) or (b) lies in the
  last LATE_S seconds (rows still committing out of id order; rows rewritten by request_log_record when a
  client retries with the same Idempotency-Key). A minute's rows are deleted and written again in one
  transaction, so running it twice changes nothing and a crash leaves no half-written minute. Minutes older
  than RETENTION_DAYS are neither computed nor kept. Chunks of CHUNK_MINUTES keep transactions short; the
  watermark row's lock serialises concurrent runs. The minutes a run must recompute are recorded (RollupState.
  pending) before any is, and struck off one chunk at a time, so a run that stops at its time budget (or is
  killed) leaves the rest to the next run instead of losing them.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Max
from django.db.models.functions import TruncMinute
from django.utils import timezone

from apps.monitoring.models import ALL, BrokerSample, HostSample, MinuteStat, RollupState, WorkerProcess
from apps.proxy.models import RequestLog

LATE_S = 600
RETENTION_DAYS = 30
CHUNK_MINUTES = 60
RUN_BUDGET_S = 120.0  # a run stops starting chunks after this (the actor's time limit is 5 minutes)
STATE = "requests"
SETS = {"cell": ("alias", "served_by"), "alias": ("alias",), "target": ("served_by",), "all": ()}
MINUTE = dt.timedelta(minutes=1)
FIELDS = ("requests", "errors", "client_errors", "fallbacks", "ok", "p50_ms", "p95_ms", "ttft_p50_ms",
          "prompt_tokens", "completion_tokens")


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _ms(v) -> float | None:
    """Milliseconds kept to the microsecond (the engines' float noise, 879.9999999999999, goes)."""
    return None if v is None else round(float(v), 3)


def _sql(per_minute: bool, sets: tuple[str, ...], alias: str | None) -> str:
    table = connection.ops.quote_name(RequestLog._meta.db_table)
    grouping = ", ".join("(" + ", ".join(SETS[s]) + ")" for s in sets)
    minute = "date_trunc('minute', created_at)" if per_minute else "NULL::timestamptz"
    ok = "status_code > 0 AND status_code < 400 AND latency_ms IS NOT NULL"
    grouped = {c for s in sets for c in SETS[s]}

    def col(c):  # a column no grouping set names is "*" in every row
        return f"CASE WHEN GROUPING({c}) = 1 THEN '{ALL}' ELSE {c} END" if c in grouped else f"'{ALL}'"

    return f"""
        SELECT {minute} AS minute, {col("alias")} AS alias, {col("served_by")} AS target,
               count(*) AS requests,
               count(*) FILTER (WHERE status_code >= 500 OR status_code = 0) AS errors,
               count(*) FILTER (WHERE status_code >= 400 AND status_code < 500) AS client_errors,
               count(*) FILTER (WHERE fallback) AS fallbacks,
               count(*) FILTER (WHERE {ok}) AS ok,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE {ok}) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE {ok}) AS p95_ms,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE {ok} AND ttft_ms IS NOT NULL)
                   AS ttft_p50_ms,
               coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens
        FROM {table}
        WHERE created_at >= %s AND created_at < %s {"AND alias = %s" if alias is not None else ""}
        GROUP BY {minute + ", " if per_minute else ""}GROUPING SETS ({grouping})"""


def _postgres(start, end, per_minute, sets, alias) -> list[dict]:
    params = [start, end] + ([alias] if alias is not None else [])
    with connection.cursor() as cur:
        cur.execute(_sql(per_minute, sets, alias), params)
        rows = cur.fetchall()
    out = []
    for r in rows:
        cell = {"minute": r[0], "alias": r[1], "target": r[2]}
        cell.update(zip(FIELDS, (int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7]), _ms(r[8]), _ms(r[9]),
                                 _ms(r[10]), int(r[11]), int(r[12]))))
        out.append(cell)
    return out


def _python(start, end, per_minute, sets, alias) -> list[dict]:
    qs = RequestLog.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    if alias is not None:
        qs = qs.filter(alias=alias)
    acc: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, [], [], 0, 0])
    cols = ("created_at", "alias", "served_by", "status_code", "latency_ms", "ttft_ms", "fallback", "prompt_tokens",
            "completion_tokens")
    for created, a, target, status, latency, ttft, fallback, pt, ct in qs.values_list(*cols).iterator(chunk_size=5000):
        minute = floor_minute(created) if per_minute else None
        ok = 0 < status < 400 and latency is not None
        for s in sets:
            key = (minute, a if "alias" in SETS[s] else ALL, target if "served_by" in SETS[s] else ALL)
            c = acc[key]
            c[0] += 1
            c[1] += status >= 500 or status == 0
            c[2] += 400 <= status < 500
            c[3] += bool(fallback)
            if ok:
                c[4] += 1
                c[5].append(latency)
                if ttft is not None:
                    c[6].append(ttft)
            c[7] += pt or 0
            c[8] += ct or 0
    return [{"minute": m, "alias": a, "target": t, "requests": c[0], "errors": c[1], "client_errors": c[2],
             "fallbacks": c[3], "ok": c[4], "p50_ms": _ms(percentile(c[5], 0.5)),
             "p95_ms": _ms(percentile(c[5], 0.95)), "ttft_p50_ms": _ms(percentile(c[6], 0.5)), "prompt_tokens": c[7], "completion_tokens": c[8]}
            for (m, a, t), c in acc.items()]


def traffic_stats(*, start: dt.datetime, end: dt.datetime, per_minute: bool = True,
                  sets: tuple[str, ...] = tuple(SETS), alias: str | None = None, engine: str | None = None) -> list[dict]:
    """Cells of [start, end): [{minute (None when not per minute), alias, target, requests, errors,
    client_errors, fallbacks, ok, p50_ms, p95_ms, ttft_p50_ms, prompt_tokens, completion_tokens}]."""
    engine = engine or ("postgres" if connection.vendor == "postgresql" else "python")
    return (_postgres if engine == "postgres" else _python)(start, end, per_minute, sets, alias)


def _spans(minutes: list[dt.datetime], limit: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sorted minutes -> [start, end) spans of consecutive minutes, each at most `limit` minutes long."""
    spans: list[list] = []
    for m in minutes:
        if spans and spans[-1][1] == m and (m - spans[-1][0]) < limit * MINUTE:
            spans[-1][1] = m + MINUTE
        else:
            spans.append([m, m + MINUTE])
    return [(a, b) for a, b in spans]


def _insert_select(start: dt.datetime, end: dt.datetime) -> int:
    """PostgreSQL: the span's cells written by one INSERT ... SELECT (no row travels through Python)."""
    table = connection.ops.quote_name(MinuteStat._meta.db_table)
    cols = ("minute", "alias", "target") + FIELDS
    values = ", ".join(f"round({c}::numeric, 3)::double precision" if c.endswith("_ms") else c for c in cols)
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {values} FROM ({_sql(True, tuple(SETS), None)}) q",
                    [start, end])
        return cur.rowcount


def _recompute(start: dt.datetime, end: dt.datetime, engine: str | None) -> int:
    """Replace the roll-ups of [start, end) and strike the span off the pending list, in one transaction."""
    engine = engine or ("postgres" if connection.vendor == "postgresql" else "python")
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(name=STATE)  # one writer at a time
        MinuteStat.objects.filter(minute__gte=start, minute__lt=end).delete()
        if engine == "postgres":
            written = _insert_select(start, end)
        else:
            cells = traffic_stats(start=start, end=end, per_minute=True, engine=engine)
            MinuteStat.objects.bulk_create([MinuteStat(**c) for c in cells], batch_size=2000)
            written = len(cells)
        span = [start.isoformat(), end.isoformat()]
        if span in state.pending:
            state.pending = [p for p in state.pending if p != span]
            state.save(update_fields=["pending"])
    return written


def _minutes_of(spans: list) -> set[dt.datetime]:
    out = set()
    for a, b in spans:
        m, end = dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)
        while m < end:
            out.add(m)
            m += MINUTE
    return out


def rollup_run(*, now: dt.datetime | None = None, engine: str | None = None, budget_s: float | None = None) -> dict:
    """Roll up what is new since the watermark; returns {minutes, spans, rows, pending, last_id, duration_ms}.

    First, in one short transaction, the minutes to recompute (pending from an earlier run that ran out of
    time, new ids, the trailing window) are recorded as pending spans and the watermark moves to the newest id;
    then the spans are recomputed newest first, each struck off as it commits, until `budget_s` (RUN_BUDGET_S)
    has passed. What is left waits for the next run, so a large backlog (the first run on a busy hub) is worked
    off over several runs and is never lost to a time limit."""
    t0 = time.perf_counter()
    now = now or timezone.now()
    budget_s = RUN_BUDGET_S if budget_s is None else budget_s
    RollupState.objects.get_or_create(name=STATE)
    horizon = floor_minute(now) - dt.timedelta(days=RETENTION_DAYS)
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(name=STATE)
        max_id = RequestLog.objects.aggregate(m=Max("pk"))["m"] or 0
        minutes = {m for m in _minutes_of(state.pending) if m >= horizon}
        if max_id > state.last_id:
            minutes.update(RequestLog.objects.filter(pk__gt=state.last_id, pk__lte=max_id, created_at__gte=horizon)
                           .order_by().annotate(m=TruncMinute("created_at", tzinfo=dt.timezone.utc))
                           .values_list("m", flat=True).distinct())
        m = floor_minute(now - dt.timedelta(seconds=LATE_S))
        while m <= now:
            minutes.add(m)
            m += MINUTE
        spans = _spans(sorted(minutes), CHUNK_MINUTES)
        state.pending = [[a.isoformat(), b.isoformat()] for a, b in spans]
        state.last_id = max(state.last_id, max_id)
        state.save(update_fields=["pending", "last_id"])
    rows = done = 0
    for start, end in reversed(spans):  # newest first: what the page and the alerts look at
        if done >= 2 and time.perf_counter() - t0 > budget_s:  # the trailing window and one older chunk at least
            break
        rows += _recompute(start, end, engine)
        done += 1
    duration_ms = round((time.perf_counter() - t0) * 1000, 1)
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(name=STATE)
        state.last_run_at, state.last_duration_ms = now, duration_ms
        state.last_minutes, state.last_rows = len(minutes), rows
        state.save()
    return {"minutes": len(minutes), "spans": len(spans), "done": done, "rows": rows, "pending": len(state.pending),
            "last_id": state.last_id, "duration_ms": duration_ms}


def monitoring_purge(*, now: dt.datetime | None = None) -> dict:
    """Drop roll-ups and samples past RETENTION_DAYS and worker rows unseen for a day."""
    now = now or timezone.now()
    horizon = now - dt.timedelta(days=RETENTION_DAYS)
    return {"minutes": MinuteStat.objects.filter(minute__lt=horizon).delete()[0],
            "hosts": HostSample.objects.filter(minute__lt=horizon).delete()[0],
            "broker": BrokerSample.objects.filter(minute__lt=horizon).delete()[0],
            "workers": WorkerProcess.objects.filter(seen_at__lt=now - dt.timedelta(days=1)).delete()[0]}
