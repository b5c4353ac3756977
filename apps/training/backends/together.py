"""Remote fine-tuning on Together.ai through its HTTP API (httpx).

One run moves through short steps, each one a Dramatiq message (`workers.together.together_run`), never a
sleeping loop:

    queued, no remote job        export the pinned dataset version to JSONL, POST /files/upload,
                                 POST /fine-tunes, store remote_job_id          -> poll again later
    queued/running + remote job  GET /fine-tunes/{id} and /fine-tunes/{id}/events, map the state, record the
                                 events as metric points, send a pending cancel -> poll again later, or finish
    completed                    register a ModelVersion(kind="remote", remote_model_id=<model_output_name>)

Endpoints and field names follow Together's API reference (docs.together.ai/reference: "upload file",
"create fine-tuning job") and its Python SDK (together-python: resources/finetune.py, types/finetune.py):
the job body carries `training_type` = {"type": "Lora", lora_r, lora_alpha, lora_dropout,
lora_trainable_modules} or {"type": "Full"}; a job reports `status` (pending, queued, running, compressing,
uploading, cancel_requested, cancelled, error, user_error, completed), `model_output_name`, `steps_completed`,
`total_steps`, `epochs_completed`, `queue_depth`, `token_count`, `total_price`.

Hyperparameters read from TrainingRun.hyperparameters (aliases in brackets):
    model [together_model, remote_model] (required), n_epochs [epochs, num_train_epochs] (default 1),
    learning_rate (default 1e-5), batch_size [per_device_train_batch_size] (int or "max", default "max"),
    suffix (<= 40 chars), lora (default: method == "lora"), lora_r (8), lora_alpha (2*r), lora_dropout (0),
    lora_trainable_modules [lora_target_modules, target_modules] (str or list, default "all-linear"),
    optional warmup_ratio, weight_decay, max_grad_norm, n_checkpoints.

Failure policy: a failed upload or job creation fails the run at once (the client has already retried
429/5xx/network errors with bounded backoff); a failed status poll is retried at the next poll and fails the
run after TOGETHER_MAX_POLL_FAILURES in a row; authentication errors fail at once. Whatever happens, the run
ends in succeeded/failed/cancelled with a message a person can act on: nothing is left in `running`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.core.realtime import broadcast_on_commit, run_group
from apps.training.models import MetricPoint, TrainingRun

log = logging.getLogger(__name__)

Status = TrainingRun.Status

# Together job status -> the run's status.
REMOTE_STATUS_MAP: dict[str, str] = {
    "pending": Status.QUEUED,
    "queued": Status.QUEUED,
    "running": Status.RUNNING,
    "compressing": Status.RUNNING,
    "uploading": Status.RUNNING,
    "cancel_requested": Status.RUNNING,
    "completed": Status.SUCCEEDED,
    "error": Status.FAILED,
    "user_error": Status.FAILED,
    "cancelled": Status.CANCELLED,
}
_MAX_BACKOFF_S = 8.0
_EVENT_ERROR_TYPES = {"JOB_ERROR", "JOB_USER_ERROR"}


# --------------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------------
class TogetherError(Exception):
    """A call to Together failed. `message` is fit to show on the run as it is."""

    def __init__(self, message: str, *, status_code: int | None = None, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.transient = transient


class TogetherClient:
    """A small client for the fine-tuning part of Together's API.

    Bearer auth from settings.TOGETHER_API_KEY, base URL settings.TOGETHER_BASE_URL, a per-request timeout,
    and retries with exponential backoff (bounded) on 429, 5xx and network errors. Job creation is not
    idempotent, so it is retried only when the request surely did not create a job (connect errors, 429, 503).
    """

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, timeout_s: float | None = None,
                 max_retries: int | None = None, backoff_s: float | None = None,
                 transport: httpx.BaseTransport | None = None):
        api_key = api_key if api_key is not None else settings.TOGETHER_API_KEY
        if not api_key:
            raise TogetherError(_NOT_CONFIGURED)
        self.base_url = (base_url or settings.TOGETHER_BASE_URL).rstrip("/")
        self.timeout_s = float(timeout_s if timeout_s is not None else settings.TOGETHER_TIMEOUT_S)
        self.max_retries = int(max_retries if max_retries is not None else settings.TOGETHER_MAX_RETRIES)
        self.backoff_s = float(backoff_s if backoff_s is not None
                               else getattr(settings, "TOGETHER_RETRY_BACKOFF_S", 0.5))
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "training-hub",
                     "Accept": "application/json"},
            timeout=httpx.Timeout(self.timeout_s),
            transport=transport,
        )

    def __enter__(self) -> TogetherClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints ---------------------------------------------------------------------------------
    def upload_file(self, path: Path, *, purpose: str = "fine-tune") -> dict:
        """POST /files/upload (multipart: purpose, file_name, file_type, file) -> {"id": "file-...", ...}."""
        path = Path(path)

        def send() -> httpx.Response:
            with path.open("rb") as fh:  # reopened per attempt, so a retry sends the whole file again
                return self._http.post(
                    "files/upload",
                    data={"purpose": purpose, "file_name": path.name, "file_type": "jsonl"},
                    files={"file": (path.name, fh, "application/octet-stream")},
                )

        return self._call("POST", "/files/upload", send, idempotent=True)

    def create_fine_tune(self, body: dict) -> dict:
        return self._call("POST", "/fine-tunes", lambda: self._http.post("fine-tunes", json=body), idempotent=False)

    def get_fine_tune(self, job_id: str) -> dict:
        return self._call("GET", f"/fine-tunes/{job_id}", lambda: self._http.get(f"fine-tunes/{job_id}"))

    def list_events(self, job_id: str) -> list[dict]:
        body = self._call("GET", f"/fine-tunes/{job_id}/events",
                          lambda: self._http.get(f"fine-tunes/{job_id}/events"))
        data = body.get("data") if isinstance(body, dict) else body
        return [e for e in (data or []) if isinstance(e, dict)]

    def cancel_fine_tune(self, job_id: str) -> dict:
        return self._call("POST", f"/fine-tunes/{job_id}/cancel",
                          lambda: self._http.post(f"fine-tunes/{job_id}/cancel"), idempotent=True)

    # -- plumbing ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, send: Callable[[], httpx.Response], *, idempotent: bool = True) -> dict:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = send()
            except httpx.TimeoutException:
                error = TogetherError(f"Together API unreachable at {self.base_url}: timeout after {self.timeout_s:g}s "
                                      f"({method} {path})", transient=True)
                retryable = idempotent
            except httpx.ConnectError as exc:
                error = TogetherError(f"Together API unreachable at {self.base_url}: cannot connect ({_short(exc)})",
                                      transient=True)
                retryable = True  # nothing reached the server
            except httpx.TransportError as exc:
                error = TogetherError(f"Together API unreachable at {self.base_url}: {type(exc).__name__}: "
                                      f"{_short(exc)} ({method} {path})", transient=True)
                retryable = idempotent
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise TogetherError(f"Together API returned a non-JSON answer to {method} {path} "
                                            f"(HTTP {response.status_code}): {response.text[:200]!r}") from None
                code = response.status_code
                error = TogetherError(f"Together API error {code} on {method} {path}: {_error_detail(response)}",
                                      status_code=code, transient=code == 429 or code >= 500)
                retryable = code in (429, 503) or (idempotent and code >= 500)
                retry_after = _retry_after(response)
            if not retryable or attempt >= self.max_retries:
                if attempt:
                    error.message += f" (after {attempt + 1} attempts)"
                    error.args = (error.message,)
                raise error
            delay = min(_MAX_BACKOFF_S, self.backoff_s * (2 ** attempt))
            if retry_after is not None:
                delay = min(_MAX_BACKOFF_S, max(delay, retry_after))
            log.info("Together %s %s failed (%s); retry %d/%d in %.2fs", method, path, error.message,
                     attempt + 1, self.max_retries, delay)
            time.sleep(delay)
            attempt += 1


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return json.dumps(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Checks other services call before a run exists
# --------------------------------------------------------------------------------------------------
_NOT_CONFIGURED = ("Remote training on Together.ai is not configured: set TOGETHER_API_KEY in the server's "
                   "environment (and TOGETHER_BASE_URL if you do not use api.together.xyz).")


def together_check_configured() -> None:
    """Raise ValidationFailed(field="backend") when no Together API key is configured."""
    if not settings.TOGETHER_API_KEY:
        raise ValidationFailed(_NOT_CONFIGURED, field="backend")


def _first(hp: dict, *names: str, default: Any = None) -> Any:
    for name in names:
        if hp.get(name) not in (None, ""):
            return hp[name]
    return default


def _key(hp: dict, *names: str) -> str:
    """The name under which a value was given (for error fields), else the first (Together's) name."""
    return next((name for name in names if hp.get(name) not in (None, "")), names[0])


def _whole(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and value == int(value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def together_job_request(*, hyperparameters: dict, method: str = TrainingRun.Method.LORA,
                         training_file: str = "", field_prefix: str = "") -> dict:
    """Validate a run's hyperparameters for Together and build the POST /fine-tunes body.

    Raises ValidationFailed listing every bad field (field = field_prefix + hyperparameter name, e.g. pass
    field_prefix="hyperparameters." from run_create)."""
    hp = dict(hyperparameters or {})
    errors: list[dict] = []

    def bad(field: str, message: str) -> None:
        errors.append({"field": field if field == "method" else field_prefix + field, "message": message})

    if method == TrainingRun.Method.SCRATCH:
        bad("method", "Training from scratch is not available on Together.ai; choose LoRA or full fine-tuning.")
    model = _first(hp, "model", "together_model", "remote_model")
    if not isinstance(model, str) or not model.strip():
        bad("model", "Name the Together model to fine-tune, e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference.")
        model = ""
    epochs = _first(hp, "n_epochs", "epochs", "num_train_epochs", default=1)
    if not _whole(epochs) or not 1 <= epochs <= 100:
        bad(_key(hp, "n_epochs", "epochs", "num_train_epochs"), f"Epochs must be a whole number from 1 to 100 (got {epochs!r}).")
    lr = _number(_first(hp, "learning_rate", default=1e-5))
    if lr is None or not 0 < lr <= 1:
        bad("learning_rate", f"Learning rate must be a number above 0 and at most 1 "
                             f"(got {_first(hp, 'learning_rate')!r}).")
    batch = _first(hp, "batch_size", "per_device_train_batch_size", default="max")
    if batch != "max" and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        bad(_key(hp, "batch_size", "per_device_train_batch_size"), f"Batch size must be a whole number of at least 1, or \"max\" (got {batch!r}).")
    suffix = hp.get("suffix")
    if suffix not in (None, ""):
        if not isinstance(suffix, str) or len(suffix) > 40 or not re.fullmatch(r"[A-Za-z0-9._-]+", suffix):
            bad("suffix", "Suffix: up to 40 letters, digits, dots, dashes or underscores.")

    lora = hp.get("lora")
    lora = (method == TrainingRun.Method.LORA) if lora is None else bool(lora)
    training_type: dict[str, Any] = {"type": "Full"}
    if lora:
        r = _first(hp, "lora_r", default=8)
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            bad("lora_r", f"LoRA rank must be a whole number of at least 1 (got {r!r}).")
            r = 8
        alpha = _number(_first(hp, "lora_alpha", default=2 * r))
        if alpha is None or alpha <= 0:
            bad("lora_alpha", "LoRA alpha must be a number above 0.")
        dropout = _number(_first(hp, "lora_dropout", default=0.0))
        if dropout is None or not 0 <= dropout < 1:
            bad("lora_dropout", "LoRA dropout must be in [0, 1).")
        modules = _first(hp, "lora_trainable_modules", "lora_target_modules", "target_modules", default="all-linear")
        if isinstance(modules, (list, tuple)):
            modules = ",".join(str(m) for m in modules)
        if not isinstance(modules, str) or not modules.strip():
            bad("lora_trainable_modules", "Name the modules to adapt (e.g. all-linear, or q_proj,v_proj).")
        training_type = {"type": "Lora", "lora_r": r, "lora_alpha": int(alpha) if alpha and alpha == int(alpha) else alpha,
                         "lora_dropout": dropout, "lora_trainable_modules": modules}

    body: dict[str, Any] = {
        "training_file": training_file,
        "model": model,
        "n_epochs": int(epochs) if _whole(epochs) else 1,
        "learning_rate": lr,
        "batch_size": batch,
        "training_type": training_type,
        "training_method": {"method": "sft"},
    }
    if suffix:
        body["suffix"] = suffix
    for name, low, high in (("warmup_ratio", 0.0, 1.0), ("weight_decay", 0.0, None), ("max_grad_norm", 0.0, None)):
        if hp.get(name) is None:
            continue
        value = _number(hp[name])
        if value is None or value < low or (high is not None and value > high):
            bad(name, f"{name} must be a number {'in [0, 1]' if high else 'of at least 0'}.")
        else:
            body[name] = value
    if hp.get("n_checkpoints") is not None:
        if isinstance(hp["n_checkpoints"], int) and hp["n_checkpoints"] >= 1:
            body["n_checkpoints"] = hp["n_checkpoints"]
        else:
            bad("n_checkpoints", "n_checkpoints must be a whole number of at least 1.")
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else
                               "Some hyperparameters cannot be sent to Together.ai.", errors=errors)
    return body


def estimate_cost(*, tokens: int, epochs: int, model: str) -> dict:
    """Estimated price of a Together fine-tune: tokens x epochs x TOGETHER_PRICE_PER_MTOK / 1e6 (USD).

    Together bills every token processed (training tokens per epoch, plus validation tokens per eval); the
    final figure is on the job once Together has tokenized the file."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ValidationFailed("Token count must be a whole number of at least 0.", field="tokens")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValidationFailed("Epochs must be a whole number of at least 1.", field="n_epochs")
    price = float(settings.TOGETHER_PRICE_PER_MTOK)
    billed = tokens * epochs
    return {
        "backend": "together",
        "model": model,
        "tokens": tokens,
        "epochs": epochs,
        "billed_tokens": billed,
        "price_per_mtok_usd": price,
        "cost_usd": round(billed * price / 1_000_000, 4),
        "currency": "USD",
        "basis": f"{billed:,} tokens x ${price:g} per million (TOGETHER_PRICE_PER_MTOK); Together's invoice may differ.",
    }


# --------------------------------------------------------------------------------------------------
# Run lifecycle
# --------------------------------------------------------------------------------------------------
class _SubmitFailed(Exception):
    pass


def _save_fields(run_id: int, **fields) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def _finish(run_id: int, *, status: str, error: str = "", summary: dict | None = None, **fields) -> bool:
    """Move an active run to a final status (no-op if it already finished). True if this call finished it."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in TrainingRun.ACTIVE:
            return False
        run.status = status
        run.error = error
        run.finished_at = timezone.now()
        if summary:
            run.summary = {**(run.summary or {}), **summary}
        for name, value in fields.items():
            setattr(run, name, value)
        run.save(update_fields=sorted({"status", "error", "finished_at", "summary", *fields}))
        broadcast_on_commit(run_group(run_id), "status",
                            {"run_id": run_id, "status": status, "error": error, "summary": run.summary})
    return True


def _fail(run_id: int, message: str) -> None:
    log.warning("Together run %s failed: %s", run_id, message)
    _finish(run_id, status=Status.FAILED, error=message)


def together_run_fail(*, run_id: int, error: str) -> bool:
    """Fail an active Together run with `error` (used by the actor when a step is interrupted)."""
    return _finish(run_id, status=Status.FAILED, error=error)


def together_run_step(*, run_id: int) -> float | None:
    """Advance one Together run by one step (submit, or one poll).

    Returns the seconds to wait before the next step, or None when the run needs nothing more."""
    run = TrainingRun.objects.select_related("dataset_version", "base_model").filter(pk=run_id).first()
    if run is None:
        log.warning("Together run %s does not exist; nothing to do", run_id)
        return None
    if run.backend != TrainingRun.Backend.TOGETHER:
        log.error("Run %s has backend %r, not together; the Together worker leaves it alone", run_id, run.backend)
        return None
    if run.status not in TrainingRun.ACTIVE:
        return None
    if not settings.TOGETHER_API_KEY:
        _fail(run_id, _NOT_CONFIGURED)
        return None
    if run.cancel_requested and not run.remote_job_id:
        _finish(run_id, status=Status.CANCELLED)
        return None
    interval = float(settings.TOGETHER_POLL_INTERVAL_S)
    try:
        with TogetherClient() as client:
            if not run.remote_job_id:
                if not _claim_submission(run_id):
                    log.info("Run %s is being submitted by another worker; polling later", run_id)
                    return max(interval, 1.0)
                _submit(run, client)
                return interval
            return _poll(run, client, interval)
    except _SubmitFailed as exc:
        _fail(run_id, str(exc))
    except ValidationFailed as exc:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors) or exc.message
        _fail(run_id, f"Cannot run this on Together.ai: {detail}")
    except TogetherError as exc:
        return _poll_failed(run_id, exc, interval)
    except Exception as exc:  # never leave a run in running because of a bug or an odd answer
        log.exception("Together run %s: unexpected error", run_id)
        _fail(run_id, f"Unexpected error while talking to Together.ai: {type(exc).__name__}: {exc}")
    return None


def _poll_failed(run_id: int, exc: TogetherError, interval: float) -> float | None:
    run = TrainingRun.objects.get(pk=run_id)
    failures = int((run.summary or {}).get("remote_poll_failures", 0)) + 1
    limit = int(settings.TOGETHER_MAX_POLL_FAILURES)
    if not exc.transient or exc.status_code in (401, 403, 404) or failures >= limit:
        tail = "" if not exc.transient else f" ({failures} status checks in a row failed)"
        _fail(run_id, f"{exc.message}{tail}. The Together job {run.remote_job_id} may still be running: check it at "
                      f"api.together.ai and cancel it there if needed.")
        return None
    _save_fields(run_id, summary={**(run.summary or {}), "remote_poll_failures": failures,
                                  "remote_last_error": exc.message}, heartbeat_at=timezone.now())
    broadcast_on_commit(run_group(run_id), "progress", {"run_id": run_id, "status": run.status,
                                                        "warning": exc.message, "poll_failures": failures})
    return interval * min(2 ** (failures - 1), 8) if interval else 0.0


# -- submit ------------------------------------------------------------------------------------------
_SUBMIT_CLAIM_S = 35 * 60  # longer than the actor's time limit: an older claim belongs to a dead worker


def _claim_submission(run_id: int) -> bool:
    """Only one worker submits a run, even if its message is delivered twice (heartbeat_at is the claim)."""
    cutoff = timezone.now() - timedelta(seconds=_SUBMIT_CLAIM_S)
    return bool(TrainingRun.objects.filter(pk=run_id, remote_job_id="", status__in=TrainingRun.ACTIVE)
                .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
                .update(heartbeat_at=timezone.now()))


def _export_training_file(run: TrainingRun) -> tuple[Path, int]:
    folder = Path(settings.ARTIFACT_ROOT) / "remote" / str(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.jsonl"
    tmp = folder / "train.jsonl.tmp"
    try:
        from apps.datasets.services import version_export_lines
    except ImportError:  # the datasets service is not there (yet): export the normalized examples ourselves
        log.warning("apps.datasets.services.version_export_lines is missing; using the Together backend's own export")
        lines = _fallback_export_lines(run.dataset_version)
    else:
        lines = version_export_lines(version=run.dataset_version, fmt="together", together_format="messages")
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
        raise _SubmitFailed(f"Dataset version {run.dataset_version} has no training examples to send to Together.ai.")
    tmp.replace(path)
    return path, count


def _fallback_export_lines(version):
    from apps.datasets.models import Example

    keep = ("role", "content", "weight", "tool_calls", "tool_call_id", "name")
    for ex in Example.objects.filter(version=version, split=Example.Split.TRAIN).order_by("index").iterator():
        messages = [{k: m[k] for k in keep if k in m and m[k] is not None} for m in ex.messages or []]
        row: dict[str, Any] = {"messages": messages}
        if ex.tools:
            row["tools"] = ex.tools
        yield json.dumps(row, ensure_ascii=False)


def _submit(run: TrainingRun, client: TogetherClient) -> None:
    body = together_job_request(hyperparameters=run.hyperparameters, method=run.method)  # before any upload
    summary = dict(run.summary or {})
    file_id = summary.get("remote_file_id")
    if not file_id:  # a crash after the upload reuses the uploaded file
        path, lines = _export_training_file(run)
        try:
            uploaded = client.upload_file(path)
        except TogetherError as exc:
            raise _SubmitFailed(f"Uploading the training file to Together.ai failed: {exc.message}") from exc
        file_id = uploaded.get("id")
        if not file_id:
            raise _SubmitFailed(f"Together.ai accepted the upload but returned no file id: {uploaded!r:.200}")
        summary.update(remote_file_id=file_id, remote_file_lines=lines,
                       remote_file=str(path.relative_to(settings.ARTIFACT_ROOT)))
        _save_fields(run.pk, summary=summary)
    body["training_file"] = file_id
    try:
        job = client.create_fine_tune(body)
    except TogetherError as exc:
        raise _SubmitFailed(f"Creating the fine-tuning job on Together.ai failed: {exc.message}") from exc
    job_id = job.get("id") or job.get("job_id")
    if not job_id:
        raise _SubmitFailed(f"Together.ai returned no job id: {job!r:.200}")
    remote_status = str(job.get("status") or "pending")
    summary.update(remote_status=remote_status, remote_model=body["model"], remote_poll_failures=0,
                   remote_output_name=_output_name(job) or "")
    _save_fields(run.pk, remote_job_id=job_id, summary=summary, heartbeat_at=timezone.now())
    broadcast_on_commit(run_group(run.pk), "status", {"run_id": run.pk, "status": run.status,
                                                      "remote_job_id": job_id, "remote_status": remote_status})
    run.refresh_from_db(fields=["status", "cancel_requested"])
    if run.cancel_requested or run.status == Status.CANCELLED:  # cancelled while we were submitting
        try:
            client.cancel_fine_tune(job_id)
        except TogetherError:
            log.warning("Run %s: cancelling Together job %s failed; will retry at the next poll", run.pk, job_id)


# -- poll --------------------------------------------------------------------------------------------
def _output_name(job: dict) -> str | None:
    return job.get("model_output_name") or job.get("output_name") or None


def _event_key(event: dict) -> str:
    if event.get("hash"):
        return str(event["hash"])
    raw = f"{event.get('created_at')}|{event.get('type')}|{event.get('message')}"
    return hashlib.sha1(raw.encode()).hexdigest()


_STEP_RE = re.compile(r"\bstep\s*[:=]?\s*(\d+)", re.I)
_METRIC_RES = {
    "loss": re.compile(r"(?<![a-z_])(?:train(?:ing)?[ _])?loss\s*[:=]?\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", re.I),
    "eval_loss": re.compile(r"(?:eval(?:uation)?|validation|val)[ _]loss\s*[:=]?\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)",
                            re.I),
    "learning_rate": re.compile(r"(?:learning[ _]rate|\blr)\s*[:=]?\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", re.I),
}


def parse_event_metrics(message: str) -> tuple[int | None, dict[str, float]]:
    """Best effort: Together's event messages are prose ("Epoch completed, at step 24"); pull a step and any
    loss / eval loss / learning rate written in them."""
    step_match = _STEP_RE.search(message or "")
    metrics: dict[str, float] = {}
    for name, regex in _METRIC_RES.items():
        match = regex.search(message or "")
        if match:
            metrics[name] = float(match.group(1))
    if "eval_loss" in metrics and "loss" in metrics and metrics["loss"] == metrics["eval_loss"]:
        # "validation loss 1.2" also matches the plain loss pattern
        plain = re.sub(_METRIC_RES["eval_loss"], "", message)
        if not _METRIC_RES["loss"].search(plain):
            del metrics["loss"]
    return (int(step_match.group(1)) if step_match else None), metrics


def _record_events(run: TrainingRun, events: list[dict], fallback_step: int) -> tuple[list[dict], dict]:
    seen = {v.get("key") for v in MetricPoint.objects.filter(run=run, kind="remote").values_list("values", flat=True)
            if isinstance(v, dict)}
    new_events, points, latest = [], [], {}
    for event in events:
        key = _event_key(event)
        if key in seen:
            continue
        seen.add(key)
        message = str(event.get("message") or "")
        step, metrics = parse_event_metrics(message)
        step = step if step is not None else fallback_step
        values = {"key": key, "message": message, "type": event.get("type") or "", "level": event.get("level") or "",
                  "created_at": event.get("created_at") or ""}
        for extra in ("token_count", "param_count", "wandb_url"):
            if event.get(extra) is not None:
                values[extra] = event[extra]
        points.append(MetricPoint(run=run, step=step, kind="remote", values=values))
        train = {k: v for k, v in metrics.items() if k != "eval_loss"}
        if train:
            points.append(MetricPoint(run=run, step=step, kind="train", values=train))
            latest.update(train)
        if "eval_loss" in metrics:
            points.append(MetricPoint(run=run, step=step, kind="eval", values={"eval_loss": metrics["eval_loss"]}))
            latest["eval_loss"] = metrics["eval_loss"]
        new_events.append(values)
    MetricPoint.objects.bulk_create(points)
    return [{"step": p.step, "kind": p.kind, **p.values} for p in points], latest


def _remote_error_message(job: dict, events: list[dict]) -> str:
    for key in ("error", "message", "status_message"):
        value = job.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if value:
            return str(value)
    for event in reversed(events):
        if event.get("type") in _EVENT_ERROR_TYPES or str(event.get("level") or "").lower() == "error":
            if event.get("message"):
                return str(event["message"])
    return "no error message was given"


def _poll(run: TrainingRun, client: TogetherClient, interval: float) -> float | None:
    job_id = run.remote_job_id
    job = client.get_fine_tune(job_id)
    events = client.list_events(job_id)
    remote_status = str(job.get("status") or "").lower()
    mapped = REMOTE_STATUS_MAP.get(remote_status)
    if mapped is None:
        raise TogetherError(f"Together job {job_id} reports an unknown status {job.get('status')!r}")

    steps_done = job.get("steps_completed")
    total = job.get("total_steps")
    new_points, latest = _record_events(run, events, steps_done if isinstance(steps_done, int) else 0)
    summary = dict(run.summary or {})
    summary.update(latest)
    summary.update(remote_status=remote_status, remote_poll_failures=0, remote_last_error="")
    for key in ("epochs_completed", "queue_depth", "token_count", "param_count", "total_price", "wandb_url"):
        if job.get(key) is not None:
            summary[f"remote_{key}"] = job[key]
    if _output_name(job):
        summary["remote_output_name"] = _output_name(job)
    try:
        if job.get("token_count") and job.get("n_epochs"):
            summary["remote_cost_estimate"] = estimate_cost(
                tokens=int(job["token_count"]), epochs=int(job["n_epochs"]), model=str(job.get("model") or ""))["cost_usd"]
    except (TypeError, ValueError, ValidationFailed):
        pass  # cosmetic: an odd token count must not fail the run

    fields: dict[str, Any] = {"summary": summary, "heartbeat_at": timezone.now()}
    if isinstance(steps_done, int):
        fields["current_step"] = max(0, steps_done)
    if isinstance(total, int) and total > 0:
        fields["total_steps"] = total

    if mapped == Status.SUCCEEDED:
        _complete(run, job, fields)
        return None
    if mapped == Status.FAILED:
        message = _remote_error_message(job, events)
        kind = "a problem with the request or data" if remote_status == "user_error" else "an error"
        _finish(run.pk, status=Status.FAILED, error=f"Together job {job_id} ended with {kind}: {message}", **fields)
        return None
    if mapped == Status.CANCELLED:
        _finish(run.pk, status=Status.CANCELLED, **fields)
        return None

    # still active: queued or running at Together
    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if current.status not in TrainingRun.ACTIVE:
            return None
        for name, value in fields.items():
            setattr(current, name, value)
        update = set(fields)
        if mapped == Status.RUNNING and current.status == Status.QUEUED:
            current.status = Status.RUNNING
            current.started_at = current.started_at or timezone.now()
            update |= {"status", "started_at"}
            broadcast_on_commit(run_group(run.pk), "status", {"run_id": run.pk, "status": Status.RUNNING})
        current.save(update_fields=sorted(update))
        # same shape as the local worker's progress event (apps.training.services.run_progress_record)
        broadcast_on_commit(run_group(run.pk), "progress", {
            "run_id": run.pk, "status": current.status, "current_step": current.current_step,
            "total_steps": current.total_steps, "remote_status": remote_status, "summary": summary,
            "points": new_points,
        })
        cancel_pending = current.cancel_requested
    if cancel_pending and remote_status not in ("cancel_requested", "cancelled"):
        try:
            client.cancel_fine_tune(job_id)
        except TogetherError as exc:
            log.warning("Run %s: cancelling Together job %s failed (%s); will retry", run.pk, job_id, exc.message)
    return interval


def _complete(run: TrainingRun, job: dict, fields: dict) -> None:
    output = _output_name(job)
    if not output:
        _finish(run.pk, status=Status.FAILED, error=f"Together job {run.remote_job_id} completed but reported no "
                                                    f"output model name, so it cannot be registered.", **fields)
        return
    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_register

    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if current.status not in TrainingRun.ACTIVE:
            return
        if fields.get("total_steps"):
            fields["current_step"] = fields["total_steps"]
        if not ModelVersion.objects.filter(run=current).exists():
            version = model_version_register(
                name=current.name or f"together-run-{current.pk}", kind=ModelVersion.Kind.REMOTE,
                base_model=current.base_model, run=current, dataset_version=current.dataset_version,
                remote_model_id=output, hyperparameters=current.hyperparameters,
                metrics={k: v for k, v in fields["summary"].items() if k in ("loss", "eval_loss")},
                final_loss=fields["summary"].get("loss"), created_by=current.owner,
            )
            fields["summary"]["model_version_id"] = version.pk
        _finish(current.pk, status=Status.SUCCEEDED, **fields)


def together_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Ask Together to cancel the run's job. The run becomes `cancelled` once Together confirms (at once if the
    job was never submitted); until then it keeps cancel_requested=True and the next poll finishes it (and
    re-sends the cancel if this request did not get through)."""
    if run.status not in TrainingRun.ACTIVE:
        return run
    _save_fields(run.pk, cancel_requested=True)
    run.refresh_from_db()
    if not run.remote_job_id:
        _finish(run.pk, status=Status.CANCELLED)
        run.refresh_from_db()
        return run
    try:
        with TogetherClient() as client:
            job = client.cancel_fine_tune(run.remote_job_id)
    except TogetherError as exc:
        log.warning("Run %s: cancel request to Together failed (%s); the next poll retries it", run.pk, exc.message)
        _save_fields(run.pk, summary={**(run.summary or {}), "remote_last_error": f"Cancel not confirmed yet: "
                                                                                 f"{exc.message}"})
        run.refresh_from_db()
        return run
    remote_status = str(job.get("status") or "cancel_requested").lower()
    summary = {**(run.summary or {}), "remote_status": remote_status}
    if remote_status == "cancelled":
        _finish(run.pk, status=Status.CANCELLED, summary=summary)
    else:
        _save_fields(run.pk, summary=summary)
        broadcast_on_commit(run_group(run.pk), "progress", {"run_id": run.pk, "status": run.status,
                                                            "remote_status": remote_status})
    run.refresh_from_db()
    return run


def together_reconcile(*, stale_after_s: float | None = None) -> list[int]:
    """Re-enqueue the Together runs whose next poll seems lost (no step for a while, e.g. the broker was
    flushed). Safe to call at worker start-up or periodically: the actor is idempotent and a submission is
    claimed, so a duplicate message only costs one extra status request. Returns the run ids enqueued."""
    from workers.together import together_run

    interval = float(settings.TOGETHER_POLL_INTERVAL_S)
    stale_after_s = stale_after_s if stale_after_s is not None else max(300.0, 5 * interval)
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    runs = (TrainingRun.objects.filter(backend=TrainingRun.Backend.TOGETHER, status__in=TrainingRun.ACTIVE)
            .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)))
    ids = list(runs.values_list("pk", flat=True))
    for run_id in ids:
        transaction.on_commit(lambda run_id=run_id: together_run.send(run_id))
    return ids
