"""`hub datasets upload|list|show|versions|validate`."""
from __future__ import annotations

from pathlib import Path

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, fields, hub, out, show_progress, table

app = typer.Typer(help="Upload datasets, list them, and read their validation reports.", no_args_is_help=True)


def _print_report(version: dict, *, limit: int = 10) -> None:
    val = version.get("validation") or {}
    console = out()
    errors, warnings = val.get("errors") or [], val.get("warnings") or []
    console.print(f"Version {version['id']} (dataset {version['dataset_id']} “{version.get('dataset_name', '')}” "
                  f"v{version['number']}): {version['status']}, {version['example_count']:,} examples, "
                  f"{val.get('error_total', len(errors)):,} errors, {val.get('warning_total', len(warnings)):,} "
                  "warnings", markup=False)
    if version.get("error"):
        console.print(f"  {version['error']}", markup=False)
    for label, issues, total in (("error", errors, val.get("error_total", len(errors))),
                                 ("warning", warnings, val.get("warning_total", len(warnings)))):
        for issue in issues[:limit]:
            where = f"line {issue['line']}" if issue.get("line") else (
                f"example {issue['example']}" if issue.get("example") is not None else "")
            console.print(f"  {label} {issue.get('code', '')} {where}: {issue.get('message', '')}".replace("  :", ":"),
                          markup=False)
        if total > min(len(issues), limit):
            console.print(f"  … and {total - min(len(issues), limit):,} more {label}s (see the dashboard)",
                          markup=False)


@app.command("upload")
def upload(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSONL, JSON, CSV, Parquet…"),
    name: str = typer.Option(None, "--name", "-n", help="Dataset name (default: the file's name)."),
    dataset: int = typer.Option(None, "--dataset", help="Add as a new version of this dataset id."),
    format: str = typer.Option(None, "--format", help="Force a format (default: detected)."),
    split_ratio: float = typer.Option(None, "--split-ratio", help="Share held out for validation (0–0.5)."),
    base_model: str = typer.Option(None, "--base-model", help="Count tokens with this base model's tokenizer."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the worker has imported a large file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Upload a file as a dataset (progress bars for the upload and the import), then print its validation."""
    with hub() as h:
        version = h.datasets.upload(file, name=name, dataset_id=dataset, format=format, split_ratio=split_ratio,
                                    base_model=base_model, wait=wait, progress=show_progress())
    if as_json:
        emit_json(version)
        return
    _print_report(version)
    if version["status"] == "ready" and not version.get("has_errors"):
        out().print(f"Train on it: hub runs create --dataset-version {version['id']} --watch", markup=False)
    elif version["status"] == "ready":
        out().print(f"The errors block training: fix the file and upload it again as a new version "
                    f"(hub datasets upload FILE --dataset {version['dataset_id']}).", markup=False)


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """Your datasets (an admin: all), with their latest version."""
    with hub() as h:
        rows = h.datasets.list()
    if as_json:
        emit_json(rows)
        return
    rows = [{**r, "shown": r.get("current_version") or r.get("latest_version")} for r in rows]
    table(rows, [("id", "id"), ("name", "name"), ("owner", "owner"), ("versions", "version_count"),
                 ("current", "shown.number"), ("version id", "shown.id"), ("status", "shown.status"),
                 ("examples", "shown.example_count"), ("errors", "shown.error_count"), ("created", "created_at")],
          empty="No datasets yet: hub datasets upload FILE")


@app.command("show")
def show(dataset: str = typer.Argument(..., help="Dataset id or name."), as_json: bool = JSON_OPTION) -> None:
    """A dataset and its versions."""
    with hub() as h:
        found = h.datasets.find(dataset)
        detail = h.datasets.get(found["id"])
    if as_json:
        emit_json(detail)
        return
    fields([("dataset", f"{detail['id']} {detail['name']}"), ("owner", detail["owner"]),
            ("versions", detail["version_count"]), ("created", detail["created_at"])])
    table(detail.get("versions") or [], [("version id", "id"), ("v", "number"), ("status", "status"),
                                         ("examples", "example_count"), ("errors", "error_count"),
                                         ("warnings", "warning_count"), ("note", "note"), ("created", "created_at")])


@app.command("versions")
def versions(dataset: str = typer.Argument(..., help="Dataset id or name."), as_json: bool = JSON_OPTION) -> None:
    """A dataset's versions, newest first."""
    with hub() as h:
        rows = h.datasets.versions(h.datasets.find(dataset)["id"])
    if as_json:
        emit_json(rows)
        return
    table(rows, [("version id", "id"), ("v", "number"), ("status", "status"), ("examples", "example_count"),
                 ("errors", "error_count"), ("warnings", "warning_count"), ("note", "note"),
                 ("created", "created_at")])


@app.command("validate")
def validate(
    version: int = typer.Argument(None, help="A dataset version id."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Or a dataset (id or name): its current version "
                                                               "(the pinned one, else the newest ready one)."),
    limit: int = typer.Option(10, "--limit", help="Issues shown per kind."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The validation report of a version. Exit status 1 when it has errors (they block training)."""
    if version is None and dataset is None:
        raise typer.BadParameter("Give a version id, or --dataset NAME_OR_ID.")
    with hub() as h:
        if version is None:
            found = h.datasets.find(dataset)
            latest = found.get("current_version") or found.get("latest_version")
            if not latest:
                from hub_sdk.errors import NotFound

                raise NotFound(f"Dataset {dataset} has no version yet.", code="not_found")
            version = latest["id"]
        v = h.datasets.version(version)
    if as_json:
        emit_json({"version_id": v["id"], "status": v["status"], "has_errors": v["has_errors"],
                   "example_count": v["example_count"], **v["validation"]})
    else:
        _print_report(v, limit=limit)
    if v["has_errors"] or v["status"] == "failed":
        raise typer.Exit(1)

