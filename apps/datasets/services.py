"""Dataset writes: imports, one-click fixes (each a new immutable version), exports.

Permissions: every signed-in user may read every dataset (a team hub; the demo data is for all);
only the owner or a hub admin may add versions to a dataset.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.core import liveness
from apps.core.liveness import worker_id
from apps.core.exceptions import Conflict, NotFound, PayloadTooLarge, PermissionDenied, ValidationFailed
from apps.datasets.formats import FORMATS, TARGETS
from apps.datasets.models import Dataset, DatasetVersion, Example
from apps.datasets.validation import validate_path
from apps.datasets.validation.pipeline import validate_examples
from apps.datasets.validation.tokens import counter_for_base_model

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
FIXES = {
    "merge_consecutive_turns": "Merge consecutive turns of the same role into one",
    "drop_exact_duplicates": "Drop exact duplicates (keep the first)",
    "drop_empty_turns": "Drop empty turns (and examples left without an answer)",
    "convert_text_to_chat": "Convert text rows holding `User:/Assistant:` or `Q:/A:` turns into chat",
}
INSERT_BATCH = 1000
# An import whose holder (on another machine) has not shown life for this long is taken for dead.
IMPORT_STALE_S = 120
# An import interrupted this many times (the worker killed each time, e.g. out of memory) is failed.
IMPORT_MAX_REQUEUES = 3
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# --- helpers ------------------------------------------------------------------------------------------
def _max_upload_bytes() -> int:
    return int(settings.HUB_MAX_UPLOAD_MB) * 1024 * 1024


def _can_write(user, dataset: Dataset) -> bool:
    return user is not None and (dataset.owner_id == user.pk or getattr(user, "is_hub_admin", False))


def _safe_filename(name: str) -> str:
    name = Path(str(name).replace("\\", "/")).name or "upload"
    name = _SAFE_NAME.sub("_", name).strip("._") or "upload"
    return name[:120]


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
        dest = folder / _safe_filename(display)
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
        dest = folder / _safe_filename(display)
        with open(dest, "wb") as out:
            chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")
            for chunk in chunks:
                out.write(chunk)
    rel = dest.relative_to(Path(settings.ARTIFACT_ROOT)) if Path(settings.ARTIFACT_ROOT) in dest.parents else dest
    return dest, str(rel), Path(display).name


def version_source_path(version: DatasetVersion) -> Path | None:
    if not version.source_file:
        return None
    p = Path(version.source_file)
    return p if p.is_absolute() else Path(settings.ARTIFACT_ROOT) / p


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


def _next_number(dataset: Dataset) -> int:
    return (dataset.versions.aggregate(m=Max("number"))["m"] or 0) + 1


def _check_options(*, target: str, format: str | None, base_model: str | None):
    if target not in TARGETS:
        raise ValidationFailed(f"Unknown target `{target}` (choose {', '.join(TARGETS)}).", field="target")
    if format and format not in FORMATS:
        raise ValidationFailed(f"Unknown format `{format}` (choose {', '.join(FORMATS)}).", field="format")
    if base_model:
        from apps.registry.models import BaseModel

        if not BaseModel.objects.filter(pk=base_model).exists():
            raise ValidationFailed(f"Unknown base model `{base_model}`.", field="base_model")


def _new_version(*, user, dataset: Dataset, **fields) -> DatasetVersion:
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        return DatasetVersion.objects.create(dataset=dataset, number=_next_number(dataset), created_by=user, **fields)


# --- import -------------------------------------------------------------------------------------------
def dataset_import(*, user, name: str = "", file, filename: str | None = None, format: str | None = None,
                   dataset: Dataset | int | None = None, target: str = "local", base_model: str | None = None,
                   columns: dict | None = None, split_ratio: float | None = None, note: str = "",
                   background: bool | None = False) -> DatasetVersion:
    """Import a file (an UploadedFile or a filesystem path: file, folder or zip) as a new version.

    The raw upload is kept under UPLOAD_ROOT first. A file that cannot be parsed gives a version with
    status `failed` and the error; rows with problems are reported in `validation` (every one, with its
    line). `background=None` sends files over HUB_DATASET_INLINE_MAX_MB to the worker queue."""
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
    if dataset is not None and not _can_write(user, dataset):
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
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if background is None:
        background = size > settings.HUB_DATASET_INLINE_MAX_MB * 1024 * 1024
    if background:
        from workers.datasets import import_dataset_version

        transaction.on_commit(lambda: import_dataset_version.send(version.pk))
        return version
    return version_process(version_id=version.pk)


def _example_row(version: DatasetVersion, a) -> Example:
    ex = a.example
    return Example(version=version, index=a.index, messages=ex["messages"], tools=ex.get("tools"),
                   source_file=(ex.get("source_file") or "")[:500], source_line=ex.get("source_line"),
                   category=(ex.get("category") or "")[:100], tags=ex.get("tags") or [], content_hash=a.hash,
                   split=a.split, token_count=a.tokens, issues=("|" + "|".join(sorted(a.codes)) + "|")[:400] if a.codes else "",
                   meta=ex.get("meta") or {})


def _writer(version: DatasetVersion):
    pending: list[Example] = []

    def on_batch(batch):
        pending.extend(_example_row(version, a) for a in batch)
        while len(pending) >= INSERT_BATCH:
            Example.objects.bulk_create(pending[:INSERT_BATCH])
            del pending[:INSERT_BATCH]

    def flush():
        if pending:
            Example.objects.bulk_create(pending)
            pending.clear()
    return on_batch, flush


def _finish(version: DatasetVersion, result, *, source_examples=None) -> DatasetVersion:
    rep = result.as_dict()
    version.validation = {k: rep[k] for k in ("errors", "warnings", "counts", "error_total", "warning_total",
                                               "truncated")}
    version.stats = result.stats
    version.format = version.format or result.format
    if version.format != result.format and result.format != "unknown":
        version.format = result.format
    version.example_count = result.examples
    version.content_hash = result.content_hash
    if result.examples == 0:
        version.status = DatasetVersion.Status.FAILED
        first = rep["errors"][0] if rep["errors"] else None
        version.error = (f"{first.get('file') or version.source_name}"
                         f"{':' + str(first['line']) if first and first.get('line') else ''}: {first['message']}"
                         if first else "No examples found.")
    else:
        version.status = DatasetVersion.Status.READY
        version.error = ""
    version.progress = {**(version.progress or {}), "stage": "done", "examples": result.examples}
    version.save()
    return version


def _holder_dead(version: DatasetVersion, *, stale_after_s: float) -> bool:
    return liveness.holder_dead(version.worker, version.heartbeat_at, stale_after_s=stale_after_s)


def version_claim(*, version_id: int, worker: str | None = None) -> DatasetVersion | None:
    """Atomically take an `importing` version for this process. None when there is nothing to do: it is
    no longer importing, or another live process holds it (a re-delivered message is harmless)."""
    worker = worker or worker_id()
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().select_related("dataset").filter(pk=version_id).first()
        if version is None or version.status != DatasetVersion.Status.IMPORTING:
            return None
        if version.worker and version.worker != worker and not _holder_dead(version, stale_after_s=IMPORT_STALE_S):
            return None
        version.worker = worker
        version.heartbeat_at = timezone.now()
        version.save(update_fields=["worker", "heartbeat_at"])
    return version


def version_heartbeat(*, version_id: int, worker: str | None = None) -> None:
    """The holder is alive (called from the worker's heartbeat thread and with each progress update)."""
    DatasetVersion.objects.filter(pk=version_id, status=DatasetVersion.Status.IMPORTING,
                                  worker=worker or worker_id()).update(heartbeat_at=timezone.now())


HEARTBEAT_EVERY_S = 30.0


def _Heartbeat(version_id: int, worker: str, every_s: float | None = None) -> liveness.Heartbeat:
    """Beats for an import (also while an inline import holds its transaction open)."""
    return liveness.Heartbeat(lambda: version_heartbeat(version_id=version_id, worker=worker),
                              every_s=HEARTBEAT_EVERY_S if every_s is None else every_s,
                              name=f"heartbeat-import-{version_id}")


def _fail_interrupted(version: DatasetVersion, error: str) -> None:
    Example.objects.filter(version=version).delete()
    version.status = DatasetVersion.Status.FAILED
    version.error = error
    version.progress = {**(version.progress or {}), "stage": "failed", "updated_at": time.time()}
    version.save(update_fields=["status", "error", "progress"])


def version_reconcile_imports(*, stale_after_s: float | None = None) -> list[tuple[int, str]]:
    """Imports left `importing` by a process that died (same host: its pid is gone; another host: no
    heartbeat for `stale_after_s`): queued again on the worker when the raw upload is still there (the
    import is idempotent; partial rows are deleted here and again when it starts), otherwise failed with
    the reason. Versions being derived (fixes, edits) are failed: apply the change again. Safe to call
    from any process at any time; returns [(version_id, "requeued" | "failed")]."""
    stale = IMPORT_STALE_S if stale_after_s is None else stale_after_s
    me = worker_id()
    actions = []
    candidates = DatasetVersion.objects.filter(status=DatasetVersion.Status.IMPORTING).exclude(worker="").exclude(
        worker=me).only("pk", "worker", "heartbeat_at")
    for cand in candidates:
        if not _holder_dead(cand, stale_after_s=stale):
            continue
        with transaction.atomic():
            v = DatasetVersion.objects.select_for_update().filter(pk=cand.pk).first()
            if v is None or v.status != DatasetVersion.Status.IMPORTING or v.worker != cand.worker:
                continue  # finished, or taken over, meanwhile
            progress = v.progress or {}
            requeued = int(progress.get("requeued") or 0)
            source = version_source_path(v)
            if v.parent_id is not None:
                _fail_interrupted(v, f"The process creating this version ({v.note or 'a change'}) stopped before "
                                     f"it finished, so nothing was kept. Version {v.parent.number} is unchanged; "
                                     f"apply the change again.")
                action = "failed"
            elif source is None or not source.exists():
                _fail_interrupted(v, f"The import was interrupted (its worker {v.worker} stopped) and the raw "
                                     f"upload {v.source_name or v.source_file or ''} is no longer on disk, so it "
                                     f"cannot be retried. Upload the file again.")
                action = "failed"
            elif requeued >= IMPORT_MAX_REQUEUES:
                _fail_interrupted(v, f"The import was interrupted {requeued + 1} times (its worker was killed each "
                                     f"time, possibly running out of memory), so it was not retried again. The raw "
                                     f"upload is kept: split the file or import it again.")
                action = "failed"
            else:
                Example.objects.filter(version=v).delete()
                v.worker, v.heartbeat_at, v.error = "", None, ""
                v.progress = {**progress, "stage": "queued", "examples": 0, "requeued": requeued + 1,
                              "updated_at": time.time()}
                v.save(update_fields=["worker", "heartbeat_at", "error", "progress"])
                from workers.datasets import import_dataset_version

                pk = v.pk
                transaction.on_commit(lambda pk=pk: import_dataset_version.send(pk))
                action = "requeued"
            log.warning("dataset version %s left importing by dead worker %s: %s", v.pk, cand.worker, action)
        actions.append((cand.pk, action))
    return actions


def version_process(*, version_id: int, atomic: bool = True) -> DatasetVersion:
    """Parse, validate and store the examples of an `importing` version (idempotent: a re-run starts over;
    a version that is already ready or failed is returned untouched).

    atomic=True (inline imports): all examples in one transaction. atomic=False (the worker's big
    imports): examples are committed in batches so that live progress is visible and the database is not
    locked for minutes; the version stays `importing` (never used) until the last row is written, and on
    failure its rows are deleted."""
    worker = worker_id()
    version = version_claim(version_id=version_id, worker=worker)
    if version is None:  # finished already, or held by another live process
        return DatasetVersion.objects.select_related("dataset").get(pk=version_id)
    Example.objects.filter(version=version).delete()
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
                          "columns": columns or {}, "updated_at": time.time()},
                heartbeat_at=timezone.now())

    try:
        if counter is None:
            log.info("no tokenizer available: token counts skipped for version %s", version.pk)
        with _Heartbeat(version.pk, worker), (transaction.atomic() if atomic else contextlib.nullcontext()):
            result = validate_path(path, target=version.target, counter=counter, format=version.format or None,
                                   display=version.source_name, columns=columns, split_ratio=version.split_ratio,
                                   base_model_id=version.base_model_id or None, on_batch=on_batch,
                                   on_progress=on_progress)
            flush()
            if counter is None and result.examples:
                result.report.warn("no_tokenizer", "No base model tokenizer is available: token counts, context "
                                   "length checks and estimates were skipped.", line=None)
            if result.examples == 0 and atomic:
                transaction.set_rollback(True)
        if result.examples == 0:
            Example.objects.filter(version=version).delete()
        return _finish(version, result)
    except Exception as exc:  # never leave half-written examples or a version stuck in `importing`
        log.exception("import of dataset version %s failed", version.pk)
        Example.objects.filter(version=version).delete()
        version.status = DatasetVersion.Status.FAILED
        version.error = f"Import failed: {type(exc).__name__}: {exc}"
        version.progress = {**(version.progress or {}), "stage": "failed"}
        version.save(update_fields=["status", "error", "progress"])
        return version


# --- fixes --------------------------------------------------------------------------------------------
def _example_dict(e: Example) -> dict:
    return {"messages": e.messages, "tools": e.tools, "source_file": e.source_file, "source_line": e.source_line,
            "category": e.category, "tags": list(e.tags or []), "meta": dict(e.meta or {"kind": "chat"})}


def _merge_consecutive(ex):
    out = []
    for m in ex["messages"]:
        if (out and out[-1]["role"] == m["role"] and m["role"] in ("user", "assistant", "system")
                and not out[-1].get("tool_calls") and not m.get("tool_calls")):
            prev = dict(out[-1])
            prev["content"] = ((prev.get("content") or "").rstrip() + "\n\n" + (m.get("content") or "").lstrip()).strip()
            if "weight" in prev or "weight" in m:
                prev["weight"] = max(prev.get("weight", 1), m.get("weight", 1))
            out[-1] = prev
        else:
            out.append(dict(m))
    ex["messages"] = out
    return ex


def _drop_empty(ex):
    ex["messages"] = [m for m in ex["messages"] if (m.get("content") or "").strip() or m.get("tool_calls")
                      or m["role"] == "tool"]
    return ex if any(m["role"] == "assistant" for m in ex["messages"]) else None


_TURN = re.compile(r"^(Q|A|Question|Answer|User|Assistant|Human|AI|System)\s*:\s?", re.I | re.M)
_TURN_ROLE = {"q": "user", "question": "user", "user": "user", "human": "user", "a": "assistant",
              "answer": "assistant", "assistant": "assistant", "ai": "assistant", "system": "system"}


def _text_to_chat(ex):
    if ex.get("meta", {}).get("kind") not in ("text", "prompt_completion"):
        return ex
    if ex["meta"]["kind"] == "prompt_completion":
        ex["meta"] = {**ex["meta"], "kind": "chat"}
        return ex
    text = ex["messages"][0]["content"] if ex["messages"] else ""
    parts = list(_TURN.finditer(text))
    if len(parts) < 2:
        return ex
    msgs = []
    for i, m in enumerate(parts):
        end = parts[i + 1].start() if i + 1 < len(parts) else len(text)
        msgs.append({"role": _TURN_ROLE[m.group(1).lower()], "content": text[m.end():end].strip()})
    if not any(m["role"] == "assistant" for m in msgs):
        return ex
    ex["messages"] = msgs
    ex["meta"] = {**ex["meta"], "kind": "chat"}
    return ex


def _writable_ready_version(user, version_id: int, verb: str) -> DatasetVersion:
    parent = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if parent is None:
        raise NotFound("No such dataset version.")
    if not _can_write(user, parent.dataset):
        raise PermissionDenied(f"Only the dataset's owner or an admin can {verb} it.")
    if parent.status != DatasetVersion.Status.READY:
        raise Conflict(f"Only a ready version can be {verb}ed.")
    return parent


def _derive_version(*, user, parent: DatasetVersion, note: str, examples, stage: dict, target: str | None = None,
                    base_model: str | None = None) -> DatasetVersion:
    """A new version from `examples` (normalized dicts), validated again; the parent is never changed."""
    target = target or parent.target
    base_model = parent.base_model_id if base_model is None else base_model
    version = _new_version(user=user, dataset=parent.dataset, parent=parent, status=DatasetVersion.Status.IMPORTING,
                           format=parent.format, source_file=parent.source_file, source_name=parent.source_name,
                           target=target, split_ratio=parent.split_ratio, base_model_id=base_model,
                           note=note[:500], progress=stage, worker=worker_id(), heartbeat_at=timezone.now())
    counter = counter_for_base_model(base_model or None)
    on_batch, flush = _writer(version)
    try:
        with transaction.atomic():
            result = validate_examples(examples, fmt=parent.format, target=target, counter=counter,
                                       split_ratio=parent.split_ratio, base_model_id=base_model or None,
                                       on_batch=on_batch)
            flush()
            _finish(version, result)
    except Exception as exc:
        log.exception("deriving a version from %s failed", parent.pk)
        Example.objects.filter(version=version).delete()
        DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersion.Status.FAILED,
                                                            error=f"{note} failed: {exc}")
        version.refresh_from_db()
    return version


def version_fix(*, user, version_id: int, fix: str) -> DatasetVersion:
    """Apply a one-click fix to a version: a NEW version is created; the old one is never changed."""
    if fix not in FIXES:
        raise ValidationFailed(f"Unknown fix `{fix}` (choose {', '.join(FIXES)}).", field="fix")
    parent = _writable_ready_version(user, version_id, "fix")

    def transformed():
        seen = set()
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            ex = _example_dict(e)
            if fix == "drop_exact_duplicates":
                if e.content_hash in seen:
                    continue
                seen.add(e.content_hash)
            elif fix == "merge_consecutive_turns":
                ex = _merge_consecutive(ex)
            elif fix == "drop_empty_turns":
                ex = _drop_empty(ex)
            elif fix == "convert_text_to_chat":
                ex = _text_to_chat(ex)
            if ex is not None:
                yield ex

    return _derive_version(user=user, parent=parent, note=FIXES[fix], examples=transformed(),
                           stage={"stage": "fixing", "fix": fix})


def version_revalidate(*, user, version_id: int, target: str, base_model: str | None = None) -> DatasetVersion:
    """The same examples validated for another target (local / openai / together) or counted with another
    base model's tokenizer: a new version (a version's report always matches its target)."""
    _check_options(target=target, format=None, base_model=base_model)
    parent = _writable_ready_version(user, version_id, "revalidat")

    def examples():
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            yield _example_dict(e)

    note = f"Validated for {target}" + (f" with {base_model}" if base_model else "")
    return _derive_version(user=user, parent=parent, note=note, examples=examples(), target=target,
                           base_model=base_model if base_model else parent.base_model_id,
                           stage={"stage": "revalidating", "target": target})


def example_edit(*, user, version_id: int, index: int, messages, tools=None, delete: bool = False) -> DatasetVersion:
    """Edit (or delete) one example, imported ones too: a NEW version with that change; the edited
    messages must pass the version's structural rules first (field errors otherwise)."""
    from apps.datasets.formats import Report
    from apps.datasets.formats.rows import RowChecker

    parent = _writable_ready_version(user, version_id, "edit")
    target = parent.examples.filter(index=index).first()
    if target is None:
        raise NotFound(f"Version {parent.number} has no example #{index + 1}.", field="index")
    new_ex = None
    if not delete:
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except ValueError as exc:
                raise ValidationFailed(f"The messages are not valid JSON: {exc}", field="messages") from None
        if not isinstance(messages, list) or not messages:
            raise ValidationFailed("Give a non-empty list of messages.", field="messages")
        rep = Report()
        checker = RowChecker(rep, target=parent.target, file=target.source_file)
        old = _example_dict(target)
        new_ex = checker.check_example({**old, "messages": messages, "tools": tools if tools is not None else old["tools"]})
        if rep.errors or new_ex is None:
            msgs = "; ".join(e["message"] for e in rep.errors) or "The example is not valid."
            raise ValidationFailed(msgs, field="messages")
        new_ex["source_line"] = target.source_line
        new_ex["meta"] = {**(old.get("meta") or {}), "edited_from": target.content_hash[:12]}

    def examples():
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            if e.index == index:
                if new_ex is not None:
                    yield new_ex
            else:
                yield _example_dict(e)

    note = f"{'Deleted' if delete else 'Edited'} example #{index + 1}"
    return _derive_version(user=user, parent=parent, note=note, examples=examples(),
                           stage={"stage": "editing", "index": index})


# --- export -------------------------------------------------------------------------------------------
def _openai_message(m: dict) -> dict:
    out = {"role": m["role"], "content": m.get("content")}
    for k in ("weight", "tool_calls", "tool_call_id", "name"):
        if m.get(k) is not None:
            out[k] = m[k]
    if out.get("tool_calls") and not out["content"]:
        out["content"] = None
    return out


def _together_messages(msgs: list[dict]) -> list[dict]:
    """Together's conversation format has system/user/assistant only: tool calls and results are folded
    into the text of the surrounding turns."""
    out: list[dict] = []
    for m in msgs:
        role, content = m["role"], m.get("content") or ""
        if m.get("tool_calls"):
            calls = "\n".join(f"<tool_call>{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}</tool_call>"
                              for c in m["tool_calls"])
            content = (content + "\n" + calls).strip()
        if role == "tool":
            role, content = "user", f"<tool_result>{content}</tool_result>"
        item = {"role": role, "content": content}
        if m.get("weight") is not None and role == "assistant":
            item["weight"] = m["weight"]
        if out and out[-1]["role"] == role and role != "system":
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + content}
        else:
            out.append(item)
    return out


def _render_text(msgs: list[dict]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
    return "\n".join(f"{names.get(m['role'], m['role'])}: {m.get('content') or ''}" for m in msgs)


def example_export_obj(ex: dict, *, fmt: str = "openai", together_format: str = "messages") -> dict:
    msgs, kind = ex["messages"], (ex.get("meta") or {}).get("kind", "chat")
    if fmt == "openai":
        obj = {"messages": [_openai_message(m) for m in msgs]}
        if ex.get("tools"):
            obj["tools"] = ex["tools"]
        return obj
    tf = together_format
    if tf == "auto":
        tf = {"text": "text", "prompt_completion": "prompt_completion", "preference": "preference"}.get(kind, "messages")
    if tf == "text":
        return {"text": msgs[0]["content"] if kind == "text" else _render_text(msgs)}
    if tf == "prompt_completion":
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prompt = msgs[0]["content"] if last == 1 and msgs[0]["role"] == "user" else _render_text(msgs[:last])
        return {"prompt": prompt, "completion": msgs[last].get("content") or ""}
    if tf == "preference":
        non_pref = (ex.get("meta") or {}).get("non_preferred_output")
        if not non_pref:
            raise ValidationFailed("This version has no preference pairs (non-preferred outputs) to export.",
                                   field="together_format")
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        return {"input": {"messages": _together_messages(msgs[:last])},
                "preferred_output": [{"role": "assistant", "content": msgs[last]["content"]}],
                "non_preferred_output": non_pref}
    return {"messages": _together_messages(msgs)}


EXPORT_FORMATS = ("openai", "together")
TOGETHER_FORMATS = ("messages", "text", "prompt_completion", "preference", "auto")


def version_export_lines(*, version: DatasetVersion, fmt: str = "openai", split: str | None = None,
                         together_format: str = "messages", category: str | None = None) -> Iterator[str]:
    """The version's examples as JSONL lines (each ends with a newline), streamed from the database."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(f"Unknown export format `{fmt}` (choose openai or together).", field="format")
    if together_format not in TOGETHER_FORMATS:
        raise ValidationFailed(f"Unknown Together format `{together_format}`.", field="together_format")
    if split not in (None, "", "train", "validation"):
        raise ValidationFailed("split must be train or validation.", field="split")
    qs = version.examples.order_by("index")
    if split:
        qs = qs.filter(split=split)
    if category is not None:
        qs = qs.filter(category=category)
    for e in qs.iterator(chunk_size=2000):
        obj = example_export_obj(_example_dict(e), fmt=fmt, together_format=together_format)
        yield orjson.dumps(obj).decode() + "\n"


def version_report_text(version: DatasetVersion) -> str:
    """A readable validation + statistics report (Markdown)."""
    v, s = version.validation or {}, version.stats or {}
    lines = [f"# {version.dataset.name} — version {version.number}", "",
             f"- status: {version.status}", f"- format: {version.format}", f"- target: {version.target}",
             f"- examples: {version.example_count}", f"- content hash: {version.content_hash}",
             f"- source: {version.source_name}", ""]
    tok = s.get("tokens") or {}
    if tok:
        lines += ["## Tokens", f"- base model: {tok.get('base_model')} (context {tok.get('context_length')})",
                  f"- total: {tok.get('total')}, mean {tok.get('mean')}, p95 {tok.get('p95')}, max {tok.get('max')}",
                  f"- per role: {json.dumps(tok.get('per_role'))}", f"- longer than context: {tok.get('too_long')}", ""]
    est = s.get("estimates") or {}
    if est:
        lines += ["## Estimates", f"- epochs: {est['epochs']}, billed tokens: {est['billed_tokens']}",
                  f"- local training: ~{est['local']['seconds']} s at {est['local']['tokens_per_second']} tokens/s "
                  f"({est['local']['source']})",
                  f"- Together: ${est['together']['usd']} (${est['together']['price_per_mtok']}/M tokens)",
                  f"- OpenAI: ${est['openai']['usd']} (${est['openai']['price_per_mtok']}/M tokens)", ""]
    if s.get("categories"):
        lines += ["## Categories"] + [f"- {k}: {n}" for k, n in s["categories"].items()] + [""]
    if s.get("duplicates"):
        lines += ["## Duplicates", f"- {json.dumps(s['duplicates'])}", ""]
    for sev in ("errors", "warnings"):
        items = v.get(sev) or []
        lines += [f"## {sev.title()} ({v.get(sev[:-1] + '_total', len(items))})"]
        for i in items:
            where = f"{i.get('file') or ''}:{i['line']}" if i.get("line") else (i.get("file") or "file")
            lines.append(f"- [{i['code']}] {where}: {i['message']}")
        lines.append("")
    return "\n".join(lines)


EXPORT_TMP_DIR = "tmp/exports"  # under ARTIFACT_ROOT


def version_export_zip_file(*, version: DatasetVersion, fmt: str = "openai",
                            together_format: str = "messages") -> Path:
    """One JSONL per category + stats.json + report.md, zipped into a temporary file under
    ARTIFACT_ROOT/tmp/exports (streamed from the database row by row, never held in memory). The caller
    owns the file and deletes it once it is served."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(f"Unknown export format `{fmt}` (choose openai or together).", field="format")
    if together_format not in TOGETHER_FORMATS:
        raise ValidationFailed(f"Unknown Together format `{together_format}`.", field="together_format")
    tmp_dir = Path(settings.ARTIFACT_ROOT) / EXPORT_TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"v{version.pk}-", suffix=".zip", dir=tmp_dir)
    path = Path(name)
    cats = sorted(version.examples.order_by().values_list("category", flat=True).distinct())
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            used: set[str] = set()
            for cat in cats:
                stem = _safe_filename(cat or "uncategorized")
                entry, n = f"{stem}.jsonl", 1
                while entry in used:  # two categories that make the same safe file name
                    n += 1
                    entry = f"{stem}-{n}.jsonl"
                used.add(entry)
                with zf.open(entry, "w", force_zip64=True) as out:
                    for line in version_export_lines(version=version, fmt=fmt, category=cat,
                                                     together_format=together_format):
                        out.write(line.encode())
            zf.writestr("stats.json", json.dumps(version.stats, indent=2))
            zf.writestr("report.md", version_report_text(version))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
