"""Imports: a file (upload, path, folder or zip) becomes a new dataset version.

Contract: `dataset_import` keeps the raw upload under UPLOAD_ROOT first, creates an `importing` version
and either processes it inline — only when `import_fits_inline` (a cheap measure: bytes, rows counted
without parsing, a tokenizer already loaded) says it takes about a second — or queues it on the worker
(after commit); `version_process` parses, validates and stores the examples, committing them in batches
(never one long transaction, inline or not; the version turns ready in one short write at the end),
idempotent (a re-run starts over; a finished version is returned untouched), and never leaves
half-written rows or a version stuck in `importing`. Every import is a job
("dataset.import", apps.core.jobs; hooks in apps/datasets/jobs.py): `version_claim` takes it for this
process, `version_heartbeat` / `import_heartbeat` beat while it works, progress and a cooperative cancel
go through the job, and it finishes exactly once. `version_reconcile_imports` (the job reconciler does the
same at worker boot and every 30 s) requeues imports a dead process left behind while their raw upload
is on disk and fails the others. `parse_column_mapping` reads the `field=column` mapping of tabular files."""
from __future__ import annotations

import io
import logging
import shutil
import time
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.core import liveness
from apps.core.exceptions import NotFound, PayloadTooLarge, PermissionDenied, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.jobs.reconcile import job_reconcile
from apps.core.liveness import worker_id
from apps.datasets.jobs import IMPORT_MAX_REQUEUES, IMPORT_STALE_S, version_job_id  # noqa: F401 (re-exported)
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.services.versions import (
    _check_options,
    _finish,
    _new_version,
    _writer,
    can_write,
    delete_examples,
    safe_filename,
    version_source_path,
)
from apps.datasets.validation import validate_path
from apps.datasets.validation.tokens import counter_for_base_model, counter_loaded

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"


def _max_upload_bytes() -> int:
    return int(settings.HUB_MAX_UPLOAD_MB) * 1024 * 1024


def _store_upload(file, filename: str | None) -> tuple[Path, str, str]:
    """Keep the raw upload under UPLOAD_ROOT before anything parses it. Returns (absolute path,
    path relative to ARTIFACT_ROOT, display name)."""
    root = Path(settings.UPLOAD_ROOT)
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(file, (str, Path)):
        src = Path(file)
        if not src.exists():
            raise ValidationFailed(f"{src} does not exist.", field="file")
        display = filename or src.name
        dest = folder / safe_filename(display)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=False)
        else:
            if src.stat().st_size > _max_upload_bytes():
                shutil.rmtree(folder, ignore_errors=True)
                raise PayloadTooLarge(f"{display} is larger than the {settings.HUB_MAX_UPLOAD_MB} MB upload limit.",
                                      field="file")
            shutil.copyfile(src, dest)
    else:
        display = filename or getattr(file, "name", None) or "upload"
        size = getattr(file, "size", None)
        if size is not None and size > _max_upload_bytes():
            shutil.rmtree(folder, ignore_errors=True)
            raise PayloadTooLarge(f"{display} is larger than the {settings.HUB_MAX_UPLOAD_MB} MB upload limit.",
                                  field="file")
        dest = folder / safe_filename(display)
        with open(dest, "wb") as out:
            chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")
            for chunk in chunks:
                out.write(chunk)
    rel = dest.relative_to(Path(settings.ARTIFACT_ROOT)) if Path(settings.ARTIFACT_ROOT) in dest.parents else dest
    return dest, str(rel), Path(display).name

COLUMN_TARGETS = ("messages", "tools", "text", "prompt", "completion", "system")


def parse_column_mapping(raw: str | dict | None) -> dict | None:
    """`prompt=question, completion=answer` (or a dict) -> {"prompt": "question", "completion": "answer"}."""
    if not raw:
        return None
    pairs = raw.items() if isinstance(raw, dict) else (p.split("=", 1) for p in str(raw).split(",") if p.strip())
    out = {}
    for pair in pairs:
        if len(pair) != 2 or not str(pair[0]).strip() or not str(pair[1]).strip():
            raise ValidationFailed("Write the column mapping as `field=column, field=column`.", field="columns")
        key, col = str(pair[0]).strip(), str(pair[1]).strip()
        if key not in COLUMN_TARGETS:
            raise ValidationFailed(f"Unknown field `{key}` in the column mapping (use {', '.join(COLUMN_TARGETS)}).",
                                   field="columns")
        out[key] = col
    if not ({"messages"} <= out.keys() or {"text"} <= out.keys() or {"prompt", "completion"} <= out.keys()):
        raise ValidationFailed("Map `messages`, or `text`, or both `prompt` and `completion`.", field="columns")
    return out


def _rows_in(data: bytes) -> int:
    """At least the number of rows in a text upload: its lines (a JSON array: its objects)."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
        return data.count(b"{")
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def import_fits_inline(path: Path, *, base_model_id: str | None = None) -> bool:
    """Whether an upload is small enough to parse inside a request: at most HUB_DATASET_INLINE_MAX_MB
    (uncompressed, for a zip) and HUB_DATASET_INLINE_MAX_ROWS rows, counted without parsing (lines, a
    JSON array's objects, a Parquet footer's row count), and the base model's tokenizer already loaded in
    this process (loading one takes seconds). About a second of work at most, so a request never holds
    the request thread or the database for long; everything else goes to the worker, with live progress.
    Folders and Arrow datasets always go to the worker."""
    max_bytes = settings.HUB_DATASET_INLINE_MAX_MB * 1024 * 1024
    max_rows = settings.HUB_DATASET_INLINE_MAX_ROWS
    if not path.is_file() or path.stat().st_size > max_bytes:
        return False
    data = path.read_bytes()
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [i for i in zf.infolist() if not i.is_dir()]
                if sum(i.file_size for i in members) > max_bytes:
                    return False
                rows = sum(_rows_in(zf.read(i)) for i in members)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError):
            rows = 0  # unreadable: the parser reports it, quickly
    elif data.startswith(b"PAR1"):
        try:
            import pyarrow.parquet as pq

            rows = pq.read_metadata(path).num_rows
        except Exception:  # not a readable footer: the parser reports it
            rows = 0
    elif data.startswith((b"\xff\xff\xff\xff", b"ARROW1")):
        return False
    else:
        rows = _rows_in(data)
    return rows <= max_rows and counter_loaded(base_model_id)


def dataset_import(*, user, name: str = "", file, filename: str | None = None, format: str | None = None,
                   dataset: Dataset | int | None = None, target: str = "local", base_model: str | None = None,
                   columns: dict | None = None, split_ratio: float | None = None, note: str = "",
                   background: bool | None = False) -> DatasetVersion:
    """Import a file (an UploadedFile or a filesystem path: file, folder or zip) as a new version.

    The raw upload is kept under UPLOAD_ROOT first. A file that cannot be parsed gives a version with
    status `failed` and the error; rows with problems are reported in `validation` (every one, with its
    line). `background=None` parses in this process only what `import_fits_inline` allows (about a second
    of work) and sends the rest to the worker queue; `background=False` always parses here (the CLI)."""
    name = (name or "").strip()
    if dataset is None:
        if not name:
            raise ValidationFailed("Give the dataset a name.", field="name")
        if len(name) > 200:
            raise ValidationFailed("The name must be at most 200 characters.", field="name")
    elif isinstance(dataset, int):
        dataset = Dataset.objects.filter(pk=dataset).first()
        if dataset is None:
            raise NotFound("No such dataset.", field="dataset_id")
    if dataset is not None and not can_write(user, dataset):
        raise PermissionDenied("Only the dataset's owner or an admin can add versions to it.")
    if file is None or (not isinstance(file, (str, Path)) and getattr(file, "size", 1) == 0 and not filename):
        raise ValidationFailed("Choose a file to upload.", field="file")
    _check_options(target=target, format=format, base_model=base_model)
    columns = parse_column_mapping(columns)
    ratio = settings.HUB_VALIDATION_SPLIT if split_ratio is None else float(split_ratio)
    if not 0.0 <= ratio <= 0.5:
        raise ValidationFailed("The validation split must be between 0 and 0.5.", field="split_ratio")
    path, rel, display = _store_upload(file, filename)
    with transaction.atomic():
        if dataset is None:
            dataset = Dataset.objects.create(name=name, owner=user)
        version = _new_version(user=user, dataset=dataset, status=DatasetVersion.Status.IMPORTING, format=format or "",
                               source_file=rel, source_name=display, target=target, split_ratio=ratio,
                               base_model_id=base_model or "", note=note[:500],
                               progress={"stage": "queued", "examples": 0, "total": None, "columns": columns or {}})
        version.job = job_services.job_create(kind="dataset.import", owner=user, target=version, args=[version.pk],
                                              send=False)
        version.save(update_fields=["job"])
    if background is None:
        background = not import_fits_inline(path, base_model_id=base_model or None)
    if background:
        job_services.job_send(job_id=version.job_id)  # to workers/datasets.py, after commit
        return version
    return version_process(version_id=version.pk)


class ImportCancelled(Exception):
    pass


def version_claim(*, version_id: int, worker: str | None = None) -> DatasetVersion | None:
    """Atomically take an `importing` version's job for this process. None when there is nothing to do: it
    is no longer importing, or another live process holds it (a re-delivered message is harmless)."""
    if not DatasetVersion.objects.filter(pk=version_id, status=DatasetVersion.Status.IMPORTING).exists():
        return None
    if job_services.job_claim(job_id=version_job_id(version_id), holder=worker or worker_id()) is None:
        return None
    return DatasetVersion.objects.select_related("dataset", "job").get(pk=version_id)


def version_heartbeat(*, version_id: int, worker: str | None = None) -> bool:
    """The holder is alive (the import's heartbeat thread). False when this process does not hold it."""
    job_id = DatasetVersion.objects.filter(pk=version_id).values_list("job_id", flat=True).first()
    return bool(job_id) and job_services.job_heartbeat(job_id=job_id, holder=worker or worker_id())


HEARTBEAT_EVERY_S = 30.0


def import_heartbeat(version_id: int, worker: str, every_s: float | None = None) -> liveness.Heartbeat:
    """Beats for an import (inline ones too)."""
    return liveness.Heartbeat(lambda: version_heartbeat(version_id=version_id, worker=worker),
                              every_s=HEARTBEAT_EVERY_S if every_s is None else every_s,
                              name=f"heartbeat-import-{version_id}")


def version_reconcile_imports(*, stale_after_s: float | None = None) -> list[tuple[int, str]]:
    """Imports left `importing` by a process that died (same host: its pid is gone; another host: no
    heartbeat for `stale_after_s`): queued again on the worker when the raw upload is still there (the
    import is idempotent; partial rows are deleted), otherwise failed with the reason; a version being
    derived (fix, edit) is failed: apply the change again. Lost messages are sent again. Safe to call from
    any process at any time; returns [(version_id, "requeued" | "failed" | "cancelled" | "resent")]."""
    acted = job_reconcile(kinds=["dataset.import", "dataset.derive"], stale_after_s=stale_after_s)
    return [(job.target_id, action) for job, action in acted]


def version_process(*, version_id: int) -> DatasetVersion:
    """Parse, validate and store the examples of an `importing` version (idempotent: a re-run starts over;
    a version that is already ready or failed is returned untouched).

    Inline or on the worker, examples are committed in batches of INSERT_BATCH rows, each batch its own
    short transaction: no other request ever waits on an import (SQLite has one write lock), and live
    progress is visible. The version stays `importing` (never used) until the last row is written and
    `_finish` marks it ready in one short write; on failure its rows are deleted (in batches too), it is
    marked failed, and the raw upload stays on disk."""
    worker = worker_id()
    version = version_claim(version_id=version_id, worker=worker)
    if version is None:  # finished already, or held by another live process
        return DatasetVersion.objects.select_related("dataset").get(pk=version_id)
    delete_examples(version)  # a re-run starts over
    path = version_source_path(version)
    counter = counter_for_base_model(version.base_model_id or None)
    columns = (version.progress or {}).get("columns") or None
    on_batch, flush = _writer(version)
    last = [0.0]

    def on_progress(n, total):
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            DatasetVersion.objects.filter(pk=version.pk).update(
                progress={**(version.progress or {}), "stage": "validating", "examples": n, "total": total,
                          "columns": columns or {}, "updated_at": time.time()})
            job_services.job_progress(job_id=version.job_id, current=n, total=total, unit="examples")
            if job_services.job_should_stop(job_id=version.job_id):  # a cancel, asked from the Jobs page
                raise ImportCancelled()

    try:
        if counter is None:
            log.info("no tokenizer available: token counts skipped for version %s", version.pk)
        with import_heartbeat(version.pk, worker):  # no transaction around it: `_writer` commits per batch
            result = validate_path(path, target=version.target, counter=counter, format=version.format or None,
                                   display=version.source_name, columns=columns, split_ratio=version.split_ratio,
                                   base_model_id=version.base_model_id or None, on_batch=on_batch,
                                   on_progress=on_progress)
            flush()
            if counter is None and result.examples:
                result.report.warn("no_tokenizer", "No base model tokenizer is available: token counts, context "
                                   "length checks and estimates were skipped.", line=None)
        if result.examples == 0:
            delete_examples(version)
        return _finish(version, result)
    except ImportCancelled:
        delete_examples(version)
        job_services.job_finish(job_id=version.job_id, status="cancelled",
                                result={"message": "The import was cancelled; the raw upload is kept."})
        return DatasetVersion.objects.select_related("dataset").get(pk=version.pk)
    except Exception as exc:  # never leave half-written examples or a version stuck in `importing`
        log.exception("import of dataset version %s failed", version.pk)  # the traceback: the log only
        delete_examples(version)
        job_services.job_finish(job_id=version.job_id, status="failed", error_code="E_IMPORT_FAILED",
                                error=f"Import failed: {type(exc).__name__}: {exc}")
        return DatasetVersion.objects.select_related("dataset").get(pk=version.pk)
