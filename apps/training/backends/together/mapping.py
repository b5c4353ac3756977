"""Mapping between a run and Together.ai's wire format: hyperparameters -> the POST /fine-tunes body,
the price estimate, Together's job statuses and event messages -> the run's status and metrics.

Contract: `together_job_request(hyperparameters=, method=)` validates a run's hyperparameters against the
hyperparameter table's Together columns (Together's names, the table's names and aliases, Together's bounds
and defaults) and returns the job body, or raises ValidationFailed listing every bad field; `estimate_cost`
is Together's pricing rule (TOGETHER_PRICE_PER_MTOK); `REMOTE_STATUS_MAP`, `parse_event_metrics`, `output_name`, `event_key` and
`remote_error_message` read Together's answers. Pure functions: no HTTP, no database."""
from __future__ import annotations

import hashlib
import re

from django.conf import settings

from apps.core.exceptions import ValidationFailed
from apps.training.backends.together.client import _NOT_CONFIGURED
from apps.training.models import TrainingRun
from workers.engine.hyperparameters import TRAINING_METHOD_FIELDS, together_fields

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
_EVENT_ERROR_TYPES = {"JOB_ERROR", "JOB_USER_ERROR"}


def together_check_configured() -> None:
    """Raise ValidationFailed(field="backend") when no Together API key is configured."""
    if not settings.TOGETHER_API_KEY:
        raise ValidationFailed(_NOT_CONFIGURED, field="backend")


def together_job_request(*, hyperparameters: dict, method: str = TrainingRun.Method.LORA,
                         training_file: str = "", field_prefix: str = "") -> dict:
    """Validate a run's hyperparameters for Together and build the POST /fine-tunes body.

    The fields, their Together names, aliases, bounds, defaults and wire transforms come from the
    hyperparameter table (`workers.engine.hyperparameters.together_fields`): the body carries exactly the
    table's Together fields that apply to the method: method dpo sends a LoRA `training_type` and
    `training_method` {"method": "dpo", "dpo_beta": the run's beta}, the others {"method": "sft"}. Raises ValidationFailed listing every bad field
    (field = field_prefix + the name the value was given under, e.g. pass field_prefix="hyperparameters."
    from run_create)."""
    body_fields, training_type, problems = together_fields(hyperparameters or {}, method=method)
    errors: list[dict] = []
    if method == TrainingRun.Method.SCRATCH:
        errors.append({"field": "method", "message": "Training from scratch is not available on Together.ai; "
                                                     "choose LoRA, full fine-tuning or DPO."})
    errors += [{"field": field_prefix + name, "message": message} for name, message in problems]
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else
                               "Some hyperparameters cannot be sent to Together.ai.", errors=errors)
    method_fields = {name: body_fields.pop(name) for name in TRAINING_METHOD_FIELDS if name in body_fields}
    # DPO trains a LoRA adapter, as local DPO runs do (workers/engine/dpo)
    lora = method in (TrainingRun.Method.LORA, TrainingRun.Method.DPO)
    kind = {"type": "Lora", **training_type} if lora else {"type": "Full"}
    training_method = ({"method": "dpo", **method_fields} if method == TrainingRun.Method.DPO
                       else {"method": "sft"})
    return {"training_file": training_file, **body_fields, "training_type": kind,
            "training_method": training_method}


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


def output_name(job: dict) -> str | None:
    return job.get("model_output_name") or job.get("output_name") or None


def event_key(event: dict) -> str:
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


def remote_error_message(job: dict, events: list[dict]) -> str:
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

