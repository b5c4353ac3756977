"""Submitting a Together.ai run: export the pinned dataset version's train split to JSONL, upload it
(once: a crash after the upload reuses the file), create the fine-tuning job and store its id.

Contract: `submit(run, client)` does all of it and moves the run's job to the phase Together reports (if
the run was cancelled meanwhile, the new remote job is cancelled at once); anything that stops the
submission raises `SubmitFailed` with a message fit for the run (the caller fails the run with it).
`export_training_file(run)` writes `<ARTIFACT_ROOT>/remote/<run id>/train.jsonl` from the train split
only (the validation split is held out) and returns (path, line count): Together's messages format, or for a
DPO run its preference format (`input`, `preferred_output`, `non_preferred_output`) with the train split's
preference pairs only (a version without pairs fails the submission with a clear message)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.jobs import services as job_services
from apps.training.backends.together.client import TogetherClient, TogetherError
from apps.training.backends.together.mapping import output_name, together_job_request
from apps.training.backends.together.state import PHASE, Status, job_of, save_fields
from apps.training.models import TrainingRun

log = logging.getLogger(__name__)


class SubmitFailed(Exception):
    pass


def export_training_file(run: TrainingRun) -> tuple[Path, int]:
    folder = Path(settings.ARTIFACT_ROOT) / "remote" / str(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    if run.method == TrainingRun.Method.DPO:
        return _write_lines(folder, _preference_lines(run.dataset_version),
                            f"Dataset version {run.dataset_version} has no preference pairs (train examples with a "
                            "non-preferred output) to send to Together.ai for DPO: import rows with `input`, "
                            "`preferred_output` and `non_preferred_output`.")
    try:
        from apps.datasets.services import version_export_lines
    except ImportError:  # the datasets service is not there (yet): export the normalized examples ourselves
        log.warning("apps.datasets.services.version_export_lines is missing; using the Together backend's own export")
        lines = _fallback_export_lines(run.dataset_version)
    else:
        # the train split only: the validation split is held out (it used to be sent, and trained on)
        lines = version_export_lines(version=run.dataset_version, fmt="together", together_format="messages",
                                     split="train")
    return _write_lines(folder, lines,
                        f"Dataset version {run.dataset_version} has no training examples to send to Together.ai.")


def _write_lines(folder: Path, lines, empty_message: str) -> tuple[Path, int]:
    path = folder / "train.jsonl"
    tmp = folder / "train.jsonl.tmp"
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for line in lines:
            if isinstance(line, bytes):
                line = line.decode("utf-8")
            if not isinstance(line, str):
                line = json.dumps(line, ensure_ascii=False)
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fh.write(line + "\n")
            count += 1
    if count == 0:
        tmp.unlink(missing_ok=True)
        raise SubmitFailed(empty_message)
    tmp.replace(path)
    return path, count


def _preference_lines(version):
    """The train split's preference pairs (the examples local DPO trains on: meta kind "preference" with a
    non-preferred output) in Together's preference format; other examples are left out."""
    from apps.datasets.models import Example
    from apps.datasets.services import example_export_obj

    qs = (Example.objects.filter(version=version, split=Example.Split.TRAIN, meta__kind="preference",
                                 meta__has_key="non_preferred_output")
          .order_by("index").only("messages", "tools", "meta", "index"))
    for ex in qs.iterator(chunk_size=2000):
        if not (ex.meta or {}).get("non_preferred_output"):
            continue
        obj = example_export_obj({"messages": ex.messages, "tools": ex.tools, "meta": dict(ex.meta or {})},
                                 fmt="together", together_format="preference")
        yield json.dumps(obj, ensure_ascii=False)


def _fallback_export_lines(version):
    from apps.datasets.models import Example

    keep = ("role", "content", "weight", "tool_calls", "tool_call_id", "name")
    for ex in Example.objects.filter(version=version, split=Example.Split.TRAIN).order_by("index").iterator():
        messages = [{k: m[k] for k in keep if k in m and m[k] is not None} for m in ex.messages or []]
        row: dict[str, Any] = {"messages": messages}
        if ex.tools:
            row["tools"] = ex.tools
        yield json.dumps(row, ensure_ascii=False)


def submit(run: TrainingRun, client: TogetherClient) -> None:
    body = together_job_request(hyperparameters=run.hyperparameters, method=run.method)  # before any upload
    summary = dict(run.summary or {})
    file_id = summary.get("remote_file_id")
    if not file_id:  # a crash after the upload reuses the uploaded file
        path, lines = export_training_file(run)
        try:
            uploaded = client.upload_file(path)
        except TogetherError as exc:
            raise SubmitFailed(f"Uploading the training file to Together.ai failed: {exc.message}") from exc
        file_id = uploaded.get("id")
        if not file_id:
            raise SubmitFailed(f"Together.ai accepted the upload but returned no file id: {uploaded!r:.200}")
        summary.update(remote_file_id=file_id, remote_file_lines=lines,
                       remote_file=str(path.relative_to(settings.ARTIFACT_ROOT)))
        save_fields(run.pk, summary=summary)
    body["training_file"] = file_id
    try:
        job = client.create_fine_tune(body)
    except TogetherError as exc:
        raise SubmitFailed(f"Creating the fine-tuning job on Together.ai failed: {exc.message}") from exc
    job_id = job.get("id") or job.get("job_id")
    if not job_id:
        raise SubmitFailed(f"Together.ai returned no job id: {job!r:.200}")
    remote_status = str(job.get("status") or "pending")
    summary.update(remote_status=remote_status, remote_model=body["model"], remote_poll_failures=0,
                   remote_output_name=output_name(job) or "")
    save_fields(run.pk, remote_job_id=job_id, summary=summary)
    job_services.job_set_phase(job_id=job_of(run.pk), phase=PHASE.get(remote_status, "queued"))
    run.refresh_from_db(fields=["status", "cancel_requested"])
    if run.cancel_requested or run.status == Status.CANCELLED:  # cancelled while we were submitting
        try:
            client.cancel_fine_tune(job_id)
        except TogetherError:
            log.warning("Run %s: cancelling Together job %s failed; will retry at the next poll", run.pk, job_id)
