"""`hub runs create|watch|cancel|list|show`."""
from __future__ import annotations

from typing import Any

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, err, fields, hub, out, parse_params, show_progress, table
from hub_sdk.progress import format_seconds

app = typer.Typer(help="Train models: create runs, watch them live, cancel them.", no_args_is_help=True)

RUN_COLUMNS = [("id", "id"), ("name", "name"), ("status", "status"), ("phase", "phase"), ("method", "method"),
               ("base", "base_model"), ("dataset v", "dataset_version_id"), ("step", "current_step"),
               ("of", "total_steps"), ("loss", "summary.loss"), ("model", "model_version_id"),
               ("created", "created_at")]


def _watch(h, run_id: int, as_json: bool) -> dict:
    try:
        run = h.runs.watch(run_id, progress=show_progress())
    except KeyboardInterrupt:
        err().print(f"Stopped watching; run {run_id} goes on (hub runs cancel {run_id} stops it).")
        raise typer.Exit(130) from None
    if as_json:
        emit_json(run)
    else:
        _print_result(run)
    if run["status"] != "succeeded":
        raise typer.Exit(1)
    return run


def _print_result(run: dict) -> None:
    summary = run.get("summary") or {}
    pairs: list[tuple[str, Any]] = [("run", f"{run['id']} {run['name']}"), ("status", run["status"])]
    if run.get("error"):
        pairs.append(("error", f"{run['error']} {run.get('error_code') or ''}".strip()))
    pairs += [("steps", f"{run['current_step']}/{run['total_steps']}"),
              ("duration", format_seconds(run.get("duration_s") or run.get("elapsed_s")))]
    for key in ("final_loss", "eval_loss", "perplexity"):
        if summary.get(key) is not None:
            pairs.append((key.replace("_", " "), summary[key]))
    if run.get("model_version_id"):
        pairs.append(("model version", run["model_version_id"]))
    fields(pairs)
    if run.get("model_version_id"):
        out().print(f"Deploy it: hub models deploy {run['model_version_id']} staging", markup=False)


@app.command("create")
def create(
    dataset_version: int = typer.Option(None, "--dataset-version", "-v", help="Dataset version id to train on."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Or a dataset (id or name): the hub trains on its "
                                                              "current version."),
    base_model: str = typer.Option(None, "--base-model", "-m", help="Base model id (default: the hub's default)."),
    method: str = typer.Option("lora", "--method", help="lora, full, scratch, dpo, kto, grpo, grow."),
    backend: str = typer.Option("local", "--backend", help="local or together."),
    name: str = typer.Option(None, "--name", help="A name for the run."),
    learning_rate: float = typer.Option(None, "--lr", "--learning-rate", help="Learning rate, e.g. 1e-4."),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the data."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(None, "--batch-size", help="Examples per step."),
    lora_r: int = typer.Option(None, "--lora-r", help="LoRA rank."),
    max_seq_len: int = typer.Option(None, "--max-seq-len", help="Longest sequence in tokens."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Any other hyperparameter, key=value (repeat)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it with a live progress bar until it ends."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Queue a training run. A bad value is reported by field, and nothing is created."""
    if dataset_version is None and dataset is None:
        raise typer.BadParameter("Give --dataset-version ID or --dataset NAME_OR_ID.")
    hyperparameters = {**parse_params(param)}
    for key, value in (("learning_rate", learning_rate), ("epochs", epochs), ("max_steps", max_steps),
                       ("batch_size", batch_size), ("lora_r", lora_r), ("max_seq_len", max_seq_len)):
        if value is not None:
            hyperparameters[key] = value
    with hub() as h:
        dataset_id = h.datasets.find(dataset)["id"] if dataset is not None and dataset_version is None else None
        run = h.runs.create(dataset_version_id=dataset_version, dataset_id=dataset_id, base_model=base_model,
                            method=method, backend=backend, name=name, hyperparameters=hyperparameters)
        if watch:
            err().print(f"Run {run['id']} queued ({run['name']}).", markup=False)
            _watch(h, run["id"], as_json)
            return
    if as_json:
        emit_json(run)
        return
    out().print(f"Run {run['id']} queued ({run['name']}, {run['total_steps']} steps). "
                f"Follow it: hub runs watch {run['id']}", markup=False)


@app.command("watch")
def watch(run_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Follow a run until it ends: phase, step, loss, ETA, elapsed. Exit status 1 unless it succeeded."""
    with hub() as h:
        _watch(h, run_id, as_json)


@app.command("cancel")
def cancel(run_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Stop a run (a queued one at once, a running one at its next step; its checkpoints are kept)."""
    with hub() as h:
        run = h.runs.cancel(run_id)
    if as_json:
        emit_json(run)
        return
    state = "cancelled" if run["status"] == "cancelled" else f"{run['status']}, cancel requested"
    out().print(f"Run {run_id}: {state}.", markup=False)


@app.command("list")
def list_(
    status: str = typer.Option(None, "--status",
                               help="queued, running, succeeded, failed, cancelled (comma-separated)."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Runs, newest first."""
    with hub() as h:
        rows = h.runs.list(status=status, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table(rows, RUN_COLUMNS, empty="No runs yet: hub runs create --dataset NAME --watch")


@app.command("show")
def show(run_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """One run, with its metrics in --json."""
    with hub() as h:
        run = h.runs.get(run_id)
    if as_json:
        emit_json(run)
        return
    _print_result(run)
