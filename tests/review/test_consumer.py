"""Websocket /ws/reviews/<task_id>/: a snapshot of the progress on connect, then live `presence` and
`progress` events as reviewers take and decide items; outsiders are refused."""
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
    msg = await _next_event(comm, "presence")
    assert msg["payload"]["active"][0]["username"] == "rev1"
    assert msg["payload"]["active"][0]["example_index"] == item.example_index
    assert msg["payload"]["total"] == 3 and msg["payload"]["per_reviewer"] == {"rev1": 0, "rev2": 0}

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
