"""Tiny git repositories built in tmp_path for the repository engine's tests."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ENV = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
       "GIT_COMMITTER_EMAIL": "ada@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(repo: Path, *args: str, env: dict | None = None, date: str = "2024-03-01T10:00:00+0000") -> str:
    e = {**os.environ, **ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, **(env or {})}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=e, check=True,
                          capture_output=True, text=True).stdout


class Repo:
    def __init__(self, path: Path):
        self.path = path
        self.n = 0
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
        date = f"2024-{1 + (self.n // 28) % 12:02d}-{1 + self.n % 28:02d}T10:00:00+0000"
        env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.com"} if author else None
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--no-verify", "-m", message, env=env, date=date)
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

TEST_CALC = '''from calc import add, clamp, is_adult, Stack


def test_add():
    assert add(2, 3) == 5
    assert add(-1, 1) == 0


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10
    assert clamp(0, 0, 10) == 0
    assert clamp(10, 0, 10) == 10


def test_is_adult():
    assert is_adult(18)
    assert not is_adult(17)
    assert is_adult(40)


def test_stack():
    s = Stack()
    assert s.push(1) == 1
    assert s.push(2) == 2
    assert s.pop() == 2
    assert s.pop() == 1
'''

UTIL_JS = '''/**
 * Format a price in cents as a string with two decimals.
 */
export function formatPrice(cents) {
  const units = Math.floor(cents / 100);
  const rest = cents % 100;
  return `${units}.${String(rest).padStart(2, "0")}`;
}

// Return the largest value of a list, or null when it is empty.
export function maxOf(values) {
  if (values.length === 0) {
    return null;
  }
  let best = values[0];
  for (const v of values) {
    if (v > best) {
      best = v;
    }
  }
  return best;
}
'''

README = '''# calc

A tiny calculator library used to test the repository engine of the hub. It adds numbers,
clamps values into a range and keeps a stack.

## Installation

Install it with pip from a checkout of the repository, then import the module
called calc in your own code to get addition, clamping and a stack.

```sh
pip install .
```

## Usage

Call add with two numbers to get their sum, or clamp with a value and a range
to keep the value inside that range. The Stack class offers push and pop.

## Table of contents

- [Installation](#installation)
'''

MIT = '''MIT License

Copyright (c) 2024 Ada

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction.

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
'''


def build_sample(path: Path) -> Repo:
    """A small Python + JS project with history: 4 commits, 2 authors."""
    repo = Repo(path)
    repo.commit("Initial import", {"README.md": README, "LICENSE": MIT, "calc.py": CALC.replace(
        "    if value > high:\n        return high\n", "")})
    repo.commit("Add tests for the calculator", {"tests/test_calc.py": TEST_CALC}, author="Bob")
    repo.commit("Fix clamp so values above the range return the upper bound", {"calc.py": CALC})
    repo.commit("feat: add price formatting helpers for the shop", {"web/util.js": UTIL_JS,
                                                                    "config/app.json": '{"name": "calc", "debug": false}\n'})
    return repo


@pytest.fixture
def sample(tmp_path) -> Repo:
    return build_sample(tmp_path / "calc")
