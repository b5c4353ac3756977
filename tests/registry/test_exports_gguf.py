"""GGUF exports with the real llama.cpp (converter, quantizer, llama-server, llama-perplexity): a tiny Llama with
SmolLM2's tokenizer (a pre-tokenizer llama.cpp knows) exported end to end and checked; a model whose tokenizer the
converter does not know fails with the converter's own message and leaves nothing behind.

Skipped, with the reason, where no llama.cpp is built (workers.engine.llamacpp.toolchain.find() is None: CI builds
nothing; `make llama-cpp` or HUB_LLAMA_CPP_DIR provides one) or SmolLM2's tokenizer is not in the model cache."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import DatasetVersionFactory, qa_example
from tests.registry.exports_fixtures import lora_version, make_adapter, tiny_adapter_dir  # noqa: F401

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


def _toolchain():
    from workers.engine.llamacpp import toolchain

    return toolchain.find(model_cache=Path(settings.HUB_MODEL_CACHE))


@pytest.fixture(scope="module")
def tc():
    found = _toolchain()
    if found is None:
        pytest.skip("llama.cpp is not built on this machine (toolchain.find() is None): GGUF exports are not tested")
    return found


@pytest.fixture(scope="module")
def smol_tiny_dir(tmp_path_factory):
    """A 3M-parameter Llama (2 layers, hidden 64) with SmolLM2-135M-Instruct's tokenizer and chat template."""
    src = Path(settings.HUB_MODEL_CACHE) / SMOL
    if not (src / "tokenizer.json").is_file():
        pytest.skip(f"SmolLM2's tokenizer is not in the model cache ({src}): run `make setup`")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("smol-tiny")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    tok = AutoTokenizer.from_pretrained(out)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture
def smol_version(smol_tiny_dir, tmp_path, member):
    from apps.registry.services import base_model_register, model_version_register

    base = base_model_register(model_id="smol-tiny", path=str(smol_tiny_dir))
    dv = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(4)],
                               examples__validation=[qa_example(20 + i) for i in range(4)])
    adapter = make_adapter(smol_tiny_dir, tmp_path / "adapter")
    return model_version_register(name="Smol Tiny LoRA", kind="adapter", base_model=base, source_dir=adapter,
                                  dataset_version=dv, created_by=member)


def _export(version, user, fmt, quantization=None):
    from apps.registry.exports import services

    return services.export_create(actor=user, model_version_id=version.pk, format=fmt, quantization=quantization,
                                  inline=True)


def test_gguf_q8_0_export_end_to_end(tc, smol_version, member):
    from workers.engine.llamacpp import runner

    export = _export(smol_version, member, "gguf", "q8_0")
    assert export.status in ("succeeded", "degraded"), export.error
    gguf = settings.ARTIFACT_ROOT / export.path
    assert export.path == f"exports/ex-{export.pk}/smol-tiny-lora-q8_0.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF" and export.size_bytes == gguf.stat().st_size
    assert export.llama_cpp_version == tc.version
    checks = export.checks
    assert checks["prompts"] == 4 and checks["perplexity"]["export"] > 1 and checks["perplexity"]["source"] > 1
    assert 0.0 <= checks["greedy_agreement"] <= 1.0 and checks["thresholds"]["ppl_delta_pct"] == 3.0
    assert {"merge_s", "convert_s", "check_s", "peak_rss_mb"} <= set(export.timings)
    assert sorted(p.name for p in gguf.parent.iterdir()) == [gguf.name]  # no merged scratch folder left
    manifest = json.loads((settings.ARTIFACT_ROOT / "models" / f"mv-{smol_version.pk}" / "hub_model.json").read_text())
    if export.status == "succeeded":
        assert manifest["gguf_path"] == str(gguf.resolve())
    else:
        assert "gguf_path" not in manifest and checks["reasons"]
    # a stock llama-server answers from the file as the check saw it
    with runner.LlamaServer(tc, gguf, ctx=512, parallel=1) as server:
        first = runner.complete(server.url, "Hello", n_predict=4)
    assert first["tokens_predicted"] >= 1


def test_gguf_from_a_merged_export_reuses_it_and_quantizes(tc, smol_version, member):
    merged = _export(smol_version, member, "merged")
    assert merged.status == "succeeded", merged.error
    export = _export(smol_version, member, "gguf", "q4_k_m")
    assert export.status in ("succeeded", "degraded"), export.error
    assert export.timings["merged_from_export"] == merged.pk and "merge_s" not in export.timings
    assert export.timings["quantize_s"] > 0 and export.checks["thresholds"]["ppl_delta_pct"] == 30.0
    manifest = json.loads((settings.ARTIFACT_ROOT / "models" / f"mv-{smol_version.pk}" / "hub_model.json").read_text())
    assert "gguf_path" not in manifest  # only q8_0 / f16 are served


def test_a_tokenizer_the_converter_does_not_know_fails_with_its_message(tc, lora_version, member):
    export = _export(lora_version, member, "gguf", "f16")
    assert export.status == "failed"
    assert "converter" in export.error and ("not recognized" in export.error or "NotImplementedError" in export.error), \
        export.error
    assert export.path == "" and export.llama_cpp_version == tc.version
    root = settings.ARTIFACT_ROOT / "exports"
    assert sorted(p.name for p in root.iterdir() if p.name != "reference") == []

