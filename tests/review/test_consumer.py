"""Websocket /ws/reviews/<task_id>/: a snapshot of the progress on connect, then live `presence` (only the
change: who took or gave back which item) and `progress` events as reviewers take and decide items;
outsiders are refused."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


def _app():
    from channels.routing import URLRouter

    from training_hub.routing import websocket_urlpatterns

    return URLRouter(websocket_urlpatterns)


async def _next_event(comm, name):
    for _ in range(10):
        msg = await comm.receive_json_from(timeout=5)
        if msg["event"] == name:
            return msg
    raise AssertionError(f"no {name} event")


async def test_snapshot_then_live_progress(people, make_task):
    from apps.review import services

    task = await sync_to_async(make_task)(n=3, overlap=1)
    comm = WebsocketCommunicator(_app(), f"/ws/reviews/{task.pk}/")
    comm.scope["user"] = people.owner
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_json_from(timeout=5)
    assert first["event"] == "snapshot"
    assert first["payload"]["task_id"] == task.pk and first["payload"]["total"] == 3
    assert first["payload"]["per_reviewer"] == {"rev1": 0, "rev2": 0} and first["payload"]["active"] == []

    item = await sync_to_async(services.queue_next)(user=people.rev1, task_id=task.pk)
    msg = await _next_event(comm, "presence")  # only the change: who took which item
    took = msg["payload"]["took"]
    assert msg["payload"]["task_id"] == task.pk and set(msg["payload"]) == {"task_id", "took"}
    assert (took["username"], took["item_id"], took["example_index"]) == ("rev1", item.pk, item.example_index)
    assert took["since"]
    # asking again while holding it renews the lease: nothing changed, no event
    again = await sync_to_async(services.queue_next)(user=people.rev1, task_id=task.pk)
    assert again.pk == item.pk

    await sync_to_async(services.item_skip)(user=people.rev1, task_id=task.pk, item_id=item.pk)
    msg = await _next_event(comm, "presence")
    assert msg["payload"]["left"] == {"username": "rev1", "item_id": item.pk}
    item = await sync_to_async(services.queue_next)(user=people.rev1, task_id=task.pk)
    assert (await _next_event(comm, "presence"))["payload"]["took"]["item_id"] == item.pk

    await sync_to_async(services.item_decide)(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    msg = await _next_event(comm, "progress")
    assert msg["payload"]["per_reviewer"]["rev1"] == 1 and msg["payload"]["done"] == 1
    assert msg["payload"]["active"] == []
    await comm.disconnect()


async def test_outsiders_are_refused(people, make_task):
    from django.contrib.auth.models import AnonymousUser

    task = await sync_to_async(make_task)(n=1, overlap=1)
    for user, code in ((AnonymousUser(), 4401), (people.member2, 4403), (people.rev3, 4403)):
        comm = WebsocketCommunicator(_app(), f"/ws/reviews/{task.pk}/")
        comm.scope["user"] = user
        connected, close_code = await comm.connect()
        assert not connected and close_code == code
    comm = WebsocketCommunicator(_app(), "/ws/reviews/987654/")
    comm.scope["user"] = people.admin
    connected, close_code = await comm.connect()
    assert not connected and close_code == 4404


async def test_a_result_built_by_the_worker_is_followed_live(people, make_task, monkeypatch):
    """The job "review.result" reports to the task's group: `status` (queued, running, succeeded) and
    `job_progress` with the task and snapshot ids, then the task's `progress` and `finished`."""
    from apps.review import services
    from tests.review.conftest import run_result_job

    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: None)
    monkeypatch.setattr("apps.review.services.results.INLINE_MAX", 0)
    monkeypatch.setattr("apps.review.services.results.PROGRESS_EVERY", 1)
    task = await sync_to_async(make_task)(n=2, overlap=1, assignees=[people.rev1])
    for _ in range(2):
        item = await sync_to_async(services.queue_next)(user=people.rev1, task_id=task.pk)
        await sync_to_async(services.item_decide)(user=people.rev1, task_id=task.pk, item_id=item.pk,
                                                  decision="accept")
    comm = WebsocketCommunicator(_app(), f"/ws/reviews/{task.pk}/")
    comm.scope["user"] = people.owner
    assert (await comm.connect())[0]
    await comm.receive_json_from(timeout=5)  # snapshot
    snap = await sync_to_async(services.task_finish)(user=people.owner, task_id=task.pk)
    queued = await _next_event(comm, "status")
    assert queued["payload"]["status"] == "queued" and queued["payload"]["kind"] == "review.result"
    assert (queued["payload"]["task_id"], queued["payload"]["snapshot_id"]) == (task.pk, snap.pk)
    await sync_to_async(run_result_job)(snap)
    seen = []
    for _ in range(12):
        msg = await comm.receive_json_from(timeout=5)
        seen.append((msg["event"], msg["payload"].get("status")))
        if msg["event"] == "finished":
            assert msg["payload"]["dataset_version_id"] == snap.version_id
            break
    assert ("status", "running") in seen and ("job_progress", "running") in seen
    assert ("status", "succeeded") in seen and ("progress", "finished") in seen and seen[-1][0] == "finished"
    await comm.disconnect()


def test_events_are_sent_off_the_request_path_in_order(monkeypatch):
    """Outside an ASGI server's loop (a worker, a WSGI process, this test) review events go through this
    process's one sender loop: the caller does not wait, they arrive in the order handed over, and past
    MAX_IN_FLIGHT waiting ones further events are dropped instead of piling up."""
    import asyncio

    from channels.layers import get_channel_layer

    from apps.review import realtime

    layer = get_channel_layer()
    loop = realtime._own_loop()

    def run(coro, timeout=5):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    name = run(layer.new_channel())
    run(layer.group_add("review-order", name))
    for i in range(30):
        realtime.send_soon("review-order", "presence", {"i": i})
    got = [run(layer.receive(name))["payload"]["i"] for _ in range(30)]
    assert got == list(range(30))
    monkeypatch.setattr(realtime, "MAX_IN_FLIGHT", 0)
    realtime.send_soon("review-order", "presence", {"i": "dropped"})
    with pytest.raises(asyncio.TimeoutError):
        run(asyncio.wait_for(layer.receive(name), 0.3))
