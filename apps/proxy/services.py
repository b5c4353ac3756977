"""Writes for the proxy. The request path never writes: it queues the `request_log_write` /
`request_log_write_many` actors by name (workers/proxy.py, batches of up to 50 ms), whose actors call
`request_log_record` here."""
from __future__ import annotations

import asyncio
import threading
import datetime as dt
import logging

from django.db import IntegrityError, transaction

from apps.core.jobs import enqueue as jobs
from apps.proxy.models import RequestLog
from apps.traffic import services as traffic

log = logging.getLogger(__name__)
MAX_BODY_CHARS = 20_000
_pending: set = set()  # executor sends not finished yet
_batches: dict = {}  # event loop -> _Batch: the request-log payloads waiting on that loop, and its timer
_batches_lock = threading.Lock()
LOG_BATCH_S = 0.05  # a payload waits at most this long before it is sent
LOG_BATCH_MAX = 200  # ... or until this many are waiting


def trim(value, limit: int = MAX_BODY_CHARS):
    """Keep logged bodies small: long strings are cut, long lists keep their ends."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… [{len(value) - limit} more chars]"
    if isinstance(value, list):
        items = value if len(value) <= 50 else value[:5] + [f"… {len(value) - 45} items …"] + value[-40:]
        return [trim(v, limit // 4 if len(items) > 4 else limit) for v in items]
    if isinstance(value, dict):
        return {k: trim(v, limit) for k, v in value.items()}
    return value


def _attempts(value) -> list:
    """The call's attempts, one `{target, status, error, ms}` per target tried (at most 20 kept)."""
    if not isinstance(value, list):
        return []
    out = []
    for a in value[:20]:
        if isinstance(a, dict):
            out.append({"target": str(a.get("target") or "")[:300], "status": str(a.get("status") or "")[:40],
                        "error": str(a.get("error") or "")[:500],
                        "ms": a.get("ms") if isinstance(a.get("ms"), (int, float)) else None})
    return out


def request_log_record(*, payload: dict) -> RequestLog:
    """Idempotent: the same request_id updates its row; a repeated Idempotency-Key (the SDK's retries)
    updates the first row logged for that key instead of adding one."""
    fields = dict(
        idempotency_key=payload.get("idempotency_key") or "",
        user_id=payload.get("user_id"),
        endpoint=payload.get("endpoint", ""),
        model_requested=(payload.get("model_requested") or "")[:200],
        model_served=(payload.get("model_served") or "")[:200],
        model_version_id=payload.get("model_version_id"),
        api_key_id=payload.get("api_key_id"),
        alias=(payload.get("alias") or "")[:200],
        served_by=(payload.get("served_by") or "")[:300],
        fallback=bool(payload.get("fallback")),
        attempts=_attempts(payload.get("attempts")),
        upstream_ms=payload.get("upstream_ms"),
        overhead_ms=payload.get("overhead_ms"),
        tools_dropped=max(0, int(payload.get("tools_dropped") or 0)),
        stream=bool(payload.get("stream")),
        status_code=int(payload.get("status_code") or 0),
        latency_ms=payload.get("latency_ms"),
        ttft_ms=payload.get("ttft_ms"),
        prompt_tokens=payload.get("prompt_tokens"),
        completion_tokens=payload.get("completion_tokens"),
        request=payload.get("request") or {},
        response=payload.get("response") or {},
        error=payload.get("error") or "",
        created_at=dt.datetime.fromtimestamp(payload.get("started_at") or 0, tz=dt.timezone.utc),
        experiment_id=payload.get("experiment_id") if isinstance(payload.get("experiment_id"), int) else None,
        arm=str(payload.get("arm") or "")[:16],
    )
    from apps.registry.models import ModelVersion

    if fields["model_version_id"] and not ModelVersion.objects.filter(pk=fields["model_version_id"]).exists():
        fields["model_version_id"] = None
    if fields["experiment_id"] is not None and fields["arm"] and payload.get("unit"):
        from apps.experiments.services import exposure_record  # the unit seen in its arm (idempotent)

        exposure_record(experiment_id=fields["experiment_id"], arm=fields["arm"], unit=str(payload["unit"]),
                        at=fields["created_at"])
    with transaction.atomic():
        existing = RequestLog.objects.select_for_update().filter(request_id=payload["request_id"]).first()
        if existing is None and fields["idempotency_key"]:
            existing = (RequestLog.objects.select_for_update()
                        .filter(idempotency_key=fields["idempotency_key"], user_id=fields["user_id"])
                        .order_by("created_at").first())
        if existing is not None:
            for k, v in fields.items():
                setattr(existing, k, v)
            existing.save()
            return traffic.captured(existing, payload)  # apps/traffic: search index + capture rules
        try:
            with transaction.atomic():
                return traffic.captured(RequestLog.objects.create(request_id=payload["request_id"], **fields), payload)
        except IntegrityError:  # a concurrent delivery of the same message won
            row = RequestLog.objects.get(request_id=payload["request_id"])
            return row


def _send_batch(batch: list[dict]) -> None:
    try:
        if len(batch) == 1:
            jobs.enqueue("request_log_write", batch[0], queue_name="default", on_commit=False)
        else:
            jobs.enqueue("request_log_write_many", batch, queue_name="default", on_commit=False)
    except Exception:  # logging must never break serving
        log.exception("could not queue %d request log(s) (%s...)", len(batch), batch[0].get("request_id"))


class _Batch:
    __slots__ = ("payloads", "handle")

    def __init__(self):
        self.payloads: list[dict] = []
        self.handle = None  # the loop timer that sends them


def _take(loop) -> list[dict]:
    """What waits on `loop`. Payloads left on a loop that closed inside a window are dropped with a warning
    (in production a loop closes only at shutdown, after the lifespan flush; in tests each test's loop is its
    own, and its logs must not reach the next test's broker)."""
    with _batches_lock:
        for lp in [lp for lp in _batches if lp is not loop and lp.is_closed()]:
            log.warning("dropping %d request log(s) left on a closed event loop", len(_batches.pop(lp).payloads))
        batch = _batches.pop(loop, None)
    if batch is None:
        return []
    if batch.handle is not None:
        batch.handle.cancel()
    return batch.payloads


def _flush_buffer(loop) -> None:
    """Runs on the event loop: hand what is buffered to executor sends (one Redis push per LOG_BATCH_MAX)."""
    payloads = _take(loop)
    for i in range(0, len(payloads), LOG_BATCH_MAX):
        fut = loop.run_in_executor(None, _send_batch, payloads[i:i + LOG_BATCH_MAX])
        _pending.add(fut)
        fut.add_done_callback(_pending.discard)


def request_log_enqueue(payload: dict) -> None:
    """Queue the log write off the event loop; never raises. On an event loop the payloads of one
    LOG_BATCH_S window go out together, as one `request_log_write_many` message (one Redis push in a
    worker thread for many requests: a push per request cost the hub ~0.3 ms of CPU a call); outside a loop
    the message is sent at once. Each loop (a process normally has one) batches on its own."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _send_batch([payload])
        return
    with _batches_lock:
        batch = _batches.get(loop)
        if batch is None:
            batch = _batches[loop] = _Batch()
        batch.payloads.append(payload)
        full = len(batch.payloads) >= LOG_BATCH_MAX
        if not full and batch.handle is None:
            batch.handle = loop.call_later(LOG_BATCH_S, _flush_buffer, loop)
    if full:
        _flush_buffer(loop)


async def request_log_flush() -> None:
    """Send what is buffered now and wait for every queued send (tests and shutdown)."""
    loop = asyncio.get_running_loop()
    _flush_buffer(loop)
    while True:
        for fut in [f for f in _pending if f.get_loop().is_closed()]:  # another loop's, never to finish
            _pending.discard(fut)
        mine = [f for f in _pending if f.get_loop() is loop]
        if not mine:
            return
        await asyncio.gather(*mine, return_exceptions=True)
