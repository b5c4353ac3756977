"""`hub models list|show|aliases|deploy|rollback|export`."""
from __future__ import annotations

from pathlib import Path

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, fields, hub, out, show_progress, table

app = typer.Typer(help="Model versions, deployment aliases and exports.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """Model versions, newest first, with the aliases that serve them."""
    with hub() as h:
        rows = h.models.list()
    if as_json:
        emit_json(rows)
        return
    table([{**r, "alias_names": [a["name"] for a in r.get("aliases") or []]} for r in rows],
          [("id", "id"), ("name", "name"), ("kind", "kind"), ("base", "base_model_id"), ("run", "run_id"),
           ("final loss", "final_loss"), ("aliases", "alias_names"), ("created", "created_at")],
          empty="No model versions yet: train one with hub runs create.")


@app.command("show")
def show(version_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """One version: lineage, metrics, deployments."""
    with hub() as h:
        v = h.models.get(version_id)
    if as_json:
        emit_json(v)
        return
    fields([("version", f"{v['id']} {v['name']}"), ("kind", v["kind"]), ("base model", v.get("base_model_id")),
            ("run", v.get("run_id")), ("dataset version", v.get("dataset_version_id")),
            ("final loss", v.get("final_loss")), ("metrics", v.get("metrics")),
            ("aliases", [a["name"] for a in v.get("aliases") or []]), ("artifacts", v.get("artifact_path"))])


@app.command("aliases")
def aliases(as_json: bool = JSON_OPTION) -> None:
    """Deployment aliases and the version each serves."""
    with hub() as h:
        rows = h.models.aliases()
    if as_json:
        emit_json(rows)
        return
    table(rows, [("alias", "name"), ("version", "model_version_id"), ("name", "model_version_name"),
                 ("by", "updated_by"), ("updated", "updated_at"), ("can roll back", "can_rollback")],
          empty="No aliases yet: hub models deploy VERSION_ID staging")


@app.command("deploy")
def deploy(
    version_id: int = typer.Argument(..., help="Model version id."),
    alias: str = typer.Argument(..., help="Alias to point at it, e.g. staging or production."),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the alias's history)."),
    canary: int = typer.Option(None, "--canary", help="Deploy as a canary taking this percent of requests."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Point an alias at a model version (admins). Clients of /v1 ask for the alias as their model."""
    with hub() as h:
        before = {a["name"]: a for a in h.models.aliases()}.get(alias)
        result = h.models.deploy(version_id, alias, reason=reason, canary_percent=canary)
    if as_json:
        emit_json(result)
        return
    was = f" (was version {before['model_version_id']})" if before else ""
    what = f"a {canary}% canary of version {version_id}" if canary else f"version {version_id}"
    out().print(f"{alias} now serves {what}{was}.", markup=False)


@app.command("rollback")
def rollback(
    alias: str = typer.Argument(...),
    to_version: int = typer.Option(None, "--to-version", help="A version the alias served before."),
    to_deployment: int = typer.Option(None, "--to-deployment", help="An earlier deployment's id."),
    reason: str = typer.Option(None, "--reason"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Point an alias back at a version it served before (default: the most recent other one)."""
    with hub() as h:
        before = {a["name"]: a for a in h.models.aliases()}.get(alias)
        result = h.models.rollback(alias, to_version_id=to_version, to_deployment_id=to_deployment, reason=reason)
    if as_json:
        emit_json(result)
        return
    was = f" from version {before['model_version_id']}" if before else ""
    out().print(f"{alias} rolled back{was} to version {result['model_version_id']} ({result['model_version_name']}).",
                markup=False)


@app.command("export")
def export(
    version_id: int = typer.Argument(...),
    format: str = typer.Option("adapter", "--format", "-f", help="adapter, merged or gguf."),
    quantization: str = typer.Option(None, "--quantization", "-q", help="gguf: f16, q8_0 (default), q4_k_m, ..."),
    download: Path = typer.Option(None, "--download", help="Then save it here (a file, or a folder)."),
    wait: bool = typer.Option(True, "--wait/--no-wait"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a version (a job on the worker, with a progress bar), and optionally download it."""
    with hub() as h:
        result = h.models.export(version_id, format, quantization=quantization, wait=wait or download is not None,
                                 progress=show_progress())
        saved = h.models.download_export(result["id"], download, progress=show_progress()) if download else None
    if as_json:
        emit_json({**result, "downloaded_to": str(saved) if saved else None})
        return
    pairs = [("export", result["id"]), ("status", result["status"]), ("format", result["format"]),
             ("checks", result.get("checks_summary")), ("path on the hub", result.get("path")),
             ("size", f"{result['size_bytes']:,} bytes" if result.get("size_bytes") else None)]
    if saved:
        pairs.append(("downloaded to", str(saved)))
    fields(pairs)
