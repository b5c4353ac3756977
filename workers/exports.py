"""Dramatiq actor for model exports (apps/registry/exports): the adapter folder, merged weights or a GGUF file of a
model version, checked against the version.

Thin and idempotent: `export_model_version(export_id)` calls apps.registry.exports.run.export_run, which claims the
export's job "registry.export" (returns at once for a finished job or one a live process holds), beats a heartbeat,
reports phases and progress, stops when a cancel is asked, and starts over when re-run. It reads the `gpu` queue:
an export loads the model (like training), and one process at a time keeps memory in bounds. A GGUF export may build
llama.cpp first (minutes), hence the long time limit."""
from __future__ import annotations

import dramatiq

from apps.registry.exports.run import export_run


@dramatiq.actor(queue_name="gpu", max_retries=0, time_limit=6 * 60 * 60 * 1000)
def export_model_version(export_id: int) -> None:
    export_run(export_id=export_id)
