"""Tiny git repositories built in tmp_path (the repository engine's and the sources app's tests)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

ENV = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
       "GIT_COMMITTER_EMAIL": "ada@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(repo: Path, *args: str, env: dict | None = None, date: str = "2024-03-01T10:00:00+0000") -> str:
    e = {**os.environ, **ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, **(env or {})}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=e, check=True,
                          capture_output=True, text=True).stdout


def spread_dates(n: int) -> str:
    """The n-th commit's date, spread over the months of 2024 (history and churn per month)."""
    return f"2024-{1 + (n // 28) % 12:02d}-{1 + n % 28:02d}T10:00:00+0000"


class Repo:
    """A git repository at `path`; `commit` writes files (None deletes one) and commits them, the n-th commit
    dated `date_of(n)`."""

    def __init__(self, path: Path, date_of: Callable[[int], str] = spread_dates):
        self.path = path
        self.n = 0
        self.date_of = date_of
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q")

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for rel, content in files.items():
            p = self.path / rel
            if content is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)

    def commit(self, message: str, files: dict | None = None, *, author: str | None = None) -> str:
        if files:
            self.write(files)
        self.n += 1
        env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.com"} if author else None
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--no-verify", "-m", message, env=env, date=self.date_of(self.n))
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    def show(self, commit: str, path: str) -> str:
        return git(self.path, "show", f"{commit}:{path}")


CALC = '''"""A tiny calculator library."""


def add(a, b):
    """Return the sum of a and b, as plain addition."""
    return a + b


def clamp(value, low, high):
    """Limit value to the closed range from low to high."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def is_adult(age):
    """Tell whether a person of this age is an adult (18 or older)."""
    if age >= 18 and age < 200:
        return True
    return False


class Stack:
    """A last-in, first-out stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        """Put an item on top of the stack and return the new size."""
        self.items.append(item)
        return len(self.items)

    def pop(self):
        """Remove the top item and return it; raise IndexError when empty."""
        if len(self.items) == 0:
            raise IndexError("pop from an empty stack")
        return self.items.pop()
'''
