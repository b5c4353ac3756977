"""A GGUF for every deployed version, so the inference process serves it through llama.cpp (workers/inference/
llama_backend.py) instead of transformers.

When a deployment commits (deploy, rollback, promote, canary), `serving_gguf_ensure(version_id=, actor=)` asks for a
GGUF export of the version in HUB_SERVING_GGUF (default f16: the served answers are the version's own, as the
round-trip check shows; q8_0 decodes ~15 % faster and may flip close greedy choices; "off" turns this off), unless:
the version is remote, its weights are not here, its manifest already names a GGUF, such an export is queued,
running or done, or the inference server is vLLM (HUB_INFERENCE_VLLM_LORA). When this machine has no llama.cpp yet,
a "llamacpp.build" job compiles it first on the default queue (exports/llamacpp_job.py), which asks again for every
deployed version when it is done; until the GGUF exists the version is served by transformers, and /v1/models says so. Never raises into the deploy: a problem is logged."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.core.jobs import services as job_services
from apps.registry.exports.services import KIND, weights_problem, source_of
from apps.registry.models import Deployment, Export, ModelVersion

log = logging.getLogger(__name__)


def serving_quantization() -> str | None:
    q = (getattr(settings, "HUB_SERVING_GGUF", "f16") or "off").lower()
    return None if q == "off" else q


def _manifest_gguf(version_id: int) -> str | None:
    path = Path(settings.ARTIFACT_ROOT) / "models" / f"mv-{version_id}" / "hub_model.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    gguf = data.get("gguf_path") if isinstance(data, dict) else None
    return gguf if gguf and Path(gguf).is_file() else None


def serving_gguf_ensure(*, version_id: int, actor=None) -> Export | None:
    """The serving export asked for (or None: nothing to do). System action: no permission check."""
    q = serving_quantization()
    if q is None or getattr(settings, "HUB_INFERENCE_VLLM_LORA", False):
        return None
    with transaction.atomic():
        version = (ModelVersion.objects.select_for_update(of=("self",)).select_related("base_model")
                   .filter(pk=version_id).first())
        if version is None or version.kind == ModelVersion.Kind.REMOTE:
            return None
        if _manifest_gguf(version_id) or weights_problem(version, source_of(version)):
            return None
        from workers.engine.llamacpp import toolchain

        if toolchain.find(model_cache=settings.HUB_MODEL_CACHE) is None:
            # compiled first on the default queue (minutes; never on the gpu worker); its job asks again after
            from apps.registry.exports.llamacpp_job import llamacpp_build_request

            transaction.on_commit(lambda: llamacpp_build_request(actor=actor))
            return None
        if Export.objects.filter(model_version=version, format=Export.Format.GGUF, quantization=q,
                                 status__in=(Export.Status.QUEUED, Export.Status.RUNNING,
                                             Export.Status.SUCCEEDED, Export.Status.DEGRADED)).exists():
            return None
        who = actor if getattr(actor, "is_authenticated", False) else None
        export = Export.objects.create(model_version=version, format=Export.Format.GGUF, quantization=q,
                                       created_by=who)
        job_services.job_create(kind=KIND, owner=who, target=export, args=[export.pk])
    log.info("serving GGUF (%s) of %s asked for: export %s", q, version.name, export.pk)
    return export


def deployment_saved(sender, instance: Deployment, created: bool, **kwargs) -> None:
    """post_save of a Deployment: after the deploy commits, ask for the version's serving GGUF."""
    if not created or serving_quantization() is None:
        return
    version_id, actor = instance.model_version_id, instance.actor

    def ask() -> None:
        try:
            serving_gguf_ensure(version_id=version_id, actor=actor)
        except Exception:  # a deploy never fails for this; the version is served by transformers meanwhile
            log.exception("could not ask for the serving GGUF of version %s", version_id)

    transaction.on_commit(ask)


def serving_engine(version: ModelVersion) -> dict:
    """How the local inference process serves `version` (the rule of workers/inference/llama_backend.py, read from
    the same manifest and toolchain): {"engine": "llama.cpp" | "transformers" | "vLLM" | "remote", "gguf": path or
    None, "notice": why not llama.cpp, or None}."""
    from workers.engine.llamacpp import toolchain

    if version.kind == ModelVersion.Kind.REMOTE:
        return {"engine": "remote", "gguf": None, "notice": None}
    if getattr(settings, "HUB_INFERENCE_VLLM_LORA", False):
        return {"engine": "vLLM", "gguf": None, "notice": None}
    gguf = _manifest_gguf(version.pk)
    if gguf is None:
        pending = Export.objects.filter(model_version=version, format=Export.Format.GGUF,
                                        status__in=(Export.Status.QUEUED, Export.Status.RUNNING)).first()
        notice = (f"Its GGUF is being made (export #{pending.pk}, {pending.status}); served by transformers until then."
                  if pending else "No GGUF export of this version yet: served by transformers (slower).")
        return {"engine": "transformers", "gguf": None, "notice": notice}
    if toolchain.find(model_cache=settings.HUB_MODEL_CACHE) is None:
        state = toolchain.build_status(model_cache=settings.HUB_MODEL_CACHE)["state"]
        why = {"building": "llama.cpp is being built", "failed": "the llama.cpp build failed"}.get(
            state, "llama.cpp is not built on this machine")
        return {"engine": "transformers", "gguf": gguf, "notice": f"Served by transformers because {why}."}
    return {"engine": "llama.cpp", "gguf": gguf, "notice": None}
