"""Progress display for uploads, imports, runs, exports and generations, on stderr (stdout stays for results).

`Tracker` is one bar: on a terminal a live rich progress bar; elsewhere (a pipe, CI, a log) one plain line per
phase and a last line at the end, so logs stay readable; disabled, nothing. `ProgressFile` wraps a file being
uploaded and advances a tracker as httpx reads it."""
from __future__ import annotations

import os
import time
from typing import IO, Any, Literal

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

Kind = Literal["bytes", "steps", "count"]


def stderr_console() -> Console:
    return Console(stderr=True)


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = max(0, int(round(value)))
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min {value % 60:02d} s"
    return f"{value // 3600} h {value % 3600 // 60:02d} min"


def _columns(kind: Kind) -> list:
    if kind == "bytes":
        return [TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn()]
    if kind == "steps":
        return [TextColumn("{task.description:<11}", markup=False), BarColumn(), TextColumn("step"),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("ETA {task.fields[eta]}"),
                TextColumn("elapsed {task.fields[elapsed]}")]
    return [TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[message]}", markup=False), TimeElapsedColumn()]


_DEFAULT_FIELDS = {"steps": {"loss": "–", "eta": "–", "elapsed": "–"}, "count": {"message": ""}, "bytes": {}}


class Tracker:
    """One progress bar. `update(completed=, total=, description=, **fields)`; `close(final_line=)`."""

    def __init__(self, description: str, *, kind: Kind = "count", total: float | None = None,
                 enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.kind = kind
        self.description = description
        self.console = console or stderr_console()
        self.fields: dict[str, Any] = dict(_DEFAULT_FIELDS[kind])
        self.completed: float = 0
        self.total = total
        self._progress: Progress | None = None
        self._last_line = ""
        if not enabled:
            return
        if self.console.is_terminal:
            self._progress = Progress(*_columns(kind), console=self.console, transient=False,
                                      refresh_per_second=4)
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, **self.fields)

    def update(self, *, completed: float | None = None, total: float | None = None, advance: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        if completed is not None:
            self.completed = completed
        if advance:
            self.completed += advance
        if total is not None:
            self.total = total
        changed = description is not None and description != self.description
        if description is not None:
            self.description = description
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=self.completed, total=self.total,
                                  description=self.description, **self.fields)
        elif changed:
            self._line()

    def _line(self) -> None:
        if self.kind == "bytes":
            line = f"{self.description} {_human_bytes(self.completed)}" + (
                f" / {_human_bytes(self.total)}" if self.total else "")
        elif self.kind == "steps":
            line = (f"{self.description}: step {int(self.completed)}/{int(self.total or 0)}  loss {self.fields['loss']}"
                    f"  ETA {self.fields['eta']}  elapsed {self.fields['elapsed']}")
        elif self.total or self.completed:
            total = f"/{self.total:g}" if self.total else ""
            line = f"{self.description}: {self.completed:g}{total} {self.fields.get('message') or ''}".rstrip()
        else:
            line = self.description
        if line != self._last_line:
            self.console.print(line, markup=False, highlight=False)
            self._last_line = line

    def close(self) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        else:
            self._line()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _human_bytes(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class ProgressFile:
    """A binary file whose reads advance `tracker` (httpx reads an upload in chunks). fileno/seek/tell are the
    file's own, so httpx still sends a Content-Length (the hub refuses an oversized upload from it)."""

    def __init__(self, f: IO[bytes], tracker: Tracker):
        self._f = f
        self._tracker = tracker

    def read(self, size: int = -1) -> bytes:
        chunk = self._f.read(size)
        if chunk:
            self._tracker.update(advance=len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._f.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def __iter__(self):
        while chunk := self.read(64 * 1024):
            yield chunk


class Poller:
    """Sleeps between polls: `interval` seconds, and raises WaitTimeout past `timeout` (None: no limit)."""

    def __init__(self, what: str, *, interval: float = 1.0, timeout: float | None = None):
        self.what = what
        self.interval = interval
        self.deadline = time.monotonic() + timeout if timeout else None
        self.timeout = timeout

    def sleep(self) -> None:
        from hub_sdk.errors import WaitTimeout

        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WaitTimeout(f"{self.what} did not finish within {format_seconds(self.timeout)}; it goes on "
                              "in the hub.", code="wait_timeout")
        time.sleep(self.interval)
