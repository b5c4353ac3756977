"""Writes for training runs: create (validated), cancel, claim, progress, checkpoints, finish,
reconcile after a worker crash, relaunch from a checkpoint, promote a checkpoint.

Actors are queued and events broadcast only after commit."""
from __future__ import annotations

import logging
import math
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core import liveness
from apps.core.liveness import worker_id
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.realtime import broadcast, broadcast_on_commit, run_group
from apps.training.models import Checkpoint, MetricPoint, TrainingRun
from apps.training.selectors import can_change

log = logging.getLogger(__name__)

DEFAULT_LR = {"lora": 2e-4, "full": 2e-5, "scratch": 1e-3}
CONTINUE_LR_FACTOR = 0.5  # continued training starts gentler than a fresh run
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
HEARTBEAT_STALE_S = 120

# name: (type, min, max, min_exclusive)
_NUMERIC: dict[str, tuple[type, float, float, bool]] = {
    "max_steps": (int, 0, 1_000_000, False),
    "epochs": (float, 0, 1000, True),
    "learning_rate": (float, 0, 1, True),
    "batch_size": (int, 1, 4096, False),
    "grad_accum": (int, 1, 4096, False),
    "max_seq_len": (int, 16, 1_048_576, False),
    "lora_r": (int, 1, 4096, False),
    "lora_alpha": (int, 1, 65536, False),
    "lora_dropout": (float, 0, 0.9, False),
    "warmup_ratio": (float, 0, 0.5, False),
    "weight_decay": (float, 0, 1, False),
    "max_grad_norm": (float, 0, 1000, True),
    "save_steps": (int, 1, 1_000_000, False),
    "save_total_limit": (int, 1, 100, False),
    "eval_steps": (int, 0, 1_000_000, False),
    "seed": (int, 0, 2**31 - 1, False),
    "eval_max_new_tokens": (int, 1, 1024, False),
    "vocab_size": (int, 300, 262_144, False),
    "gpus": (int, 1, 64, False),
}
_OTHER = {"lr_scheduler", "gradient_checkpointing", "target_modules", "eval_prompts", "size", "allow_truncation",
          "stages", "model", "suffix"}


def _add(errors: list[dict], field: str, message: str) -> None:
    errors.append({"field": field, "message": message})


def _clean_hyperparameters(method: str, hp: dict, *, base_model, continuing: bool, errors: list[dict]) -> dict:
    from workers.engine.tiny import NAMED_SIZES

    if not isinstance(hp, dict):
        _add(errors, "hyperparameters", "Must be an object.")
        return {}
    out: dict[str, Any] = {}
    for key, value in hp.items():
        if value is None or value == "":
            continue
        field = f"hyperparameters.{key}"
        if key in _NUMERIC:
            typ, lo, hi, lo_excl = _NUMERIC[key]
            if isinstance(value, bool):
                _add(errors, field, "Must be a number.")
                continue
            try:
                num = float(value)
            except (TypeError, ValueError):
                _add(errors, field, "Must be a number.")
                continue
            if not math.isfinite(num):
                _add(errors, field, "Must be a finite number.")
                continue
            if typ is int and num != int(num):
                _add(errors, field, "Must be a whole number.")
                continue
            if (num <= lo if lo_excl else num < lo) or num > hi:
                bound = f"greater than {lo:g}" if lo_excl else f"at least {lo:g}"
                _add(errors, field, f"Must be {bound} and at most {hi:g} (got {value}).")
                continue
            out[key] = int(num) if typ is int else num
        elif key == "lr_scheduler":
            if value not in LR_SCHEDULERS:
                _add(errors, field, f"Choose one of {', '.join(LR_SCHEDULERS)}.")
            else:
                out[key] = value
        elif key in ("gradient_checkpointing", "allow_truncation"):
            if isinstance(value, str):
                value = value.lower() in ("1", "true", "on", "yes")
            out[key] = bool(value)
        elif key == "target_modules":
            if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                out[key] = value
            else:
                _add(errors, field, "A comma-separated string or a list of module names.")
        elif key == "eval_prompts":
            if isinstance(value, str):
                value = [line for line in value.splitlines() if line.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                _add(errors, field, "A list of prompt strings.")
            else:
                out[key] = value[:10]
        elif key == "size":
            if value not in NAMED_SIZES:
                _add(errors, field, f"Unknown size; choose one of {', '.join(NAMED_SIZES)}.")
            else:
                out[key] = value
        elif key in ("model", "suffix"):
            out[key] = str(value)
        elif key == "stages":
            continue  # handled by the caller
        else:
            _add(errors, field, f"Unknown hyperparameter {key!r}.")
    if base_model is not None and method == "lora" and base_model.hidden_size and "lora_r" in out:
        if out["lora_r"] > base_model.hidden_size:
            _add(errors, "hyperparameters.lora_r",
                 f"lora_r ({out['lora_r']}) cannot exceed the model's hidden size ({base_model.hidden_size}).")
    if base_model is not None and out.get("max_seq_len") and out["max_seq_len"] > base_model.context_length:
        _add(errors, "hyperparameters.max_seq_len",
             f"max_seq_len ({out['max_seq_len']}) exceeds the model's context length ({base_model.context_length}).")
    if method == "scratch":
        out.setdefault("size", "nano")
        out.setdefault("vocab_size", 2000)
    if "learning_rate" not in out:
        lr = DEFAULT_LR.get(method, 2e-4)
        out["learning_rate"] = lr * CONTINUE_LR_FACTOR if continuing else lr
    out.setdefault("max_seq_len", min(512, base_model.context_length) if base_model else 512)
    # store the effective configuration, so run pages and comparisons show every value used
    from workers.engine.sft import DEFAULTS

    keys = ["max_steps", "epochs", "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "max_grad_norm",
            "lr_scheduler", "save_steps", "save_total_limit", "seed"]
    if method == "lora":
        keys += ["lora_r", "lora_alpha", "lora_dropout", "target_modules"]
    for key in keys:
        out.setdefault(key, DEFAULTS[key])
    return out


def run_default_hyperparameters(*, method: str, base_model=None, continuing: bool = False) -> dict:
    """The hyperparameters a local run gets when the user leaves them empty (exactly what run_create
    stores): per-method learning rate (lower when continuing), max_seq_len capped by the base model's
    context, LoRA settings for lora, size/vocabulary for scratch. Shown as the new-run form's placeholders."""
    return _clean_hyperparameters(method, {}, base_model=None if method == "scratch" else base_model,
                                  continuing=continuing and method != "scratch", errors=[])


def _dataset_version(*, dataset_version_id=None, dataset_id=None, field="dataset_version_id"):
    from apps.datasets.models import Dataset, DatasetVersion

    if dataset_version_id:
        version = DatasetVersion.objects.select_related("dataset").filter(pk=dataset_version_id).first()
        if version is None:
            raise ValidationFailed(f"Dataset version {dataset_version_id} does not exist.", field=field)
        return version
    if dataset_id:
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise ValidationFailed(f"Dataset {dataset_id} does not exist.", field="dataset_id")
        version = dataset.versions.filter(status=DatasetVersion.Status.READY).order_by("-number").first()
        if version is None:
            raise ValidationFailed("This dataset has no ready version to train on.", field="dataset_id")
        return version
    raise ValidationFailed("Choose a dataset or a dataset version.", field=field)


def _version_problem(version) -> str | None:
    from apps.datasets.models import DatasetVersion
    from apps.datasets.selectors import version_has_errors

    if version.status != DatasetVersion.Status.READY:
        return f"Dataset version is {version.status}, not ready."
    if version_has_errors(version):
        n = (version.validation or {}).get("error_total") or version.error_count or "some"
        return f"Dataset version has {n} validation error(s); fix them (make a new version) before training."
    return None


def version_examples(version) -> tuple[list[dict], list[dict]]:
    """(train, validation) examples of a dataset version as plain dicts {messages, tools}."""
    from apps.datasets.selectors import version_training_examples

    train = list(version_training_examples(version=version, split="train"))
    validation = list(version_training_examples(version=version, split="validation"))
    return train, validation


@lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _token_lengths(tokenizer_path: str | None, examples: list[dict]) -> list[int]:
    """Token counts of each example through the chat template (≈ chars/3.5 without a tokenizer)."""
    from workers.engine.data import assistant_spans, normalize_messages

    if tokenizer_path is None:
        return [max(1, int(sum(len(m["content"]) for m in normalize_messages(ex["messages"], None)) / 3.5) + 8)
                for ex in examples]
    tok = _tokenizer(tokenizer_path)
    texts = [assistant_spans(tok, ex["messages"], ex.get("tools"))[0] for ex in examples]
    if not texts:
        return []
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def _stored_token_stats(version, *, base_model, tokenizer_path: str | None, max_len: int) -> dict | None:
    """Aggregates of the per-example token counts the datasets app stored at import (train split), when
    they were made with this run's tokenizer and chat template: the version was counted with the same
    base model and the run tokenizes with that base model's own folder (not a continued full model's
    copy). None when they were not, or when some example has no count: the caller then tokenizes."""
    from django.db.models import Count, Max, Q, Sum, Value
    from django.db.models.functions import Least

    if base_model is None or not tokenizer_path or str(tokenizer_path) != str(base_model.path):
        return None
    counted_with = ((version.stats or {}).get("tokens") or {}).get("base_model")
    if not counted_with or counted_with != base_model.pk:
        return None
    agg = version.examples.filter(split="train").aggregate(
        examples=Count("pk"), counted=Count("token_count"), longest=Max("token_count"),
        too_long=Count("pk", filter=Q(token_count__gt=max_len)),
        capped=Sum(Least("token_count", Value(max_len))))
    if agg["examples"] != agg["counted"]:
        return None
    return {"examples": agg["examples"], "too_long": agg["too_long"], "longest": agg["longest"] or 0,
            "tokens": agg["capped"] or 0}


def _token_stats(version, *, base_model, tokenizer_path: str | None, max_len: int) -> dict:
    """{examples, too_long, longest, tokens (each capped at max_len)} of a version's train split: from the
    stored counts when they match the run's tokenizer, else by tokenizing every example now."""
    stored = _stored_token_stats(version, base_model=base_model, tokenizer_path=tokenizer_path, max_len=max_len)
    if stored is not None:
        return {**stored, "source": "stored"}
    train, _ = version_examples(version)
    lengths = _token_lengths(tokenizer_path, train)
    return {"examples": len(lengths), "too_long": sum(1 for n in lengths if n > max_len),
            "longest": max(lengths, default=0), "tokens": sum(min(n, max_len) for n in lengths),
            "source": "tokenized" if tokenizer_path else "approximate"}


def _clean_remote_hyperparameters(method: str, hp: dict, *, errors: list[dict]) -> dict:
    """Remote (Together.ai) runs: the backend owns the meaning of the hyperparameters."""
    from apps.training.backends.together import together_check_configured, together_job_request

    try:
        together_check_configured()
        together_job_request(hyperparameters=hp, method=method)
    except ValidationFailed as exc:
        for e in exc.errors or [{"field": "backend", "message": exc.message}]:
            field = e.get("field") or "backend"
            if field not in ("backend", "method", "base_model"):
                field = f"hyperparameters.{field}"
            _add(errors, field, e["message"])
    return hp


def _remote_estimate(hp: dict, version) -> dict:
    from apps.training.backends.together import estimate_cost

    train, _ = version_examples(version)
    tokens = sum(_token_lengths(None, train))
    epochs = int(hp.get("n_epochs") or hp.get("epochs") or 1)
    return {"dataset_tokens": tokens, "steps": None, "seconds": None,
            "cost": estimate_cost(tokens=tokens, epochs=epochs, model=str(hp.get("model", "")))}


def run_estimate(*, method: str, base_model, hyperparameters: dict, stages: list[tuple[Any, dict]],
                 tokenizer_path: str | None) -> dict:
    """Estimated tokens, steps and time (from throughput measured on this device) before launch."""
    from apps.training.estimates import tokens_per_second
    from workers.engine.tiny import count_parameters

    hp = hyperparameters
    max_len = int(hp.get("max_seq_len", 512))
    eff_batch = int(hp.get("batch_size", 4)) * int(hp.get("grad_accum", 1))
    total_steps, total_tokens, processed, too_long, longest = 0, 0, 0.0, 0, 0
    sources = set()
    for version, stage_hp in stages:
        st = _token_stats(version, base_model=base_model, tokenizer_path=tokenizer_path, max_len=max_len)
        sources.add(st["source"])
        too_long += st["too_long"]
        longest = max(longest, st["longest"])
        n_examples, tokens = st["examples"], st["tokens"]
        per_epoch = max(1, math.ceil(n_examples / eff_batch)) if n_examples else 0
        max_steps = int(stage_hp.get("max_steps") or hp.get("max_steps") or 0)
        epochs = float(stage_hp.get("epochs") or hp.get("epochs") or 1.0)
        steps = max_steps if max_steps > 0 else math.ceil(per_epoch * epochs)
        total_steps += steps
        total_tokens += tokens
        avg = tokens / n_examples if n_examples else 0
        processed += steps * eff_batch * avg
    base_id = base_model.pk if base_model is not None else None
    tps = tokens_per_second(base_id)
    params = None
    if method == "scratch":
        params = count_parameters(hp.get("size", "nano"), int(hp.get("vocab_size", 2000)))
        tps = 160.0 * min(50.0, max(0.01, 135_000_000 / max(params, 1)))
    elif base_model is not None:
        params = base_model.parameters
    if method == "full" and params:
        tps = tps / 3.0  # all weights get gradients and optimizer state
    return {
        "dataset_tokens": total_tokens,
        "tokens_processed": int(processed),
        "steps": total_steps,
        "tokens_per_s": round(tps, 1),
        "seconds": round(processed / tps, 2) if tps else None,
        "parameters": params,
        "examples_too_long": too_long,
        "longest_example_tokens": longest,
        # where the token counts came from: stored at import, tokenized now, or approximated (chars/3.5)
        "token_counts": ",".join(sorted(sources)),
    }


def _enqueue(run: TrainingRun) -> None:
    run_id = run.pk
    if run.backend == TrainingRun.Backend.TOGETHER:
        def send():
            from workers.together import together_run

            together_run.send(run_id)
    else:
        def send():
            from apps.training.backends.local import local_run_enqueue

            local_run_enqueue(run_id)
    transaction.on_commit(send)


def run_output_dir(run: TrainingRun) -> Path:
    return settings.ARTIFACT_ROOT / "runs" / f"run-{run.pk}"


def run_create(*, user, dataset_version_id: int | None = None, dataset_id: int | None = None,
               base_model: str | None = None, method: str = "lora", hyperparameters: dict | None = None,
               name: str = "", parent_version_id: int | None = None, backend: str = "local",
               stages: list[dict] | None = None, allow_truncation: bool = False,
               dry_run: bool = False) -> TrainingRun | dict:
    """Validate everything, create the run and queue it after commit. With dry_run=True, validate and
    return the estimate instead (nothing is written)."""
    from apps.registry.models import BaseModel, ModelVersion

    if not user or not user.is_authenticated:
        raise PermissionDenied("Log in to start a run.")
    errors: list[dict] = []
    hp_in = dict(hyperparameters or {})
    stages = stages if stages is not None else hp_in.pop("stages", None)
    hp_in.pop("stages", None)
    allow_truncation = bool(allow_truncation or hp_in.pop("allow_truncation", False))
    if backend not in TrainingRun.Backend.values:
        _add(errors, "backend", f"Unknown backend {backend!r}; choose one of {', '.join(TrainingRun.Backend.values)}.")
    if method not in TrainingRun.Method.values:
        _add(errors, "method", f"Unknown method {method!r}; choose one of {', '.join(TrainingRun.Method.values)}.")
    if len(name or "") > 200:
        _add(errors, "name", "At most 200 characters.")

    parent = None
    if parent_version_id:
        parent = ModelVersion.objects.select_related("base_model").filter(pk=parent_version_id).first()
        if parent is None:
            _add(errors, "parent_version_id", f"Model version {parent_version_id} does not exist.")
        elif parent.kind == ModelVersion.Kind.REMOTE:
            _add(errors, "parent_version_id", "A remote model version cannot be continued locally.")
        elif not parent.artifact_path:
            _add(errors, "parent_version_id", "This model version has no weights on disk to continue from.")
        elif method == "scratch":
            _add(errors, "method", "Continued training uses method lora or full, not scratch.")
        elif parent.kind == ModelVersion.Kind.FULL and method != "full":
            _add(errors, "method", "A full-weights version is continued with method full.")
        elif parent.kind == ModelVersion.Kind.ADAPTER and method != "lora":
            _add(errors, "method", "An adapter version is continued with method lora.")

    bm = None
    if backend == TrainingRun.Backend.TOGETHER:
        if not base_model:
            _add(errors, "base_model", "Choose the remote model to fine-tune.")
        else:
            hp_in.setdefault("model", base_model)
            bm = BaseModel.objects.filter(pk=base_model).first()
    elif method == "scratch":
        bm = None
    elif parent is not None:
        bm = parent.base_model
        if base_model and bm is not None and base_model != bm.pk:
            _add(errors, "base_model", f"Version {parent.pk} was trained on {bm.pk}; leave base_model empty or match it.")
    else:
        if not base_model:
            default = BaseModel.objects.filter(is_default=True).first()
            if default is None:
                _add(errors, "base_model", "Choose a base model.")
            bm = default
        else:
            bm = BaseModel.objects.filter(pk=base_model).first()
            if bm is None:
                _add(errors, "base_model", f"Unknown base model {base_model!r}.")
    if bm is not None and backend == TrainingRun.Backend.LOCAL and not Path(bm.path).is_dir():
        _add(errors, "base_model", f"Base model {bm.pk!r} has no folder on this machine ({bm.path}).")

    if backend == TrainingRun.Backend.TOGETHER:
        hp = _clean_remote_hyperparameters(method, hp_in, errors=errors)
    else:
        hp = _clean_hyperparameters(method, hp_in, base_model=bm, continuing=parent is not None, errors=errors)
    if hp.get("max_seq_len") and method == "scratch" and hp["max_seq_len"] > 8192:
        _add(errors, "hyperparameters.max_seq_len", "From-scratch models support at most 8192 tokens.")

    # dataset versions: one, or one per stage
    stage_specs: list[tuple[Any, dict]] = []
    if stages:
        if not isinstance(stages, list) or len(stages) > 20:
            _add(errors, "stages", "A list of at most 20 stages.")
        else:
            for i, st in enumerate(stages):
                if not isinstance(st, dict):
                    _add(errors, f"stages.{i}", "Each stage is an object {dataset_version_id, epochs}.")
                    continue
                try:
                    v = _dataset_version(dataset_version_id=st.get("dataset_version_id"),
                                         dataset_id=st.get("dataset_id"), field=f"stages.{i}.dataset_version_id")
                except ValidationFailed as exc:
                    errors.extend(exc.errors)
                    continue
                problem = _version_problem(v)
                if problem:
                    _add(errors, f"stages.{i}.dataset_version_id", problem)
                st_hp: dict[str, Any] = {"dataset_version_id": v.pk}
                for key, (lo, hi) in {"epochs": (0, 1000), "max_steps": (0, 1_000_000)}.items():
                    if st.get(key) in (None, ""):
                        continue
                    try:
                        val = float(st[key])
                    except (TypeError, ValueError):
                        _add(errors, f"stages.{i}.{key}", "Must be a number.")
                        continue
                    if val < lo or val > hi or (key == "epochs" and val == 0):
                        _add(errors, f"stages.{i}.{key}", f"Out of range ({lo}–{hi}).")
                        continue
                    st_hp[key] = int(val) if key == "max_steps" else val
                stage_specs.append((v, st_hp))
    else:
        try:
            v = _dataset_version(dataset_version_id=dataset_version_id, dataset_id=dataset_id)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
        else:
            problem = _version_problem(v)
            if problem:
                _add(errors, "dataset_version_id", problem)
            stage_specs.append((v, {}))
    if stage_specs and backend == TrainingRun.Backend.TOGETHER and len(stage_specs) > 1:
        _add(errors, "stages", "Multi-stage pipelines run on the local backend only.")
    if errors:
        raise ValidationFailed("Invalid run: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3]),
                               errors=errors)

    estimate = None
    if backend == TrainingRun.Backend.LOCAL:
        tok_path = None
        if method != "scratch":
            tok_path = str(settings.ARTIFACT_ROOT / parent.artifact_path) if parent and parent.kind == "full" else bm.path
        try:
            estimate = run_estimate(method=method, base_model=bm, hyperparameters=hp, stages=stage_specs,
                                    tokenizer_path=tok_path)
        except Exception as exc:  # a broken tokenizer must show as a field error, not a 500
            raise ValidationFailed(f"Could not read the base model's tokenizer: {exc}", field="base_model") from exc
        if estimate["steps"] == 0:
            raise ValidationFailed("The dataset version has no training examples.", field="dataset_version_id")
        if estimate["examples_too_long"] and not allow_truncation:
            raise ValidationFailed(
                f"{estimate['examples_too_long']} example(s) are longer than max_seq_len ({hp['max_seq_len']} tokens; "
                f"longest {estimate['longest_example_tokens']}). Raise max_seq_len or accept truncation "
                f"(allow_truncation).", field="hyperparameters.max_seq_len")
    else:
        estimate = _remote_estimate(hp, stage_specs[0][0])
    if dry_run:
        return {"estimate": estimate, "hyperparameters": hp}
    if stage_specs and len(stage_specs) > 1:
        hp["stages"] = [s for _, s in stage_specs]
    if allow_truncation:
        hp["allow_truncation"] = True
    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name or "", owner=user, dataset_version=stage_specs[0][0], base_model=bm, parent_version=parent,
            method=method, backend=backend, hyperparameters=hp,
            total_steps=(estimate or {}).get("steps") or 0,
            summary={"estimate": estimate} if estimate else {},
        )
        run.output_dir = str(run_output_dir(run).relative_to(settings.ARTIFACT_ROOT))
        run.save(update_fields=["output_dir"])
        _enqueue(run)
        broadcast_on_commit(run_group(run.pk), "status", {"status": run.status})
    return run


def run_request_cancel(*, user, run_id: int) -> TrainingRun:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"Run {run_id} does not exist.")
        if not can_change(user, run):
            raise PermissionDenied("Only the run's owner or an admin can cancel it.")
        if not run.is_active:
            raise Conflict(f"Run {run_id} is already {run.status}.")
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.status == TrainingRun.Status.QUEUED and run.backend == TrainingRun.Backend.LOCAL:
            run.status = TrainingRun.Status.CANCELLED  # never started: nothing to stop
            run.finished_at = timezone.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)
        broadcast_on_commit(run_group(run.pk), "status", {"status": run.status, "cancel_requested": True})
    if run.backend == TrainingRun.Backend.TOGETHER:
        from apps.training.backends.together import together_run_cancel

        together_run_cancel(run=run)
        run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------
# used by the worker


def run_claim(*, run_id: int, worker: str | None = None) -> TrainingRun | None:
    """Atomically take a run for this worker. Returns None when there is nothing to do (finished,
    cancelled, or running in a live worker): re-delivered messages are harmless."""
    worker = worker or worker_id()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return None
        if run.cancel_requested and run.status == TrainingRun.Status.QUEUED:
            run.status = TrainingRun.Status.CANCELLED
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            return None
        if run.status == TrainingRun.Status.RUNNING:
            owner = (run.summary or {}).get("worker")
            if owner != worker and liveness.pid_alive(owner) and not liveness.heartbeat_stale(run.heartbeat_at, HEARTBEAT_STALE_S):
                return None
            if run.cancel_requested:  # its worker died after the cancel: nothing left to stop
                _finish(run, TrainingRun.Status.CANCELLED, summary={"stopped_at": run.current_step})
                return None
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.heartbeat_at = timezone.now()
        run.summary = {**(run.summary or {}), "worker": worker}
        run.error = ""
        run.save(update_fields=["status", "started_at", "heartbeat_at", "summary", "error"])
        broadcast_on_commit(run_group(run.pk), "status", {"status": run.status})
    return run


def run_resume_point(*, run_id: int, step: int) -> None:
    """The engine (re)starts at `step` (0 for a fresh run; a checkpoint's step after a crash): forget
    metric points and checkpoints recorded after it, so the curve continues from the weights."""
    with transaction.atomic():
        MetricPoint.objects.filter(run_id=run_id, step__gt=step).delete()
        Checkpoint.objects.filter(run_id=run_id, step__gt=step).update(deleted=True)
        TrainingRun.objects.filter(pk=run_id).update(current_step=step, heartbeat_at=timezone.now())
    if step:
        broadcast(run_group(run_id), "resume", {"step": step})


def run_progress_record(*, run_id: int, points: list[tuple[int, dict]], total_steps: int | None = None) -> dict:
    """Write a batch of metric points, refresh the run's summary and heartbeat, and push one event
    to the run's websocket group. Returns the event payload."""
    rows = []
    latest_train: dict = {}
    latest_eval: dict = {}
    last_step = 0
    for step, metrics in points:
        values = {k: v for k, v in metrics.items() if k != "kind" and v is not None}
        kind = metrics.get("kind", "train")
        rows.append(MetricPoint(run_id=run_id, step=step, kind=kind, values=values))
        if kind == "train":
            latest_train = values
        else:
            latest_eval = values
        last_step = max(last_step, step)
    with transaction.atomic():
        MetricPoint.objects.bulk_create(rows)
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        summary = dict(run.summary or {})
        for key in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "samples_per_s", "steps_per_s", "eta_s",
                    "rss_mb", "gpu_mb", "epoch", "stage", "tokens_seen"):
            if key in latest_train:
                summary[key] = latest_train[key]
        if latest_eval:
            summary["eval_loss"] = latest_eval.get("eval_loss")
            summary["perplexity"] = latest_eval.get("perplexity")
        run.summary = summary
        run.current_step = max(run.current_step, last_step)
        if total_steps:
            run.total_steps = total_steps
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["summary", "current_step", "total_steps", "heartbeat_at"])
    payload = {"run_id": run_id, "status": run.status, "current_step": run.current_step,
               "total_steps": run.total_steps,
               "points": [{"step": s, "kind": m.get("kind", "train"), **{k: v for k, v in m.items() if k != "kind"}}
                          for s, m in points],
               "summary": {k: v for k, v in summary.items() if k not in ("estimate", "evaluation", "worker")}}
    broadcast(run_group(run_id), "progress", payload)
    return payload


def run_heartbeat(*, run_id: int) -> None:
    TrainingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())


def run_should_stop(*, run_id: int) -> bool:
    return bool(TrainingRun.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first())


def checkpoint_record(*, run_id: int, step: int, path: str, eval_loss: float | None, stage: int = 0) -> Checkpoint:
    rel = str(Path(path).resolve().relative_to(Path(settings.ARTIFACT_ROOT).resolve()))
    ckpt, _ = Checkpoint.objects.update_or_create(
        run_id=run_id, step=step, defaults={"path": rel, "eval_loss": eval_loss, "stage": stage, "deleted": False})
    # the Trainer rotated older ones away (keep last K)
    for c in Checkpoint.objects.filter(run_id=run_id, deleted=False).exclude(pk=ckpt.pk):
        if not (settings.ARTIFACT_ROOT / c.path).is_dir():
            c.deleted = True
            c.save(update_fields=["deleted"])
    broadcast(run_group(run_id), "checkpoint", {"id": ckpt.pk, "step": step, "eval_loss": eval_loss})
    return ckpt


def _finish(run: TrainingRun, status: str, *, error: str = "", summary: dict | None = None) -> None:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    if summary:
        run.summary = {**(run.summary or {}), **summary}
    run.save(update_fields=["status", "error", "finished_at", "summary"])
    broadcast_on_commit(run_group(run.pk), "status", {"status": status, "error": error,
                                                      "model_version_id": getattr(run, "_mv_id", None)})


def run_succeed(*, run_id: int, result: dict) -> TrainingRun:
    """Register the trained weights as a model version (lineage: base, parent, dataset, hyperparameters,
    final loss) and mark the run succeeded, in one transaction."""
    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_register

    with transaction.atomic():
        run = TrainingRun.objects.select_for_update(of=("self",)).select_related("base_model", "parent_version").get(pk=run_id)
        kind = ModelVersion.Kind.ADAPTER if run.method == TrainingRun.Method.LORA else ModelVersion.Kind.FULL
        metrics = {k: result.get(k) for k in ("final_loss", "eval_loss", "perplexity") if result.get(k) is not None}
        evaluation = result.get("evaluation") or {}
        if evaluation.get("tool_calls"):
            metrics["tool_call_right"] = evaluation["tool_calls"]["right_tool"]
            metrics["tool_call_well_formed"] = evaluation["tool_calls"]["well_formed"]
        version = model_version_register(
            name=str(run) if run.name else f"run-{run.pk}", kind=kind, base_model=run.base_model, run=run,
            dataset_version=run.dataset_version, parent=run.parent_version, source_dir=result["final_dir"],
            hyperparameters={**run.hyperparameters, "method": run.method}, metrics=metrics,
            final_loss=result.get("final_loss"), created_by=run.owner,
        )
        run._mv_id = version.pk
        summary = {"final_loss": result.get("final_loss"), "eval_loss": result.get("eval_loss"),
                   "perplexity": result.get("perplexity"), "evaluation": evaluation,
                   "stages": result.get("stages"), "device": result.get("device"),
                   "model_version_id": version.pk, "eta_s": 0}
        run.current_step = max(run.current_step, result.get("total_steps") or 0)
        run.save(update_fields=["current_step"])
        _finish(run, TrainingRun.Status.SUCCEEDED, summary=summary)
    return run


def run_fail(*, run_id: int, error: str) -> TrainingRun | None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return run
        _finish(run, TrainingRun.Status.FAILED, error=error[:5000])
    return run


def run_mark_cancelled(*, run_id: int, stopped_at: int | None = None) -> TrainingRun | None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return run
        _finish(run, TrainingRun.Status.CANCELLED, summary={"stopped_at": stopped_at, "eta_s": None})
    return run


def run_reconcile(*, stale_after_s: int | None = None) -> list[tuple[int, str]]:
    """Runs left in `running` by a worker that died: resume the ones with a checkpoint (queued again),
    fail the others (keeping the metrics they had). Safe to call from any worker at start-up."""
    actions = []
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, backend=TrainingRun.Backend.LOCAL):
        owner = (run.summary or {}).get("worker")
        if owner == worker_id():
            continue
        stale_s = stale_after_s or HEARTBEAT_STALE_S
        gone = (liveness.holder_dead(owner, run.heartbeat_at, stale_after_s=stale_s) if owner
                else liveness.heartbeat_stale(run.heartbeat_at, stale_s))
        if not gone:
            continue
        has_ckpt = any((settings.ARTIFACT_ROOT / c.path).is_dir()
                       for c in Checkpoint.objects.filter(run=run, deleted=False))
        if run.cancel_requested:
            run_mark_cancelled(run_id=run.pk, stopped_at=run.current_step)
            actions.append((run.pk, "cancelled"))
        elif has_ckpt:
            with transaction.atomic():
                r = TrainingRun.objects.select_for_update().get(pk=run.pk)
                if r.status != TrainingRun.Status.RUNNING:
                    continue
                r.status = TrainingRun.Status.QUEUED
                r.summary = {**(r.summary or {}), "worker": None, "resumed": (r.summary or {}).get("resumed", 0) + 1}
                r.save(update_fields=["status", "summary"])
                _enqueue(r)
                broadcast_on_commit(run_group(r.pk), "status", {"status": r.status, "resuming": True})
            actions.append((run.pk, "resumed"))
        else:
            run_fail(run_id=run.pk, error=f"The worker stopped (killed or crashed) at step {run.current_step} "
                                          f"before any checkpoint was written; the metrics so far are kept.")
            actions.append((run.pk, "failed"))
    return actions


# ---------------------------------------------------------------------------------------------
# relaunch / promote


_NOT_WEIGHTS = shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json",
                                      "training_args.bin", "scaler.pt")


def run_relaunch(*, user, run_id: int, checkpoint_id: int, hyperparameters: dict | None = None) -> TrainingRun:
    """A new run with the same configuration that starts from a checkpoint of an earlier run (its
    weights, optimizer, scheduler and RNG state are copied, so the curve continues from there)."""
    from apps.training.selectors import run_get

    source = run_get(user=user, run_id=run_id)
    ckpt = Checkpoint.objects.filter(pk=checkpoint_id, run=source).first()
    if ckpt is None:
        raise ValidationFailed(f"Checkpoint {checkpoint_id} does not belong to run {run_id}.", field="checkpoint_id")
    src_dir = settings.ARTIFACT_ROOT / ckpt.path
    if ckpt.deleted or not src_dir.is_dir():
        raise ValidationFailed("That checkpoint was rotated away (only the last K are kept).", field="checkpoint_id")
    if source.backend != TrainingRun.Backend.LOCAL:
        raise ValidationFailed("Only local runs have checkpoints to relaunch from.", field="run_id")
    hp = {**{k: v for k, v in source.hyperparameters.items()}, **(hyperparameters or {})}
    stages = hp.pop("stages", None)
    run = run_create(user=user, dataset_version_id=source.dataset_version_id,
                     base_model=source.base_model_id if not source.parent_version_id else None,
                     method=source.method, hyperparameters=hp, name=f"{source} from step {ckpt.step}",
                     parent_version_id=source.parent_version_id, stages=stages,
                     allow_truncation=bool(hp.get("allow_truncation")))
    out = run_output_dir(run)
    # copy the finished stages before the checkpoint's, and the checkpoint itself
    src_out = settings.ARTIFACT_ROOT / source.output_dir
    for name in ("scratch-base",) + tuple(f"stage-{i}" for i in range(ckpt.stage)):
        if (src_out / name).is_dir():
            shutil.copytree(src_out / name, out / name, dirs_exist_ok=True)
    dest = out / f"stage-{ckpt.stage}" / src_dir.name
    shutil.copytree(src_dir, dest, dirs_exist_ok=True)
    rel = str(dest.relative_to(settings.ARTIFACT_ROOT))
    Checkpoint.objects.create(run=run, step=ckpt.step, stage=ckpt.stage, path=rel, eval_loss=ckpt.eval_loss)
    TrainingRun.objects.filter(pk=run.pk).update(summary={**run.summary, "relaunched_from": {
        "run_id": source.pk, "checkpoint_id": ckpt.pk, "step": ckpt.step}})
    run.refresh_from_db()
    return run


def checkpoint_promote(*, user, checkpoint_id: int | None = None, run_id: int | None = None):
    """Register a checkpoint's weights as a model version. With only run_id: the best checkpoint by
    validation loss."""
    import tempfile

    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_register
    from apps.training.selectors import best_checkpoint

    if checkpoint_id:
        ckpt = Checkpoint.objects.select_related("run").filter(pk=checkpoint_id).first()
        if ckpt is None:
            raise NotFound(f"Checkpoint {checkpoint_id} does not exist.")
    else:
        run = TrainingRun.objects.filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"Run {run_id} does not exist.")
        ckpt = best_checkpoint(run)
        if ckpt is None:
            raise ValidationFailed("This run has no checkpoint with a validation loss (it needs a validation split).",
                                   field="checkpoint_id")
    run = ckpt.run
    if not can_change(user, run):
        raise PermissionDenied("Only the run's owner or an admin can promote its checkpoints.")
    if ckpt.model_version_id:
        raise Conflict(f"Checkpoint {ckpt.pk} is already model version {ckpt.model_version_id}.")
    src = settings.ARTIFACT_ROOT / ckpt.path
    if ckpt.deleted or not src.is_dir():
        raise ValidationFailed("That checkpoint is no longer on disk.", field="checkpoint_id")
    kind = ModelVersion.Kind.ADAPTER if run.method == TrainingRun.Method.LORA else ModelVersion.Kind.FULL
    with tempfile.TemporaryDirectory(dir=settings.ARTIFACT_ROOT) as tmp:
        weights = Path(tmp) / "w"
        shutil.copytree(src, weights, ignore=_NOT_WEIGHTS)
        with transaction.atomic():
            version = model_version_register(
                name=f"{run} @ step {ckpt.step}", kind=kind, base_model=run.base_model, run=None,
                dataset_version=run.dataset_version, parent=run.parent_version, source_dir=weights,
                hyperparameters={**run.hyperparameters, "method": run.method, "run_id": run.pk, "step": ckpt.step},
                metrics={"eval_loss": ckpt.eval_loss} if ckpt.eval_loss is not None else {},
                final_loss=None, created_by=user,
            )
            ckpt.model_version = version
            ckpt.save(update_fields=["model_version"])
    return version
