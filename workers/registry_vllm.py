"""Dramatiq actors that keep a vLLM inference server's LoRA adapters in step with the registry
(apps/registry/vllm.py): after each new deployment (sent by name after its commit) and every minute (a restarted
vLLM forgets the adapters loaded at runtime; experiments and chains change without a deployment). Both are
no-ops unless HUB_INFERENCE_VLLM_LORA; both are safe to run again or side by side."""
from __future__ import annotations

import dramatiq
from dramatiq_crontab import interval

from apps.registry.vllm import lora_sync

RECONCILE_EVERY_S = 60


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=10 * 60 * 1000)
def registry_lora_sync(deployment_id: int | None = None) -> None:
    """Load what is deployed, unload what nothing serves; a deployment whose version cannot be served there
    gets a warning (the minute's reconcile retries: no Dramatiq retries)."""
    lora_sync(deployment_id=deployment_id)


@interval(seconds=RECONCILE_EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=10 * 60 * 1000, max_age=2 * 60 * 1000)
def registry_lora_reconcile() -> None:
    lora_sync()
