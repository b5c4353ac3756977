"""Websocket /ws/sources/jobs/<job_id>/: the owner of the source (or an admin) gets the job's snapshot, then its
lifecycle events; another member and a signed-out socket are refused."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

pytestmark = pytest.mark.django_db(transaction=True)


def _app():
    from channels.routing import URLRouter

    from training_hub.routing import websocket_urlpatterns

    return URLRouter(websocket_urlpatterns)


async def _connect(user, job_id):
    comm = WebsocketCommunicator(_app(), f"/ws/sources/jobs/{job_id}/")
    comm.scope["user"] = user
    connected, code = await comm.connect()
    return comm, connected, code


async def test_owner_gets_the_snapshot_then_events_and_others_are_refused(settings, repo, member, admin_user,
                                                                         django_user_model):
    from apps.core.realtime import broadcast, job_group
    from apps.sources import services

    settings.HUB_SOURCE_ROOTS = [str(repo.path.parent)]

    def make():
        src = services.source_create(user=member, kind="path", location=str(repo.path))
        analysis = services.analysis_start(user=member, source_id=src.pk)
        other = django_user_model.objects.create_user(username="other", password="x-pass-12345", role="member")
        return analysis.job_id, other

    job_id, other = await sync_to_async(make)()

    comm, connected, _ = await _connect(member, job_id)
    assert connected
    first = await comm.receive_json_from(timeout=5)
    assert first["event"] == "snapshot" and first["payload"]["status"] == "queued"
    await sync_to_async(broadcast)(job_group(job_id), "job_progress", {"progress": 0.5})
    live = await comm.receive_json_from(timeout=5)
    assert live == {"event": "job_progress", "payload": {"progress": 0.5}}
    await comm.disconnect()

    comm, connected, _ = await _connect(admin_user, job_id)
    assert connected
    assert (await comm.receive_json_from(timeout=5))["event"] == "snapshot"
    await comm.disconnect()

    for user, code in ((other, 4404), (AnonymousUser(), 4401)):
        comm, connected, got = await _connect(user, job_id)
        assert not connected and got == code
    comm, connected, got = await _connect(member, job_id + 1000)  # no such job
    assert not connected and got == 4404
