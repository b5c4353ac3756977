"""Tiny git repositories built in tmp_path for the repository engine's tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.git_repos import CALC, ENV, Repo, git  # noqa: F401  (the tests import them from here)

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
