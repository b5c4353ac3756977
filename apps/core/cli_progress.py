"""Progress bars for management commands that run jobs inline (issue 14: "the management commands that run
long get progress bars too"): `job_progress(stream)` follows every job event this process emits
(apps.core.jobs.services.EVENT_OBSERVERS) and shows one rich bar per job, described by its kind and phase,
with current/total and the job's message. On a stream that is not a terminal (logs, CI, pipes) it prints
one line per phase instead; `enabled=False` (e.g. --json) shows nothing.

    with job_progress(self.stderr._out, enabled=not opts["json"]):
        services.generation_start(..., inline=True)

Commands whose work is no job (prepare_base_model) use `step_progress(stream, title, total=N)`: the same
rich bar over N named steps (`steps.step("loading")` starts the next one), a line per step off a terminal.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def _rich_bar(stream, *, message: bool):
    """The rich Progress both displays draw: description, bar, current/total, (a message,) elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if message:
        columns.append(TextColumn("{task.fields[message]}"))
    return Progress(*columns, TimeElapsedColumn(), console=Console(file=stream), transient=False)


class _Display:
    def __init__(self, stream, *, live: bool):
        self.stream, self.live = stream, live
        self.tasks: dict[int, int] = {}
        self.phases: dict[int, str] = {}
        self.bar = None
        self.lines: list[str] = []  # what the line mode printed (tests read it)
        if live:
            self.bar = _rich_bar(stream, message=True)
            self.bar.start()

    def __call__(self, event: str, payload: dict) -> None:
        job_id = payload.get("job_id")
        kind = _label(str(payload.get("kind") or "job"))
        phase = str(payload.get("phase") or "")
        progress = payload.get("progress") or {}
        total, current = progress.get("total"), progress.get("current")
        message = str(progress.get("message") or "")[:60]
        description = f"{kind} · {phase}" if phase else kind
        if not self.live:
            if self.phases.get(job_id) != phase and phase:
                line = f"{description}" + (f" ({message})" if message else "")
                self.lines.append(line)
                print(line, file=self.stream, flush=True)
            self.phases[job_id] = phase
            return
        task = self.tasks.get(job_id)
        if task is None:
            task = self.bar.add_task(description, total=None, message="")
            self.tasks[job_id] = task
        numeric = isinstance(total, (int, float)) and total > 0
        self.bar.update(task, description=description, message=message,
                        total=float(total) if numeric else None,
                        completed=float(current) if isinstance(current, (int, float)) else 0)
        if payload.get("status") in ("succeeded", "failed", "cancelled"):
            done = self.bar.tasks[task].total if numeric else 1
            self.bar.update(task, total=done, completed=done, description=f"{kind} · {payload['status']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextlib.contextmanager
def job_progress(stream=None, *, enabled: bool = True, live: bool | None = None) -> Iterator[_Display | None]:
    """Show the progress of the jobs this process runs while the block runs (see the module docstring)."""
    if not enabled:
        yield None
        return
    from apps.core.jobs.services import EVENT_OBSERVERS

    stream = stream or sys.stderr
    display = _Display(stream, live=stream.isatty() if live is None else live)
    EVENT_OBSERVERS.append(display)
    try:
        yield display
    finally:
        EVENT_OBSERVERS.remove(display)
        display.close()


class _Steps:
    """A bar over a known number of named steps (see step_progress)."""

    def __init__(self, stream, title: str, total: int, *, live: bool):
        self.stream, self.title, self.total, self.live = stream, title, total, live
        self.done = -1  # steps finished; -1 until the first one starts
        self.current = ""
        self.lines: list[str] = []
        self.bar = self.task = None
        if live:
            self.bar = _rich_bar(stream, message=False)
            self.task = self.bar.add_task(title, total=total)
            self.bar.start()

    def step(self, description: str) -> None:
        """The previous step is done; `description` runs now."""
        self.done = min(self.done + 1, self.total)
        self.current = description
        text = f"{self.title} · {description}"
        if self.bar is not None:
            self.bar.update(self.task, description=text, completed=self.done)
        else:
            line = f"{text} ({self.done + 1}/{self.total})"
            self.lines.append(line)
            print(line, file=self.stream, flush=True)

    def close(self, *, ok: bool) -> None:
        if self.bar is None:
            return
        if ok:
            self.bar.update(self.task, description=f"{self.title} · done", completed=self.total)
        else:  # the error itself is the command's to say
            self.bar.update(self.task, description=f"{self.title} · failed while {self.current or 'starting'}")
        self.bar.stop()


@contextlib.contextmanager
def step_progress(stream=None, title: str = "", *, total: int, enabled: bool = True,
                  live: bool | None = None) -> Iterator[_Steps | None]:
    """A progress display over `total` named steps while the block runs (see the module docstring)."""
    if not enabled:
        yield None
        return
    stream = stream or sys.stderr
    steps = _Steps(stream, title, total, live=stream.isatty() if live is None else live)
    ok = False
    try:
        yield steps
        ok = True
    finally:
        steps.close(ok=ok)


def _label(kind: str) -> str:
    from apps.core.exceptions import NotFound
    from apps.core.jobs.registry import get_kind

    try:
        return get_kind(kind).label or kind
    except NotFound:  # an unknown kind: its name
        return kind
