"""Websocket /ws/runs/<id>/: snapshot on connect, then the worker's throttled progress events."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


def _app():
    from channels.routing import URLRouter

    from training_hub.routing import websocket_urlpatterns

    return URLRouter(websocket_urlpatterns)


@sync_to_async
def _setup(member, qa_version):
    from apps.training.services import run_create

    return run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", hyperparameters={"max_steps": 5})


async def test_snapshot_then_live_progress(member, qa_version, tiny_base_model):
    from apps.training.services import run_progress_record

    run = await _setup(member, qa_version)
    comm = WebsocketCommunicator(_app(), f"/ws/runs/{run.pk}/")
    comm.scope["user"] = member
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_json_from(timeout=5)
    assert first["event"] == "snapshot" and first["payload"]["id"] == run.pk and first["payload"]["status"] == "queued"
    await sync_to_async(run_progress_record)(run_id=run.pk, points=[
        (1, {"kind": "train", "loss": 2.0, "tokens_per_s": 100.0, "steps_per_s": 2.0, "eta_s": 2.0}),
        (2, {"kind": "train", "loss": 1.5, "tokens_per_s": 110.0, "steps_per_s": 2.0, "eta_s": 1.5})])
    msg = await comm.receive_json_from(timeout=5)
    assert msg["event"] == "progress"
    assert [p["step"] for p in msg["payload"]["points"]] == [1, 2]
    assert msg["payload"]["summary"]["loss"] == 1.5 and msg["payload"]["current_step"] == 2
    await comm.disconnect()


async def test_anonymous_and_unknown_run_are_refused(member):
    from django.contrib.auth.models import AnonymousUser

    comm = WebsocketCommunicator(_app(), "/ws/runs/1/")
    comm.scope["user"] = AnonymousUser()
    connected, _ = await comm.connect()
    assert not connected
    comm = WebsocketCommunicator(_app(), "/ws/runs/987654/")
    comm.scope["user"] = member
    connected, _ = await comm.connect()
    assert not connected
