"""Fixtures of the export tests (tests/registry/test_exports*.py): a tiny LoRA version with a dataset version that has
a validation split, a remote version, and helpers to run an export's job in the test's process."""
from __future__ import annotations

import pytest

from tests.factories import DatasetVersionFactory, ModelVersionFactory, qa_example


def make_adapter(base_dir, out_dir, *, seed: int = 1):
    """A LoRA adapter on `base_dir` whose B matrices are not zero (so it changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("tiny-adapter") / "adapter")


@pytest.fixture
def lora_version(db, tiny_base_model, tiny_adapter_dir, member):
    """A LoRA version of the tiny base, trained (by its lineage) on a dataset version with 4 validation examples."""
    from apps.registry.services import model_version_register

    dv = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(6)],
                               examples__validation=[qa_example(10 + i) for i in range(4)])
    return model_version_register(name="tiny lora", kind="adapter", base_model=tiny_base_model,
                                  source_dir=tiny_adapter_dir, dataset_version=dv, created_by=member)


@pytest.fixture
def remote_version(db, tiny_base_model):
    return ModelVersionFactory(kind="remote", base_model=tiny_base_model, remote_model_id="acme/ft-123",
                               name="trained at together")
