"""Fixtures for training tests: dataset versions built with the ORM (fast, no import pipeline)."""
from __future__ import annotations

import hashlib

import pytest


def _qa(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


def make_version(owner, examples: list[dict], *, name="qa", validation: list[dict] | None = None, errors=None):
    from apps.datasets.models import Dataset, DatasetVersion, Example

    ds = Dataset.objects.create(name=name, owner=owner)
    v = DatasetVersion.objects.create(dataset=ds, number=1, status="ready", format="chat-jsonl",
                                      example_count=len(examples) + len(validation or []),
                                      validation={"errors": errors or [], "warnings": []})
    rows = []
    for i, ex in enumerate(examples + (validation or [])):
        split = "validation" if i >= len(examples) else "train"
        rows.append(Example(version=v, index=i, messages=ex["messages"], tools=ex.get("tools"), split=split,
                            content_hash=hashlib.sha256(repr(ex).encode()).hexdigest()))
    Example.objects.bulk_create(rows)
    return v


@pytest.fixture
def qa_version(member):
    return make_version(member, [_qa(i) for i in range(24)], validation=[_qa(i) for i in range(24, 28)])


@pytest.fixture
def qa_version_factory(member):
    def _make(n=24, start=0, name="qa", validation=4, **kw):
        return make_version(member, [_qa(i) for i in range(start, start + n)], name=name,
                            validation=[_qa(i) for i in range(start + n, start + n + validation)], **kw)
    return _make
