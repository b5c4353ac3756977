"""Live events without a channel layer: one short warning, no traceback, nothing raised."""
import logging

import pytest
from channels.layers import channel_layers

from apps.core import realtime


@pytest.fixture
def redis_layer_on(settings, monkeypatch):
    """`redis_layer_on(socket)`: the channel layer is Redis on that unix socket (nothing serves it); the
    warning's once-a-minute clock is reset, and the layers built are dropped after the test."""
    monkeypatch.setattr(realtime, "_unreachable_logged_at", -1e9)

    def use(socket):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [f"unix://{socket}"]}}}
        channel_layers.backends.clear()

    yield use
    channel_layers.backends.clear()


def test_unreachable_channel_layer_logs_one_line_a_minute(settings, caplog, tmp_path, redis_layer_on):
    settings.REDIS_IS_EMBEDDED = False  # a configured Redis that is down
    redis_layer_on(tmp_path / "no-redis.sock")
    with caplog.at_level(logging.WARNING, logger="apps.core.realtime"):
        for i in range(3):
            realtime.broadcast("job-1", "status", {"i": i})
    records = [r for r in caplog.records if r.name == "apps.core.realtime"]
    assert len(records) == 1 and "unreachable" in records[0].getMessage() and records[0].exc_info is None


def test_no_warning_before_the_embedded_redis_exists(settings, caplog, tmp_path, redis_layer_on):
    """`make run` loads its demo data before the launcher starts the embedded Redis: nothing can be listening
    yet, so no "unreachable" warning (it read like a failure on a first run), and no connection attempt."""
    settings.REDIS_IS_EMBEDDED = True
    settings.EMBEDDED_REDIS_SOCKET = tmp_path / "redis.sock"
    redis_layer_on(tmp_path / "redis.sock")
    with caplog.at_level(logging.WARNING, logger="apps.core.realtime"):
        realtime.broadcast("job-1", "status", {"i": 0})
        assert not caplog.records
        (tmp_path / "redis.sock").touch()  # a socket file nobody serves: the stack should be up; it warns
        realtime.broadcast("job-1", "status", {"i": 1})
    assert [r.getMessage()[:45] for r in caplog.records] == ["live events are not delivered: the channel la"]
