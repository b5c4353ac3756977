"""The one exception of the repository engine: :class:`RepoError` with a stable ``code``.

Codes are listed in /work/notes/repos-engine.md; the app maps them to field errors or job failures.
"""
from __future__ import annotations


class RepoError(Exception):
    """A clear, user-facing failure. ``code`` is stable (tests and the app match on it)."""

    def __init__(self, code: str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details}


def check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise RepoError("cancelled", "Stopped on request.")


class Progress:
    """Wraps the caller's ``progress(phase, done, total)``: calls it every ``every`` items and at the end."""

    def __init__(self, callback, phase: str, total: int | None, *, every: int = 50):
        self.callback, self.phase, self.total, self.every = callback, phase, total, every
        self.done = 0
        if callback is not None:
            callback(phase, 0, total)

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.callback is not None and (self.done % self.every == 0):
            self.callback(self.phase, self.done, self.total)

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.phase, self.done if self.total is None else self.total, self.total)
