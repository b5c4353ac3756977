"""Dramatiq actor for deploy bundles (apps/registry/bundles): the zip of an export with its deployment config, tools,
examples, test results and model card.

Thin and idempotent: `registry_bundle(bundle_id)` calls apps.registry.bundles.services.bundle_build, which claims the
bundle's job "registry.bundle" (returns at once for a finished job or one a live process holds), beats a heartbeat,
reports progress in bytes, stops when a cancel is asked, and starts over when re-run (the zip is written to a
temporary file and renamed, so nothing half-written is left). It reads the `default` queue: it copies files and
loads no model."""
from __future__ import annotations

import dramatiq

from apps.registry.bundles.services import bundle_build


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def registry_bundle(bundle_id: int) -> None:
    bundle_build(bundle_id=bundle_id)
