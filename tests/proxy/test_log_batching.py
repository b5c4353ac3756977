"""The request path queues its logs in batches: one broker message per ~50 ms of traffic, never one per call."""
from __future__ import annotations

import asyncio

from apps.proxy import services


async def test_logs_of_one_window_go_out_as_one_message(monkeypatch):
    sent = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda actor, arg, **kw: sent.append((actor, arg)))
    for i in range(5):
        services.request_log_enqueue({"request_id": f"r{i}"})
    assert sent == []  # nothing on the request path
    await asyncio.sleep(services.LOG_BATCH_S * 3)
    await services.request_log_flush()
    assert [(a, [p["request_id"] for p in arg]) for a, arg in sent] == [
        ("request_log_write_many", ["r0", "r1", "r2", "r3", "r4"])]


async def test_a_lone_log_is_one_plain_message_and_flush_sends_at_once(monkeypatch):
    sent = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda actor, arg, **kw: sent.append((actor, arg)))
    services.request_log_enqueue({"request_id": "alone"})
    await services.request_log_flush()  # before the timer: flush does not wait for it
    assert sent == [("request_log_write", {"request_id": "alone"})]
    await asyncio.sleep(services.LOG_BATCH_S * 2)
    assert len(sent) == 1  # the cancelled timer sends nothing twice


async def test_a_full_batch_goes_out_without_waiting(monkeypatch):
    sent = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda actor, arg, **kw: sent.append((actor, arg)))
    monkeypatch.setattr(services, "LOG_BATCH_MAX", 3)
    for i in range(7):
        services.request_log_enqueue({"request_id": f"r{i}"})
    await asyncio.sleep(0)  # the executor sends run; the timer has not fired
    while services._pending:
        await asyncio.gather(*list(services._pending))
    assert [len(arg) for _, arg in sent] == [3, 3]
    await services.request_log_flush()
    assert [len(arg) if isinstance(arg, list) else 1 for _, arg in sent] == [3, 3, 1]


def test_outside_an_event_loop_the_log_is_sent_at_once(monkeypatch):
    sent = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda actor, arg, **kw: sent.append((actor, arg)))
    services.request_log_enqueue({"request_id": "sync"})
    assert sent == [("request_log_write", {"request_id": "sync"})]


def test_the_batch_actor_writes_each_row_once_even_when_redelivered(db, member):
    import time

    from apps.proxy.models import RequestLog
    from workers.proxy import request_log_write_many

    base = {"user_id": member.pk, "endpoint": "chat.completions", "model_requested": "production",
            "status_code": 200, "started_at": time.time()}
    batch = [{**base, "request_id": f"b{i}"} for i in range(3)]
    request_log_write_many(batch)
    request_log_write_many(batch)  # the broker delivered it twice
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["b0", "b1", "b2"]


def test_a_loop_that_closed_mid_window_does_not_hold_or_leak_into_the_next(monkeypatch):
    """A payload buffered on a loop that ended before its timer is dropped (it belonged to that loop: in
    production the lifespan shutdown flushes first), and the dead loop's timer does not keep the next loop
    from batching its own."""
    sent = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda actor, arg, **kw: sent.append((actor, arg)))

    async def log_only(rid):
        services.request_log_enqueue({"request_id": rid})

    asyncio.run(log_only("first"))  # the loop ends with the payload still waiting
    assert sent == []

    async def log_and_wait():
        services.request_log_enqueue({"request_id": "second"})
        await asyncio.sleep(services.LOG_BATCH_S * 3)
        await services.request_log_flush()

    asyncio.run(log_and_wait())
    assert sent == [("request_log_write", {"request_id": "second"})]
