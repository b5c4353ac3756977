"""The `hub` command line: `hub login`, `hub datasets …`, `hub runs …`, `hub models …`, `hub generate …`,
`hub reviews …`, `hub do "…"`. Every listing takes --json; progress bars go to stderr, results to stdout; a refused
request prints the hub's message and field errors and exits with status 1 (never a traceback)."""
from __future__ import annotations

import typer

from hub_sdk import __version__
from hub_sdk.cli import auth, datasets, do, evaluations, generate, models, reviews, runs
from hub_sdk.cli.common import JSON_OPTION, HubGroup, emit_json, hub, out, settings, table

app = typer.Typer(cls=HubGroup, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Training Hub from the command line: data in, models out.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hub {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    url: str = typer.Option(None, "--url", help="The hub (default: HUB_URL, or what `hub login` saved)."),
    api_key: str = typer.Option(None, "--api-key", help="API key (default: HUB_API_KEY, or what `hub login` saved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    settings.url, settings.api_key, settings.quiet = url, api_key, quiet


app.command("login")(auth.login)
app.command("logout")(auth.logout)
app.command("whoami")(auth.whoami)
app.add_typer(datasets.app, name="datasets")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.command("generate")(generate.generate)
app.add_typer(generate.sources_app, name="sources")
app.add_typer(reviews.app, name="reviews")
app.add_typer(evaluations.app, name="evaluations")
app.command("do")(do.do)


@app.command("chat")
def chat(
    model: str = typer.Argument(..., help="A deployed alias (e.g. staging) or a model the hub serves."),
    message: str = typer.Argument(...),
    max_tokens: int = typer.Option(256, "--max-tokens"),
    temperature: float = typer.Option(None, "--temperature"),
    as_json: bool = JSON_OPTION,
) -> None:
    """One chat message through the hub's OpenAI-compatible /v1."""
    params = {"max_tokens": max_tokens}
    if temperature is not None:
        params["temperature"] = temperature
    with hub() as h:
        answer = h.chat(model, message, **params)
    if as_json:
        emit_json(answer)
        return
    choice = (answer.get("choices") or [{}])[0]
    out().print((choice.get("message") or {}).get("content") or "", markup=False)
    if choice.get("finish_reason") == "length":
        out().print(f"[cut off at --max-tokens {max_tokens}]", markup=False)


@app.command("jobs")
def jobs(
    kind: str = typer.Option(None, "--kind", help="A kind or its prefix: training, dataset.import, ..."),
    status: str = typer.Option(None, "--status", help="Comma-separated, or active / finished."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Background jobs (imports, runs, exports, generations), newest first."""
    with hub() as h:
        rows = h.jobs.list(kind=kind, status=status, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table(rows, [("id", "id"), ("kind", "kind_label"), ("target", "target.label"), ("status", "status"),
                 ("phase", "phase"), ("%", "percent"), ("error", "error"), ("created", "created_at")],
          empty="No jobs.")


def main() -> None:
    app(prog_name="hub")


__all__ = ["app", "main"]
