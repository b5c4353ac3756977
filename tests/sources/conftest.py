"""Tiny git repositories built in tmp_path for the sources app's tests, and helpers that run a source's jobs
the way the worker does (the stub broker holds the messages; the tests call the actors' bodies)."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests import git_repos
from tests.git_repos import CALC, ENV, git  # noqa: F401  (the tests import them from here)


def _march(n: int) -> str:
    return f"2024-03-{n:02d}T10:00:00+0000"


class Repo(git_repos.Repo):
    """Commits dated 2024-03-01, 03-02, …"""

    def __init__(self, path: Path):
        super().__init__(path, date_of=_march)


TEXT = '''"""Text helpers."""


def slugify(text):
    """Turn a title into a lower-case slug joined by dashes."""
    words = [w for w in text.lower().split() if w]
    return "-".join(words)


def shout(text, times=1):
    """Upper-case the text and add exclamation marks."""
    if times < 1:
        raise ValueError("times must be at least 1")
    return text.upper() + "!" * times


def count_vowels(text):
    """Count the vowels of a text."""
    total = 0
    for ch in text.lower():
        if ch in "aeiou":
            total += 1
    return total
'''

TEST_CALC = '''from calc import add, clamp, is_adult, Stack


def test_add():
    assert add(2, 3) == 5


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_is_adult():
    assert is_adult(18)
    assert not is_adult(17)


def test_stack():
    s = Stack()
    assert s.push(1) == 1
    assert s.pop() == 1
'''

README = '''# Calc

A tiny calculator library for the tests.

## Installation

Copy `calc.py` into your project; it has no dependencies.

## Usage

Call `add(2, 3)` to add numbers, and `clamp(v, lo, hi)` to keep a value in a range.

## Development

Run the tests with `python -m pytest`.
'''


MIT = """MIT License

Copyright (c) 2024 Ada

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""


@pytest.fixture
def repo(tmp_path) -> Repo:
    """A small Python repository with three commits (code, tests, docs)."""
    r = Repo(tmp_path / "calc")
    r.commit("Add the calculator", {"calc.py": CALC, "LICENSE": MIT})
    r.commit("Add text helpers", {"textutil.py": TEXT})
    r.commit("Add tests and a README", {"test_calc.py": TEST_CALC, "README.md": README})
    return r


@pytest.fixture
def make_archive(tmp_path):
    """make_archive(name, {member: text}) -> a zip (or .tar.gz) path; members may be unsafe on purpose."""
    def _make(name: str, members: dict[str, str]) -> Path:
        path = tmp_path / name
        if name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as zf:
                for m, text in members.items():
                    zf.writestr(m, text)
        else:
            with tarfile.open(path, "w:gz") as tf:
                for m, text in members.items():
                    data = text.encode()
                    info = tarfile.TarInfo(m)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return path
    return _make


@pytest.fixture
def run_jobs():
    """Run every queued analysis / generation of the sources app as the worker would (in order)."""
    def _run():
        from apps.core.models import Job
        from apps.sources.services import analysis_process, generation_process

        done = []
        for job in Job.objects.filter(kind__in=("source.analyse", "source.generate"), status="queued").order_by("pk"):
            if job.kind == "source.analyse":
                done.append(analysis_process(analysis_id=job.target_id))
            else:
                done.append(generation_process(generation_id=job.target_id))
        return done
    return _run


@pytest.fixture
def owner_client(client, member):
    client.force_login(member)
    return client
