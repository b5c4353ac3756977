"""Fixtures of the evaluation tests: a tiny LoRA version whose parent is another tiny LoRA version of the same base,
and a dataset version whose validation examples carry an answer (and one carries tests) in their meta."""
from __future__ import annotations

import pytest

from tests.factories import DatasetVersionFactory
from tests.registry.exports_fixtures import make_adapter


@pytest.fixture(scope="session")
def parent_adapter_dir(tiny_model_dir, tmp_path_factory):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("eval-parent") / "adapter", seed=3)


@pytest.fixture(scope="session")
def child_adapter_dir(tiny_model_dir, tmp_path_factory):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("eval-child") / "adapter", seed=4)


@pytest.fixture
def versions(db, tiny_base_model, parent_adapter_dir, child_adapter_dir, member):
    """(child, parent): two adapter versions of the tiny base, the child's lineage naming the parent."""
    from apps.registry.services import model_version_register

    parent = model_version_register(name="tiny parent", kind="adapter", base_model=tiny_base_model,
                                    source_dir=parent_adapter_dir, created_by=member)
    child = model_version_register(name="tiny child", kind="adapter", base_model=tiny_base_model,
                                   source_dir=child_adapter_dir, parent=parent, created_by=member)
    return child, parent


def arithmetic(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


@pytest.fixture
def task_dataset(db, member):
    from apps.datasets.models import Example

    dv = DatasetVersionFactory(owner=member, examples=[arithmetic(i) for i in range(3)],
                               examples__validation=[arithmetic(10 + i) for i in range(3)])
    for ex in Example.objects.filter(version=dv, split="validation"):
        i = 10 + ex.index - 3
        ex.meta = {"kind": "chat", "answer": str(2 * i)}
        ex.save(update_fields=["meta"])
    return dv
