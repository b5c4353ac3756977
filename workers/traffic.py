"""Dramatiq actors for proxy traffic (apps/traffic): exports too big for a web request, capture-rule batches,
and the periodic tick. Thin: they take ids and call services, which are idempotent.

- `traffic_export(export_id)`: build the export's dataset version (apps.traffic.services.export_process);
- `traffic_capture_flush(rule_id)`: sent when a capture rule's batch fills; cuts it into a version;
- `traffic_tick()`: every minute (the `scheduler` process): cuts batches that waited long enough and indexes
  request logs that have no search entry yet.
"""
from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import interval

from apps.traffic.services import capture_flush, export_process, reindex_missing

log = logging.getLogger(__name__)

TICK_EVERY_S = 60


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def traffic_export(export_id: int) -> None:
    export_process(export_id=export_id)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def traffic_capture_flush(rule_id: int) -> None:
    capture_flush(rule_id=rule_id)


@interval(seconds=TICK_EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=30 * 60 * 1000, max_age=5 * 60 * 1000)
def traffic_tick() -> None:
    indexed = reindex_missing()
    if indexed:
        log.info("indexed %d request logs", indexed)
    for export in capture_flush():
        log.info("capture batch: export %s (%s)", export.pk, export.counts)
