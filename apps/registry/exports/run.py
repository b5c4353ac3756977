"""The body of the job "registry.export": write the export, check it against its source version, finish the job.

Contract: `export_run(*, export_id, listener=None) -> Export | None` (the worker's actor and
`export_create(inline=True)` call it; `listener(phase | None, progress | None)` hears the job's phases and progress).
Idempotent: it claims the export's job first (returns at once for a finished job, or one a live process holds); a
re-run starts over (ARTIFACT_ROOT/exports/ex-<id>/ and its `.partial` twin are removed first). Phases: preparing,
building llama.cpp (only when it must be built: the compile's [n/m] steps are the progress), copying | merging,
converting, quantizing, checking, finishing; a cancel is honoured in every phase. Everything is written into
`exports/.ex-<id>.partial/` and renamed to `exports/ex-<id>/` only when the checks have run; any failure (a full
disk, an unsupported architecture: the converter's message, an export that does not load: the loader's message, a
llama.cpp build that fails: the compiler's last lines) removes the partial files and fails the job. The finished
Export (apps/registry/jobs.py writes it) is `succeeded`, or `degraded` with `checks.reasons`. A succeeded q8_0 / f16
GGUF is recorded as the version's `gguf_path` (services.manifest_record_gguf).

The source's reference answers are cached under exports/reference/ (keyed by the prompts, the text and the weights'
paths), so the f16, q8_0 and q4_k_m exports of one version measure the source once.
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.core.models import Job
from apps.registry.exports import checks as checks_mod
from apps.registry.exports import services
from apps.registry.exports.formats import SERVING_QUANTIZATIONS
from apps.registry.models import Export
from workers.engine.export import Cancelled, ExportError, Source, no_space
from workers.engine.export import probe, write
from workers.engine.llamacpp.toolchain import LlamaCppError

log = logging.getLogger(__name__)
MAX_NEW_TOKENS = probe.MAX_NEW_TOKENS


class _Job:
    """Phase, progress and cancel of one export's job (progress writes are throttled by the lifecycle); `listener`
    (the command line's progress display) hears every phase and progress call."""

    def __init__(self, job_id: int, listener=None):
        self.job_id, self.listener = job_id, listener
        self._stop_checked, self._stop = 0.0, False
        self._owner = threading.current_thread()

    def phase(self, name: str) -> None:
        job_services.job_set_phase(job_id=self.job_id, phase=name)
        if self.listener is not None:
            self.listener(name, None)

    def progress(self, current, total, unit: str, message: str = "") -> None:
        job_services.job_progress(job_id=self.job_id, current=current, total=total, unit=unit, message=message)
        if self.listener is not None:
            self.listener(None, {"current": current, "total": total, "unit": unit, "message": message})

    def should_stop(self) -> bool:
        """Cooperative cancel. llama.cpp's tools ask from their watcher threads: those get the flag that this
        thread and `watch()`'s thread keep (one database connection each, not one per watcher)."""
        if threading.current_thread() is self._owner:
            now = time.monotonic()
            if not self._stop and now - self._stop_checked >= 0.5:
                self._stop_checked = now
                self._stop = job_services.job_should_stop(job_id=self.job_id)
        return self._stop

    @contextmanager
    def watch(self, every_s: float = 1.0):
        """Polls for a cancel from a thread while the work runs (the owner thread may sit in a child process)."""
        done = threading.Event()

        def loop() -> None:
            from django.db import connection

            try:
                while not done.wait(every_s):
                    row = Job.objects.filter(pk=self.job_id).values_list("cancel_requested", "status").first()
                    if row is not None and (row[0] or row[1] in Job.FINISHED):
                        self._stop = True  # (a row this thread cannot see — a test's open transaction — says nothing)
            except Exception:  # the database went away: the owner thread's own checks still work
                log.debug("cancel watch of job %s stopped", self.job_id, exc_info=True)
            finally:
                connection.close()

        thread = threading.Thread(target=loop, name=f"export-cancel-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join(timeout=5)

    def checking(self, what: str):
        return lambda done, total: self.progress(done, total, "steps", f"{what}: {done}/{total}")


def _context_length(source: Source) -> int:
    folder = Path(source.model_path or source.base_model_path or "")
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return 2048
    return int(min(cfg.get("max_position_embeddings") or 2048, 8192))


def _tokenizer(source: Source):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source.tokenizer_dir)
    except Exception as exc:
        raise ExportError(f"Could not load the version's tokenizer: {exc}", code="source_unloadable") from exc


class _Reference:
    """The source version's answers and perplexity, computed once per (weights, prompts, text)."""

    def __init__(self, source: Source, version_id: int, ids, text: str, ctx: int, timings: dict):
        key = json.dumps([source.__dict__, ids, text, ctx, MAX_NEW_TOKENS], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.path = services.exports_root() / "reference" / f"mv-{version_id}-{digest}.json"
        self.source, self.ids, self.text, self.ctx, self.timings = source, ids, text, ctx, timings
        try:
            self.value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.value = None

    def measure(self, model, tokenizer, job: _Job) -> dict:
        if self.value is None:
            t0 = time.monotonic()
            self.value = probe.transformers_probe(model, tokenizer, self.ids, self.text, ctx=self.ctx,
                                                  max_new_tokens=MAX_NEW_TOKENS, report=job.checking("source"),
                                                  should_stop=job.should_stop)
            self.timings["reference_s"] = round(time.monotonic() - t0, 2)  # part of check_s
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.value))
                tmp.replace(self.path)
            except OSError:
                pass  # only a cache
        return self.value

    def get(self, tokenizer, job: _Job) -> dict:
        if self.value is None:
            model, _ = write.load_source(self.source)
            self.measure(model, tokenizer, job)
            del model
            gc.collect()
        return self.value


def _merged_export(export: Export) -> tuple[Export, Path] | None:
    """A finished merged export of the same version whose folder is still here (a GGUF export starts from it)."""
    for other in Export.objects.filter(model_version_id=export.model_version_id, format=Export.Format.MERGED,
                                       status__in=(Export.Status.SUCCEEDED, Export.Status.DEGRADED)).exclude(pk=export.pk):
        path = services.export_abspath(other)
        if path is not None and (path / "config.json").is_file():
            return other, path
    return None


def _gguf_name(export: Export) -> str:
    return f"{slugify(export.model_version.name)[:60] or f'mv-{export.model_version_id}'}-{export.quantization}.gguf"


def _build_toolchain(job: _Job):
    from workers.engine.llamacpp import toolchain

    cache = Path(settings.HUB_MODEL_CACHE)
    tc = toolchain.find(model_cache=cache)
    if tc is not None:
        return tc
    job.phase("building llama.cpp")

    def report(done: int, total: int, line: str) -> None:
        job.progress(done, total or None, "build steps", line[:200])

    return toolchain.ensure(model_cache=cache, report=report, should_stop=job.should_stop)


@contextmanager
def _timed(timings: dict, key: str):
    t0 = time.monotonic()
    try:
        yield
    finally:
        timings[key] = round(timings.get(key, 0.0) + time.monotonic() - t0, 2)


def _base_dir(source: Source) -> str | None:
    return source.base_model_path if source.kind == "adapter" else source.model_path


def _write_and_check(export: Export, job: _Job, staging: Path, timings: dict, extra: dict) -> tuple[str, dict]:
    """Write the export into `staging`; returns (its path inside staging, checks). `extra`: result fields found on
    the way (the llama.cpp version), kept for a failure too."""
    version = export.model_version
    source = services.source_of(version)
    tokenizer = _tokenizer(source)
    ctx_len = _context_length(source)
    picked = checks_mod.validation_prompts(version)
    ids = probe.prompt_ids(tokenizer, picked["prompts"], limit=max(8, ctx_len - MAX_NEW_TOKENS - 8))
    text, ppl_ctx = probe.perplexity_text(tokenizer, picked["texts"], model_ctx=ctx_len)
    reference = _Reference(source, version.pk, ids, text, ppl_ctx, timings)
    shard = str(getattr(settings, "HUB_EXPORT_MAX_SHARD_SIZE", "2GB"))

    def probe_transformers(loaded_from: Source) -> dict:
        model, _ = write.load_source(loaded_from, role="export")
        return probe.transformers_probe(model, tokenizer, ids, text, ctx=ppl_ctx, report=job.checking("export"),
                                        should_stop=job.should_stop)

    if export.format == Export.Format.ADAPTER:
        job.phase("copying")
        with _timed(timings, "copy_s"):
            write.write_adapter(source, staging / "adapter")
        rel = "adapter"
        job.phase("checking")
        with _timed(timings, "check_s"):
            ref = reference.get(tokenizer, job)
            exported = probe_transformers(Source(kind="adapter", base_model_path=source.base_model_path,
                                                 adapter_path=str(staging / rel)))
    elif export.format == Export.Format.MERGED:
        job.phase("merging")
        with _timed(timings, "merge_s"):
            model, _ = write.load_source(source)
            write.write_merged(model, tokenizer, staging / "merged", max_shard_size=shard, base_dir=_base_dir(source))
        rel = "merged"
        job.phase("checking")
        with _timed(timings, "check_s"):
            ref = reference.measure(model, tokenizer, job)
            del model
            gc.collect()
            exported = probe_transformers(Source(kind="full", model_path=str(staging / rel)))
    else:
        from workers.engine.llamacpp import convert

        tc = _build_toolchain(job)
        extra["llama_cpp_version"] = tc.version
        reuse = _merged_export(export)
        if reuse is not None:
            timings["merged_from_export"], merged = reuse[0].pk, reuse[1]
        else:
            job.phase("merging")
            merged = staging / ".work-merged"
            with _timed(timings, "merge_s"):
                model, _ = write.load_source(source)
                write.write_merged(model, tokenizer, merged, max_shard_size="50GB", base_dir=_base_dir(source))
            job.phase("checking")
            with _timed(timings, "check_s"):
                reference.measure(model, tokenizer, job)  # while the weights are in memory anyway
            del model
            gc.collect()
        job.phase("converting")

        def report(phase: str, fraction: float) -> None:
            job.phase("quantizing" if phase == "quantize" else "converting")
            job.progress(round(fraction * 100), 100, "%",
                         f"llama-quantize → {export.quantization}" if phase == "quantize" else "convert_hf_to_gguf.py")

        rel = _gguf_name(export)
        out = convert.hf_to_gguf(tc, merged, staging / rel, quantization=export.quantization, report=report,
                                 should_stop=job.should_stop)
        timings.update(convert_s=out.get("convert_s"), quantize_s=out.get("quantize_s"),
                       tool_peak_rss_mb=out.get("peak_rss_mb"))
        if merged == staging / ".work-merged":
            shutil.rmtree(merged, ignore_errors=True)
        job.phase("checking")
        with _timed(timings, "check_s"):
            ref = reference.get(tokenizer, job)
            exported = probe.gguf_probe(tc, staging / rel, tokenizer, ids, text, ctx=ppl_ctx,
                                        report=job.checking("export"), should_stop=job.should_stop)
    result = checks_mod.evaluate(ref, exported, prompts=picked["prompts"], fmt=export.format,
                                 quantization=export.quantization, origin=picked["origin"])
    return rel, result


def _finish(job_id: int, status: str, *, error: str = "", code: str = "", result: dict | None = None,
            effects=None) -> bool:
    return job_services.job_finish(job_id=job_id, status=status, error=error, error_code=code,
                                   result=result or {}, effects=effects)


def export_run(*, export_id: int, listener=None) -> Export | None:
    export = Export.objects.select_related("model_version__base_model").filter(pk=export_id).first()
    if export is None:
        return None
    job_row = services.export_job(export)
    holder = worker_id()
    if job_row is None or job_services.job_claim(job_id=job_row.pk, holder=holder) is None:
        return Export.objects.filter(pk=export_id).first()
    job = _Job(job_row.pk, listener)
    final = services.export_dir(export_id)
    shutil.rmtree(final, ignore_errors=True)  # a re-run starts over
    timings: dict = {}
    extra: dict = {}
    t0 = time.monotonic()
    try:
        with job_services.job_heartbeat_thread(job_id=job.job_id, holder=holder), job.watch(), \
                write.PeakMemory() as peak:
            job.phase("preparing")
            with write.staging(final) as staging:
                rel, checks = _write_and_check(export, job, staging, timings, extra)
                job.phase("finishing")
            path = final / rel
        timings["peak_rss_mb"] = round(max(peak.peak_mb, timings.pop("tool_peak_rss_mb", None) or 0.0), 1)
        timings["total_s"] = round(time.monotonic() - t0, 2)
        status = Export.Status.SUCCEEDED if checks["passed"] else Export.Status.DEGRADED
        rel_path = str(path.relative_to(settings.ARTIFACT_ROOT))

        def effects(_job) -> dict:
            if (export.format == Export.Format.GGUF and export.quantization in SERVING_QUANTIZATIONS
                    and status == Export.Status.SUCCEEDED):
                services.manifest_record_gguf(export.model_version_id, path)
            return {}

        done = _finish(job.job_id, "succeeded", effects=effects, result={
            "export_status": status, "path": rel_path, "size_bytes": write.folder_size(path), "checks": checks,
            "timings": {k: v for k, v in timings.items() if v is not None}, **extra})
        if not done:  # finished meanwhile (cancelled, or failed by the reconciler): keep nothing
            shutil.rmtree(final, ignore_errors=True)
    except Cancelled:
        shutil.rmtree(final, ignore_errors=True)
        _finish(job.job_id, "cancelled")
    except ExportError as exc:
        shutil.rmtree(final, ignore_errors=True)
        _finish(job.job_id, "failed", error=exc.message, code=f"E_{exc.code.upper()}"[:40],
                result={"error_detail": _detail(exc.message, exc.detail), **extra})
    except LlamaCppError as exc:  # a build, conversion or quantization that failed: the tool's own words
        shutil.rmtree(final, ignore_errors=True)
        last = next((ln.strip() for ln in reversed((exc.log_tail or "").splitlines()) if ln.strip()), "")
        _finish(job.job_id, "failed", code="E_LLAMA_CPP",
                error=exc.message + (f" — last output: {last}" if last and last not in exc.message else ""),
                result={"error_detail": _detail(exc.message, exc.log_tail), **extra})
    except Exception as exc:  # never leave an export running: the traceback goes to the log only
        shutil.rmtree(final, ignore_errors=True)
        if no_space(exc):
            _finish(job.job_id, "failed", error=write.NO_SPACE, code="E_NO_SPACE")
        else:
            log.exception("export %s failed", export_id)
            _finish(job.job_id, "failed", code="E_EXPORT_FAILED", error=f"Export failed: {type(exc).__name__}: {exc}")
    return Export.objects.filter(pk=export_id).first()


def _detail(message: str, tail: str) -> str:
    tail = (tail or "").strip()
    if not tail:
        return message
    root = str(settings.ARTIFACT_ROOT).rstrip("/")
    return f"{message}\n\n{tail.replace(root, '<artifacts>')}"[:8000]
