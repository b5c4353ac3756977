"""Fixtures for training tests: dataset versions built with the factories (fast, no import pipeline)."""
from __future__ import annotations

import pytest

from tests.factories import DatasetVersionFactory, qa_example as _qa


def make_version(owner, examples: list[dict], *, name="qa", validation: list[dict] | None = None, errors=None):
    return DatasetVersionFactory(owner=owner, dataset__name=name, examples=examples,
                                 examples__validation=validation or [],
                                 validation={"errors": errors or [], "warnings": []})


@pytest.fixture
def qa_version(member):
    return make_version(member, [_qa(i) for i in range(24)], validation=[_qa(i) for i in range(24, 28)])


@pytest.fixture
def qa_version_factory(member):
    def _make(n=24, start=0, name="qa", validation=4, **kw):
        return make_version(member, [_qa(i) for i in range(start, start + n)], name=name,
                            validation=[_qa(i) for i in range(start + n, start + n + validation)], **kw)
    return _make
