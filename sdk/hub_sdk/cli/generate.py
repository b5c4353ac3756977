"""`hub generate REPOSITORY` and `hub sources list`: training data from a repository."""
from __future__ import annotations

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, fields, hub, out, show_progress, table

sources_app = typer.Typer(help="Repositories registered as sources of training data.", no_args_is_help=True)


def generate(
    repository: str = typer.Argument(..., help="A git URL, a folder the hub can read, or a source id."),
    max_examples: int = typer.Option(None, "--max-examples", "--max-scenarios", help="At most this many scenarios."),
    generator: list[str] = typer.Option(None, "--generator", "-g", help="Only these generators (repeat)."),
    seed: int = typer.Option(None, "--seed"),
    include_tests: bool = typer.Option(None, "--include-tests/--no-tests", help="Scenarios from the tests too."),
    exclude_complex: bool = typer.Option(None, "--exclude-complex", help="Leave out the most complex functions."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the analysis and generation to their end."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Generate training scenarios from a repository into a new dataset version.

    Progress bars follow the analysis and the generation. A path is read by the hub itself, so it must exist on
    the hub's machine; a git URL is cloned by the hub."""
    with hub() as h:
        gen = h.generate(repository, wait=wait, progress=show_progress(), max_examples=max_examples,
                         generators=generator or None, seed=seed, include_tests=include_tests,
                         exclude_complex=exclude_complex)
    if as_json:
        emit_json(gen)
        return
    report = gen.get("report") or {}
    fields([("generation", gen["id"]), ("source", gen["source_id"]), ("status", gen["status"]),
            ("scenarios", report.get("totalScenarios") or (gen.get("summary") or {}).get("examples")),
            ("dataset", gen.get("dataset_id")), ("dataset version", gen.get("dataset_version_id"))])
    if gen.get("dataset_version_id"):
        out().print(f"Train on it: hub runs create --dataset-version {gen['dataset_version_id']} --watch",
                    markup=False)


@sources_app.command("list")
def sources_list(as_json: bool = JSON_OPTION) -> None:
    """Your sources (an admin: all)."""
    with hub() as h:
        rows = h.sources.list()
    if as_json:
        emit_json(rows)
        return
    table([{**r, "repo_names": [x["name"] for x in r.get("repos") or []]} for r in rows],
          [("id", "id"), ("name", "name"), ("kind", "kind"), ("location", "location"), ("repos", "repo_names"),
           ("dataset", "dataset_id"), ("scanned", "scanned_at")],
          empty="No sources yet: hub generate PATH_OR_GIT_URL")


@sources_app.command("generations")
def generations(source: int = typer.Option(None, "--source"), as_json: bool = JSON_OPTION) -> None:
    """Generations, newest first."""
    with hub() as h:
        rows = h.sources.generations(source_id=source)
    if as_json:
        emit_json(rows)
        return
    table(rows, [("id", "id"), ("source", "source_id"), ("status", "status"), ("dataset v", "dataset_version_id"),
                 ("error", "error"), ("created", "created_at")], empty="No generations yet.")
