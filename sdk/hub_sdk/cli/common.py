"""What every `hub` command shares: the client built from the global options, JSON or table output, the
`--json` option, and the group that turns every `HubError` into a message (never a traceback)."""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Iterable

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from hub_sdk.errors import HubError, NotConfigured, ValidationError

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON (for scripts).")


class Settings:
    url: str | None = None
    api_key: str | None = None
    quiet: bool = False
    transport = None  # an httpx transport for every client the commands make (tests: httpx.MockTransport)


settings = Settings()


def hub():
    from hub_sdk.client import Hub

    return Hub(url=settings.url, api_key=settings.api_key, transport=settings.transport)


def out() -> Console:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a pipe or a file: no reason to wrap tables at 80 columns
    return console


def err() -> Console:
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def show_progress() -> bool:
    return not settings.quiet


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def table(rows: Iterable[dict], columns: list[tuple[str, str]], *, title: str | None = None,
          empty: str = "Nothing yet.") -> None:
    """Rows as a table; `columns` = [(header, key or callable-free dotted key)]."""
    rows = list(rows)
    console = out()
    if not rows:
        console.print(empty)
        return
    t = Table(title=title, title_justify="left", header_style="bold")
    for header, _ in columns:
        t.add_column(header, overflow="fold")
    for row in rows:
        t.add_row(*(fmt(dig(row, key)) for _, key in columns))
    console.print(t)


def dig(row: dict, key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def fmt(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), f"{value:.4g}")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "–"
    text = str(value)
    if len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T":  # ISO timestamps: to the minute
        return text[:16].replace("T", " ")
    return text


def fields(pairs: list[tuple[str, Any]]) -> None:
    """Label: value lines."""
    console = out()
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        console.print(f"{key + ':':<{width + 1}} {fmt(value)}", markup=False)


def report_error(exc: HubError) -> None:
    console = err()
    status = f" ({exc.status})" if exc.status and not isinstance(exc, ValidationError) else ""
    console.print(Text.assemble(("Error: ", "red"), exc.headline + status))
    for e in exc.errors:
        if e.get("message") != exc.headline:
            console.print(f"  {e.get('field') or '(request)'}: {e.get('message')}", markup=False)
    if isinstance(exc, NotConfigured):
        console.print("  hub login --url http://HOST:8000   (or export HUB_URL=... HUB_API_KEY=...)", markup=False)


class HubGroup(TyperGroup):
    """The root group: a `HubError` (or a file that cannot be read or written) ends the command with its message
    on stderr and exit status 1; Ctrl-C with 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HubError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
        except OSError as exc:
            err().print(Text.assemble(("Error: ", "red"), str(exc)))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err().print("Interrupted.")
            raise typer.Exit(130) from None


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):
        return False


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """key=value pairs; values as JSON when they parse (1e-5, 3, true, [1,2]), else as strings."""
    out_: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value.")
        try:
            out_[key.strip()] = json.loads(value)
        except ValueError:
            out_[key.strip()] = value
    return out_
