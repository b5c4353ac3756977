"""The job "llamacpp.build": compile this machine's pinned llama.cpp into HUB_MODEL_CACHE on the `default` queue, so
the `gpu` worker (training, exports) is never held for the minutes a compile takes; then ask for the serving GGUF of
every version an alias points at (exports/serving.py), which is what was waiting for it.

Contract: `llamacpp_build_request(*, actor=None) -> Job | None` queues one (None when llama.cpp is already here, or a
build job is already queued or running); `llamacpp_build_run(*, job_id)` is its body (the actor
workers.llamacpp.llamacpp_build calls it): claims the job, beats, reports the compile's [n/m] steps as progress
("steps"), honours cancel, and fails with the compiler's last line as the job's error (the last lines in the job's
`progress.log_tail`; the toolchain's FAILED.json keeps them too). Idempotent: a build whose worker died is queued again and resumes (ninja rebuilds what is left).
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from apps.core.jobs import services as job_services
from apps.core.jobs.registry import REQUEUE, JobKind, register_kind
from apps.core.models import Job
from workers.engine.llamacpp import toolchain

log = logging.getLogger(__name__)
KIND = "llamacpp.build"


@register_kind
class LlamaCppBuildKind(JobKind):
    kind = KIND
    label = "llama.cpp build"
    actor_name = "llamacpp_build"
    queue_name = "default"
    stale_after_s = 180.0
    lost_after_s = 900.0
    max_attempts = 3
    phases = ("queued", "compiling", "finishing")

    def target_label(self, job) -> str:
        return f"llama.cpp {toolchain.PINNED_VERSION}"

    def on_holder_dead(self, job):
        return REQUEUE

    def on_finish(self, job, status: str, result: dict) -> None:
        """No domain row: the build's outcome stays on the job (the Jobs page shows `progress.log_tail`)."""
        keep = {k: result[k] for k in ("log_tail", "version", "root") if result.get(k)}
        if keep:
            job.progress = {**(job.progress or {}), **keep}


def llamacpp_build_request(*, actor=None) -> Job | None:
    if toolchain.find(model_cache=settings.HUB_MODEL_CACHE) is not None:
        return None
    with transaction.atomic():
        busy = (Job.objects.select_for_update().filter(kind=KIND, status__in=(Job.Status.QUEUED, Job.Status.RUNNING))
                .first())
        if busy is not None:
            return None
        owner = actor if getattr(actor, "is_authenticated", False) else None
        return job_services.job_create(kind=KIND, owner=owner, args=[])


def llamacpp_build_run(*, job_id: int) -> None:
    if job_services.job_claim(job_id=job_id) is None:
        return
    state = {"checked": 0.0, "stop": False}

    def report(done: int, total: int, line: str) -> None:  # the reading thread: also the one that asks the database
        job_services.job_progress(job_id=job_id, current=done, total=total or None, unit="steps", message=line[:200])
        now = time.monotonic()
        if now - state["checked"] >= 2.0:
            state["checked"] = now
            state["stop"] = job_services.job_should_stop(job_id=job_id)

    with job_services.job_heartbeat_thread(job_id=job_id):
        job_services.job_set_phase(job_id=job_id, phase="compiling")
        try:
            tc = toolchain.ensure(model_cache=settings.HUB_MODEL_CACHE, report=report, should_stop=lambda: state["stop"])
        except toolchain.Cancelled:
            job_services.job_finish(job_id=job_id, status=Job.Status.CANCELLED)
            return
        except toolchain.LlamaCppError as exc:
            last = [line for line in exc.log_tail.splitlines() if line.strip()]
            error = exc.message + (f" {last[-1].strip()}" if last else "")
            job_services.job_finish(job_id=job_id, status=Job.Status.FAILED, error=error[:480],
                                    error_code="llamacpp_build_failed",
                                    result={"log_tail": exc.log_tail[-4000:], "error_detail": exc.message})
            return
        job_services.job_set_phase(job_id=job_id, phase="finishing")
    job_services.job_finish(job_id=job_id, status=Job.Status.SUCCEEDED, result=tc.as_dict())
    _serve_deployed()


def _serve_deployed() -> None:
    """Every version an alias points at gets its serving GGUF now that llama.cpp is here."""
    from apps.registry.exports.serving import serving_gguf_ensure
    from apps.registry.models import Alias

    for version_id in set(Alias.objects.values_list("model_version_id", flat=True)):
        try:
            serving_gguf_ensure(version_id=version_id)
        except Exception:
            log.exception("could not ask for the serving GGUF of version %s", version_id)
