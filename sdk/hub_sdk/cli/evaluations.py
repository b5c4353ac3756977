"""`hub evaluations start|list|show`: reward-based evaluations of model versions."""
from __future__ import annotations

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, fields, fmt, hub, out, show_progress, table

app = typer.Typer(help="Score a model version's answers with reward components (optionally against another).",
                  no_args_is_help=True)


def _print(ev: dict) -> None:
    summary = ev.get("summary") or {}
    sides = summary.get("sides") or {}
    pairs = [("evaluation", f"{ev['id']} {ev['name']}"), ("status", ev["status"]),
             ("model version", f"{ev['model_version']['id']} {ev['model_version']['name']}"),
             ("tasks", ev["task_count"]), ("preset", ev.get("preset"))]
    if ev.get("compare_to"):
        pairs.append(("compared with", f"{ev['compare_to']['id']} {ev['compare_to']['name']}"))
    for side, values in sides.items():
        pairs.append((f"total ({side})", values.get("total")))
    comparison = (summary.get("comparison") or {}).get("total") or {}
    if comparison:
        pairs.append(("difference", f"{fmt(comparison.get('diff'))} [{fmt(comparison.get('low'))}, "
                                    f"{fmt(comparison.get('high'))}], {comparison.get('wins')} wins, "
                                    f"{comparison.get('losses')} losses, {comparison.get('ties')} ties"))
    if ev.get("error"):
        pairs.append(("error", ev["error"]))
    fields(pairs)


@app.command("start")
def start(
    version_id: int = typer.Argument(..., help="The model version that answers."),
    compare_to: int = typer.Option(None, "--compare-to", help="A second version answering the same tasks."),
    dataset_version: int = typer.Option(None, "--dataset-version", help="Tasks from this version's examples."),
    split: str = typer.Option(None, "--split", help="validation (default) or all."),
    preset: str = typer.Option(None, "--preset", help="autonomous-agent, code, arithmetic, tool-use."),
    max_tasks: int = typer.Option(None, "--max-tasks"),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens"),
    name: str = typer.Option(None, "--name"),
    wait: bool = typer.Option(True, "--wait/--no-wait"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Start an evaluation on the hub's worker and follow it."""
    with hub() as h:
        ev = h.evaluations.create(version_id, compare_to_version_id=compare_to, dataset_version_id=dataset_version,
                                  split=split, preset=preset, max_tasks=max_tasks, max_new_tokens=max_new_tokens,
                                  name=name, wait=wait, progress=show_progress())
    if as_json:
        emit_json(ev)
        return
    _print(ev)


@app.command("list")
def list_(model: int = typer.Option(None, "--model", help="Only those of this model version."),
          as_json: bool = JSON_OPTION) -> None:
    """Evaluations, newest first."""
    with hub() as h:
        rows = h.evaluations.list(model_version_id=model)
    if as_json:
        emit_json(rows)
        return
    table([{**r, "total": ((r.get("summary") or {}).get("sides") or {}).get("a", {}).get("total")} for r in rows],
          [("id", "id"), ("name", "name"), ("status", "status"), ("model", "model_version.name"),
           ("vs", "compare_to.name"), ("tasks", "task_count"), ("total", "total"), ("created", "created_at")],
          empty="No evaluations yet: hub evaluations start VERSION_ID --dataset-version ID")


@app.command("show")
def show(evaluation_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """One evaluation: its totals, and the comparison when it has one."""
    with hub() as h:
        ev = h.evaluations.get(evaluation_id)
    if as_json:
        emit_json(ev)
        return
    _print(ev)
    out().print("Per-task answers and scores: hub evaluations show ID --json, or the dashboard.", markup=False)
