"""Shared rows and helpers of the deploy-bundle tests (tests/registry/test_bundles*.py): a tiny model version with
lineage (run, dataset version whose most common system prompt is DM), Export rows whose files are written in the test
(a fake .gguf, a merged folder with a generation config), and readers of a built bundle's zip. Test modules import
the fixtures they use by name."""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from apps.registry.bundles import services
from apps.registry.models import Bundle, Export
from tests.factories import DatasetVersionFactory, ModelVersionFactory, TrainingRunFactory, qa_example

DM = "You are the Dungeon Master. Keep the game moving."


def with_system(i: int, prompt: str) -> dict:
    return {"messages": [{"role": "system", "content": prompt}, *qa_example(i)["messages"]]}


@pytest.fixture
def version(member, tiny_base_model):
    dv = DatasetVersionFactory(owner=member, examples=[with_system(i, DM) for i in range(3)] + [
        with_system(7, "You are terse."), qa_example(8)], examples__validation=[qa_example(9)])
    run = TrainingRunFactory(owner=member, dataset_version=dv, base_model=tiny_base_model, status="succeeded",
                             name="dragon-run", hyperparameters={"learning_rate": 0.0002, "max_steps": 30, "lora_r": 8})
    return ModelVersionFactory(name="dragon v1", base_model=tiny_base_model, run=run, dataset_version=dv,
                               final_loss=1.25, metrics={"final_loss": 1.25, "eval_loss": 1.5, "perplexity": 4.48},
                               hyperparameters={**run.hyperparameters, "method": "lora"}, created_by=member)


def make_export(version, fmt: str, *, status="succeeded", quantization="", files: dict[str, bytes], **extra) -> Export:
    """An Export row whose files are written here: one file (gguf) or a folder (merged, adapter)."""
    root = Path(settings.ARTIFACT_ROOT) / "exports" / f"mv-{version.pk}-{fmt}{quantization}"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    rel = (root / next(iter(files))) if fmt == "gguf" else root
    return Export.objects.create(model_version=version, format=fmt, quantization=quantization, status=status,
                                 path=str(rel.relative_to(settings.ARTIFACT_ROOT)), size_bytes=1, **extra)


GGUF = b"GGUF" + bytes(range(256)) * 40
CHECKS = {"prompts": 4, "perplexity": {"source": 4.4, "export": 4.5, "delta_pct": 2.1}, "greedy_agreement": 1.0,
          "tool_calls": {"total": 2, "valid": 2, "validity": 1.0}, "reasons": []}


@pytest.fixture
def gguf_export(version):
    return make_export(version, "gguf", quantization="q4_k_m", files={"dragon-v1-q4_k_m.gguf": GGUF}, checks=CHECKS,
                       llama_cpp_version="b6000")


@pytest.fixture
def merged_export(version, tiny_model_dir):
    files = {n: (tiny_model_dir / n).read_bytes() for n in ("config.json", "tokenizer.json", "tokenizer_config.json")}
    files["model.safetensors"] = b"\0" * 5000
    files["generation_config.json"] = json.dumps({"temperature": 0.3, "top_p": 0.85, "top_k": 20,
                                                   "repetition_penalty": 1.05, "max_new_tokens": 100}).encode()
    return make_export(version, "merged", files=files, status="degraded",
                       checks={**CHECKS, "reasons": ["greedy agreement 0.50 is below 0.75"]})


def build_bundle(user, export, config=None) -> Bundle:
    bundle = services.bundle_create(actor=user, export_id=export.pk, config=config)
    return services.bundle_build(bundle_id=bundle.pk)


def members(bundle) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(Path(settings.ARTIFACT_ROOT) / bundle.path) as zf:
        assert zf.testzip() is None
        return {i.filename: i for i in zf.infolist()}


def read(bundle, name: str) -> str:
    with zipfile.ZipFile(Path(settings.ARTIFACT_ROOT) / bundle.path) as zf:
        return zf.read(name).decode()


def extract(bundle, tmp_path) -> Path:
    out = tmp_path / f"bundle-{bundle.pk}"
    with zipfile.ZipFile(Path(settings.ARTIFACT_ROOT) / bundle.path) as zf:
        zf.extractall(out)
    return out


def py_constant(source: str, name: str):
    """The literal value a module assigns to `name` (the example's settings)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned")


def read_bytes(bundle, name: str) -> bytes:
    with zipfile.ZipFile(Path(settings.ARTIFACT_ROOT) / bundle.path) as zf:
        return zf.read(name)
