"""Live events without a channel layer: one short warning, no traceback, nothing raised."""
import logging

from channels.layers import channel_layers

from apps.core import realtime


def test_unreachable_channel_layer_logs_one_line_a_minute(settings, caplog, tmp_path, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [f"unix://{tmp_path}/no-redis.sock"]}}}
    channel_layers.backends.clear()
    monkeypatch.setattr(realtime, "_unreachable_logged_at", -1e9)
    try:
        with caplog.at_level(logging.WARNING, logger="apps.core.realtime"):
            for i in range(3):
                realtime.broadcast("job-1", "status", {"i": i})
    finally:
        channel_layers.backends.clear()
    records = [r for r in caplog.records if r.name == "apps.core.realtime"]
    assert len(records) == 1 and "unreachable" in records[0].getMessage() and records[0].exc_info is None
