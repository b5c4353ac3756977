"""Writes for deploy bundles: `bundle_create` (a Bundle row and its job "registry.bundle", sent after commit) and
`bundle_build` (the actor's body: claim, collect, render, write the zip, finish exactly once).

Contract:
- Only admins and members build bundles (403 for reviewers and anonymous callers).
- Only an export that `succeeded` or is `degraded` (written, loads, a check past its threshold) can be bundled;
  any other status, or an export whose files are gone, is a 422 that says why (field `export_id`).
- `config` is checked against the one table of settings (apps.registry.bundles.config): unknown keys and
  out-of-range values are 422 field errors `config.<name>`; what it leaves out comes from the generation config
  and the training data's most common system prompt. The Bundle keeps the full settings it will ship.
- `bundle_build` is idempotent: a bundle not queued/running, or one a live process holds, returns at once; a
  re-run starts over. The zip lands at ARTIFACT_ROOT/bundles/<version>-<format>[-<quant>]-b<id>.zip, whole or
  not at all (build.write_zip); a failure or cancel leaves no file and the job says why in one line.
- `bundle_files_remove(export_id=...)` deletes an export's bundle zips (its delete calls it before the rows go).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.registry.bundles import selectors
from apps.registry.bundles.build import BundleCancelled, bundle_filename, clear_partials, write_zip
from apps.registry.bundles.config import config_resolve
from apps.registry.bundles.facts import BundleError, bundle_facts, export_files
from apps.registry.bundles.kind import KIND
from apps.registry.bundles.render import render_files
from apps.registry.models import Bundle, Export

log = logging.getLogger(__name__)
STOP_POLL_S = 1.0


def bundles_dir() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "bundles"


def can_build(user) -> bool:
    return bool(getattr(user, "is_authenticated", False)
                and (getattr(user, "is_hub_admin", False) or getattr(user, "role", "") == "member"))


def require_builder(user) -> None:
    if not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in first.")
    if not can_build(user):
        raise PermissionDenied("Only admins and members can build and download deploy bundles.")


def export_problem(export: Export) -> str | None:
    """Why this export cannot be bundled (None: it can)."""
    if export.status not in selectors.BUNDLABLE:
        why = {Export.Status.QUEUED: "it has not started yet", Export.Status.RUNNING: "it is still running",
               Export.Status.FAILED: "it failed" + (f" ({export.error.splitlines()[0][:200]})"
                                                    if export.error.strip() else ""),
               Export.Status.CANCELLED: "it was cancelled"}.get(export.status, f"it is {export.status}")
        return (f"Export {export.pk} cannot be bundled: {why}. Only a succeeded or degraded export can be "
                "bundled.")
    try:
        export_files(export)
    except BundleError as exc:
        return f"Export {export.pk} cannot be bundled: {exc.message}"
    return None


def bundle_create(*, actor, export_id: int, config: dict | None = None, base_url: str | None = None) -> Bundle:
    """A queued bundle of the export with its job; the worker builds it after commit. `base_url`: the hub's /v1
    as the caller reached it (the examples point there)."""
    require_builder(actor)
    export = selectors.export_get(export_id)
    problem = export_problem(export)
    if problem:
        raise ValidationFailed(problem, field="export_id")
    resolved = config_resolve(config, context_length=selectors.context_length(export),
                              defaults=selectors.bundle_defaults(export))
    if base_url:
        resolved["hub_base_url"] = base_url[:500]
    with transaction.atomic():
        bundle = Bundle.objects.create(export=export, config=resolved, created_by=actor)
        job_services.job_create(kind=KIND, owner=actor, target=bundle, args=[bundle.pk])
    return bundle


class _Stop:
    """should_stop for the writer: asks the job at most once per STOP_POLL_S."""

    def __init__(self, job_id: int):
        self.job_id, self.last, self.value = job_id, 0.0, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last >= STOP_POLL_S:
            self.last = now
            self.value = job_services.job_should_stop(job_id=self.job_id)
        return self.value


def _finish_failed(job_id: int, exc: Exception) -> None:
    if isinstance(exc, BundleCancelled):
        job_services.job_finish(job_id=job_id, status="cancelled")
    elif isinstance(exc, BundleError):
        job_services.job_finish(job_id=job_id, status="failed", error=exc.message,
                                error_code=f"E_{exc.code.upper()}"[:40])
    else:
        log.exception("bundle job %s failed", job_id)
        job_services.job_finish(job_id=job_id, status="failed", error_code="E_BUNDLE_FAILED",
                                error=f"The bundle could not be built: {type(exc).__name__}: {exc}")


def bundle_build(*, bundle_id: int) -> Bundle | None:
    bundle = Bundle.objects.select_related("export__model_version__base_model").filter(pk=bundle_id).first()
    job_id = selectors.bundle_job_id(bundle_id) if bundle is not None else None
    if job_id is None:
        return bundle
    holder = worker_id()
    if job_services.job_claim(job_id=job_id, holder=holder) is None:
        return Bundle.objects.get(pk=bundle_id)
    export, written = bundle.export, None
    try:
        with job_services.job_heartbeat_thread(job_id=job_id, holder=holder):
            problem = export_problem(export)
            if problem:
                raise BundleError(problem, "export_unusable")
            texts = render_files(bundle_facts(bundle))
            dest = bundles_dir() / bundle_filename(export.model_version.name, export.format, export.quantization,
                                                   bundle.pk)
            dest.parent.mkdir(parents=True, exist_ok=True)
            clear_partials(dest)
            job_services.job_set_phase(job_id=job_id, phase="writing")

            def progress(done: int, total: int) -> None:
                job_services.job_progress(job_id=job_id, current=done, total=total, unit="bytes",
                                          message=f"{done / 2**20:.0f} of {total / 2**20:.0f} MiB")

            size = write_zip(dest=dest, text_files=texts, model_files=export_files(export), progress=progress,
                             should_stop=_Stop(job_id))
            written = dest
        relative = str(dest.relative_to(settings.ARTIFACT_ROOT))
        finished = job_services.job_finish(job_id=job_id, status="succeeded",
                                           result={"path": relative, "size_bytes": size})
        if not finished or not Bundle.objects.filter(pk=bundle_id).exists():
            dest.unlink(missing_ok=True)  # finished meanwhile (cancelled, failed by the reconciler) or deleted
    except Exception as exc:
        if written is not None:
            written.unlink(missing_ok=True)
        _finish_failed(job_id, exc)
    return Bundle.objects.filter(pk=bundle_id).first()


def bundle_files_remove(*, export_id: int) -> int:
    """Delete the zips of an export's bundles (for the export's delete: the rows go with the export by cascade,
    the files would not). Returns how many files it removed."""
    removed = 0
    for rel in Bundle.objects.filter(export_id=export_id).exclude(path="").values_list("path", flat=True):
        path = Path(settings.ARTIFACT_ROOT) / rel
        if path.is_file() and path.resolve().is_relative_to(bundles_dir().resolve()):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
