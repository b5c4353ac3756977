"""Writes a user asks for on training runs: create (validated, estimated, queued), cancel, relaunch
from a checkpoint, promote a checkpoint to a model version.

Contract: keyword-only services that raise the `ApplicationError` family (field errors from
ValidationFailed flow into forms and 422 bodies). `run_create` validates everything before it writes
anything, stores the effective hyperparameters and the estimate, and queues the run after commit;
with dry_run=True it returns `{"estimate", "hyperparameters"}` and writes nothing. `run_relaunch` sends
the new run's message only once the checkpoint is copied and recorded (a copy that fails leaves the run
failed, E_RELAUNCH_COPY, and sends nothing). Only the run's owner or an admin may cancel a run or
promote its checkpoints."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.core.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.training.models import Checkpoint, TrainingRun
from apps.training.selectors import can_change
from apps.training.services.estimates import remote_run_estimate, run_estimate
from apps.training.services.grow import grow_limits, grow_parent_problem, grow_target
from apps.training.services.hyperparameters import _add, _clean_hyperparameters, _clean_remote_hyperparameters
from apps.training.services.lifecycle import run_enqueue, run_is_adapter, run_send
from apps.training.services.preferences import preference_problem
from workers.engine.hyperparameters.values import parse_bool


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


def run_output_dir(run: TrainingRun) -> Path:
    return settings.ARTIFACT_ROOT / "runs" / f"run-{run.pk}"


def run_create(*, user, dataset_version_id: int | None = None, dataset_id: int | None = None,
               base_model: str | None = None, method: str = "lora", hyperparameters: dict | None = None,
               name: str = "", parent_version_id: int | None = None, backend: str = "local",
               stages: list[dict] | None = None, allow_truncation: bool = False,
               dry_run: bool = False, enqueue: bool = True) -> TrainingRun | dict:
    """Validate everything, create the run and queue it after commit. With dry_run=True, validate and
    return the estimate instead (nothing is written). enqueue=False: the run and its queued job are
    created but no message is sent until the caller's `run_send` (files to prepare first)."""
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
        elif method == "grow":  # a from-scratch full-weights version (apps/training/services/grow.py)
            problem = grow_parent_problem(parent)
            if problem:
                _add(errors, "parent_version_id", problem)
        elif method == "scratch":
            _add(errors, "method", "Continued training uses method lora or full, not scratch.")
        elif method in ("grpo", "dpo", "kto") and (
                (parent.kind == ModelVersion.Kind.FULL) != parse_bool(hp_in.get("full_weights"))):
            _add(errors, "method", f"{method.upper()} continues an adapter version with its adapter, and a "
                                   "full-weights version with full_weights on.")
        elif parent.kind == ModelVersion.Kind.FULL and method not in ("full", "grpo", "dpo", "kto"):
            _add(errors, "method", "A full-weights version is continued with method full.")
        elif parent.kind == ModelVersion.Kind.ADAPTER and method not in ("lora", "dpo", "kto", "grpo"):
            _add(errors, "method", "An adapter version is continued with method lora (or trained on preference "
                                   "pairs with method dpo or kto).")
    if method == "grow" and not parent_version_id:
        _add(errors, "parent_version_id", "A grow run starts from a from-scratch model version: give "
                                          "parent_version_id.")
    if method == "grow" and backend == TrainingRun.Backend.TOGETHER:
        _add(errors, "backend", "Grow runs train locally: choose the local backend.")
    if method in ("kto", "grpo") and backend == TrainingRun.Backend.TOGETHER:
        _add(errors, "backend", f"{method.upper()} runs train locally: choose the local backend.")
    if method in ("dpo", "kto", "grpo") and stages:
        _add(errors, "stages", "Multi-stage pipelines use methods lora, full or scratch; a DPO run has one "
                               "preference dataset.")

    bm = None
    if backend == TrainingRun.Backend.TOGETHER:
        if not base_model:
            _add(errors, "base_model", "Choose the remote model to fine-tune.")
        else:
            hp_in.setdefault("model", base_model)
            bm = BaseModel.objects.filter(pk=base_model).first()
    elif method in ("scratch", "grow"):
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
        hp = _clean_hyperparameters(method, hp_in, base_model=grow_limits(parent) if method == "grow" else bm,
                                    continuing=parent is not None, errors=errors)
    if method == "grow" and backend == TrainingRun.Backend.LOCAL and parent is not None and not any(
            e["field"] in ("parent_version_id", "hyperparameters.target_size") for e in errors):
        target, problem = grow_target(parent, hp.get("target_size"))
        if problem:
            _add(errors, "hyperparameters.target_size", problem)
        else:
            hp["target_size"] = target  # the effective size: "next" resolved, dims completed
    if hp.get("max_seq_len") and method == "scratch" and hp["max_seq_len"] > 8192:
        _add(errors, "hyperparameters.max_seq_len", "From-scratch models support at most 8192 tokens.")
    if method == "grpo" and backend == TrainingRun.Backend.LOCAL:  # weights, whole groups per batch
        from apps.training.services.rewards import grpo_problems, grpo_weights

        errors.extend(grpo_problems(hp))
        hp["reward_weights"] = grpo_weights(hp) if not any("reward_weights" in e["field"] for e in errors) else {}
    if method == "kto" and isinstance(hp.get("batch_size"), int) and hp["batch_size"] < 2:
        _add(errors, "hyperparameters.batch_size", "KTO needs a batch size of at least 2: its KL term pairs each "
                                                   "answer with another prompt of the same batch.")

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
            problem = _version_problem(v) or (preference_problem(v, method=method)
                                              if method in ("dpo", "kto") else None)
            if not problem and method == "grpo" and hp.get("reward_weights"):  # a task a weighted verifier checks
                from apps.training.services.rewards import grpo_task_problem

                problem = grpo_task_problem(v, hp["reward_weights"])
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
        estimate = remote_run_estimate(hyperparameters=hp, version=stage_specs[0][0])
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
        run_enqueue(run, send=enqueue)  # its job, sent to the backend's actor after commit (broadcasts its status)
    return run


def run_request_cancel(*, user, run_id: int) -> TrainingRun:
    """Ask a run to stop, in any phase (the owner or an admin): a queued local run is cancelled at once, a
    running one stops at its next check and keeps its checkpoint, a Together run is cancelled remotely."""
    from apps.core.jobs.services import job_request_cancel
    from apps.training.services.lifecycle import run_job_id

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Run {run_id} does not exist.")
    if not can_change(user, run):
        raise PermissionDenied("Only the run's owner or an admin can cancel it.")
    if not run.is_active:
        raise Conflict(f"Run {run_id} is already {run.status}.")
    try:
        job_request_cancel(user=user, job_id=run_job_id(run), as_system=True)
    except Conflict:
        pass  # it finished meanwhile
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------
# relaunch / promote


_NOT_WEIGHTS = shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json",
                                      "training_args.bin", "scaler.pt")


def run_relaunch(*, user, run_id: int, checkpoint_id: int, hyperparameters: dict | None = None) -> TrainingRun:
    """A new run with the same configuration that starts from a checkpoint of an earlier run (its
    weights, optimizer, scheduler and RNG state are copied, so the curve continues from there). Its
    message is sent only after the copy and the Checkpoint row are committed, so the worker always
    finds the checkpoint to resume from."""
    from apps.core.jobs.services import error_line, job_finish
    from apps.core.models import Job
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
                     allow_truncation=bool(hp.get("allow_truncation")), enqueue=False)
    out = run_output_dir(run)
    # copy the finished stages before the checkpoint's, and the checkpoint itself (no transaction is open)
    src_out = settings.ARTIFACT_ROOT / source.output_dir
    dest = out / f"stage-{ckpt.stage}" / src_dir.name
    try:
        for name in ("scratch-base", "grow-base") + tuple(f"stage-{i}" for i in range(ckpt.stage)):
            if (src_out / name).is_dir():
                shutil.copytree(src_out / name, out / name, dirs_exist_ok=True)
        shutil.copytree(src_dir, dest, dirs_exist_ok=True)
    except OSError as exc:
        shutil.rmtree(out, ignore_errors=True)
        message = error_line(f"Could not copy checkpoint {ckpt.pk} (step {ckpt.step}) into the new run: "
                             f"{exc.strerror or exc}")
        job_finish(job_id=run.job_id, status=Job.Status.FAILED, error=message, error_code="E_RELAUNCH_COPY")
        raise ApplicationError(message, code="relaunch_copy_failed") from exc
    rel = str(dest.relative_to(settings.ARTIFACT_ROOT))
    with transaction.atomic():
        Checkpoint.objects.create(run=run, step=ckpt.step, stage=ckpt.stage, path=rel, eval_loss=ckpt.eval_loss)
        TrainingRun.objects.filter(pk=run.pk).update(summary={**run.summary, "relaunched_from": {
            "run_id": source.pk, "checkpoint_id": ckpt.pk, "step": ckpt.step}})
        run_send(run_id=run.pk)  # now, after this commit: the worker finds the checkpoint
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
    kind = ModelVersion.Kind.ADAPTER if run_is_adapter(run) else ModelVersion.Kind.FULL
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
