"""`hub reviews list|show|start`: review queues on dataset versions."""
from __future__ import annotations

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, fields, hub, out, table

app = typer.Typer(help="Review queues: people accept, reject or edit examples.", no_args_is_help=True)


def _progress(task: dict) -> str:
    p = task.get("progress") or {}
    return f"{p.get('done', 0):,}/{p.get('total', 0):,} items done ({p.get('decisions', 0):,} decisions)"


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """Review tasks you can see."""
    with hub() as h:
        rows = h.reviews.list()
    if as_json:
        emit_json(rows)
        return
    table([{**r, "done": _progress(r)} for r in rows],
          [("id", "id"), ("name", "name"), ("status", "status"), ("dataset v", "dataset_version_id"),
           ("assignees", "assignees"), ("progress", "done"), ("created", "created_at")],
          empty="No review tasks yet: hub reviews start VERSION_ID --name NAME --assignee USER")


@app.command("show")
def show(task_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    with hub() as h:
        task = h.reviews.get(task_id)
    if as_json:
        emit_json(task)
        return
    fields([("task", f"{task['id']} {task['name']}"), ("status", task["status"]),
            ("dataset version", task["dataset_version_id"]), ("assignees", task["assignees"]),
            ("overlap", task["overlap"]), ("progress", _progress(task)),
            ("result version", task.get("result_version_id"))])


@app.command("start")
def start(
    version_id: int = typer.Argument(..., help="The dataset version to review."),
    name: str = typer.Option(..., "--name", "-n"),
    assignee: list[str] = typer.Option(..., "--assignee", "-a", help="A reviewer's username (repeat)."),
    overlap: int = typer.Option(1, "--overlap", help="Reviewers per item."),
    instructions: str = typer.Option("", "--instructions"),
    label: list[str] = typer.Option(None, "--label", help="A label reviewers may set (repeat)."),
    rating: bool = typer.Option(False, "--rating", help="Reviewers also rate each item 1–5."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Open a review queue over a dataset version's examples."""
    with hub() as h:
        task = h.reviews.start(version_id, name=name, assignees=assignee, overlap=overlap, instructions=instructions,
                               labels=label or None, rating=rating)
        url = h.url
    if as_json:
        emit_json(task)
        return
    out().print(f"Review task {task['id']} “{task['name']}” started for {', '.join(task['assignees'])}: "
                f"{_progress(task)}. Review at {url}/reviews/{task['id']}/", markup=False)
