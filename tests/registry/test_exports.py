"""Exports of a model version run for real (tiny model, tiny LoRA, the job run in this process): the adapter folder and
merged weights written, loaded back and checked against the version; a full disk, a cancel and a failed llama.cpp
build leave nothing half-written; input errors are 422s with field messages."""
from __future__ import annotations

import errno
import json

import pytest
from django.conf import settings

from tests.registry.exports_fixtures import lora_version, remote_version, tiny_adapter_dir  # noqa: F401

pytestmark = pytest.mark.django_db


def _export(version, user, fmt, quantization=None):
    from apps.registry.exports import services

    return services.export_create(actor=user, model_version_id=version.pk, format=fmt, quantization=quantization,
                                  inline=True)


def _leftovers() -> list[str]:
    root = settings.ARTIFACT_ROOT / "exports"
    return sorted(p.name for p in root.iterdir() if p.name != "reference") if root.is_dir() else []


def test_adapter_export_round_trips(lora_version, member):
    from apps.registry.exports.services import export_job

    export = _export(lora_version, member, "adapter")
    assert export.status == "succeeded", export.error
    folder = settings.ARTIFACT_ROOT / export.path
    assert export.path == f"exports/ex-{export.pk}/adapter"
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()  # the base's tokenizer travels with the adapter
    assert export.size_bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    checks = export.checks
    assert checks["prompts"] == 4 and checks["prompt_origin"] == "validation split"
    assert checks["greedy_agreement"] == 1.0 and checks["greedy"]["identical"] == 4
    assert abs(checks["perplexity"]["delta_pct"]) < 1e-3 and checks["perplexity"]["source"] > 1
    assert checks["passed"] and checks["reasons"] == []
    assert {"copy_s", "check_s", "peak_rss_mb", "total_s"} <= set(export.timings)
    assert export.timings["peak_rss_mb"] > 50
    job = export_job(export)
    assert job.status == "succeeded" and job.queue_name == "gpu" and job.actor_name == "export_model_version"
    assert _leftovers() == [f"ex-{export.pk}"]


def test_merged_export_is_sharded_and_loads_back_identical(lora_version, member, settings):
    settings.HUB_EXPORT_MAX_SHARD_SIZE = "200KB"
    export = _export(lora_version, member, "merged")
    assert export.status == "succeeded", export.error
    folder = settings.ARTIFACT_ROOT / export.path
    shards = sorted(p.name for p in folder.glob("*.safetensors"))
    assert len(shards) > 1 and (folder / "model.safetensors.index.json").is_file()
    assert (folder / "chat_template.jinja").is_file() and (folder / "tokenizer.json").is_file()
    gen = json.loads((folder / "generation_config.json").read_text())
    tok = json.loads((folder / "tokenizer.json").read_text())
    im_end = next(t["id"] for t in tok["added_tokens"] if t["content"] == "<|im_end|>")
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert im_end in eos and gen["pad_token_id"] is not None and gen["do_sample"] is True
    # the merged weights answer exactly as base + adapter does
    assert export.checks["greedy_agreement"] == 1.0
    assert abs(export.checks["perplexity"]["delta_pct"]) < 1e-3
    assert export.timings["merge_s"] > 0


def test_a_full_disk_fails_cleanly_and_removes_partial_files(lora_version, member, monkeypatch):
    from apps.registry.exports.services import export_job
    from workers.engine.export import write

    def full(path, data):
        path.write_text("{")  # something was written before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(write, "_write_json", full)
    export = _export(lora_version, member, "merged")
    assert export.status == "failed"
    assert "No space left on the disk" in export.error and "partial files were removed" in export.error
    assert export.path == "" and export.size_bytes is None
    assert _leftovers() == []
    assert export_job(export).error_code == "E_NO_SPACE"

    # once there is room again, the same job is retried (Jobs page) and the re-run starts over
    from apps.core.jobs.services import job_retry
    from apps.registry.exports.run import export_run

    monkeypatch.undo()
    job_retry(user=member, job_id=export_job(export).pk)
    export.refresh_from_db()
    assert (export.status, export.error, export.checks) == ("queued", "", {})
    export = export_run(export_id=export.pk)
    assert export.status == "succeeded" and (settings.ARTIFACT_ROOT / export.path / "config.json").is_file()


def test_a_cancel_during_the_export_stops_it_and_keeps_nothing(lora_version, member, monkeypatch):
    from apps.core.models import Job
    from apps.registry.exports.services import export_job
    from workers.engine.export import write

    real = write.write_merged

    def then_cancel(*args, **kwargs):
        out = real(*args, **kwargs)
        Job.objects.filter(kind="registry.export").update(cancel_requested=True)
        return out

    monkeypatch.setattr(write, "write_merged", then_cancel)
    export = _export(lora_version, member, "merged")
    assert export.status == "cancelled" and export.path == ""
    assert export_job(export).status == "cancelled"
    assert _leftovers() == []


def test_a_failed_llama_cpp_build_shows_the_compilers_last_lines(lora_version, member, monkeypatch):
    from workers.engine.llamacpp import toolchain

    tail = "[57/220] Building CXX object ggml/src/ggml-cpu.cpp.o\nggml-cpu.cpp:12:3: error: expected ';' before '}'\n" \
           "ninja: build stopped: subcommand failed."
    monkeypatch.setattr(toolchain, "find", lambda **kw: None)

    def failing_build(**kwargs):
        kwargs["report"](57, 220, "[57/220] Building CXX object ggml/src/ggml-cpu.cpp.o")
        raise toolchain.LlamaCppError("Compiling llama.cpp failed.", tail)

    monkeypatch.setattr(toolchain, "ensure", failing_build)
    export = _export(lora_version, member, "gguf", "q8_0")
    assert export.status == "failed"
    assert "Compiling llama.cpp failed." in export.error and "expected ';' before '}'" in export.error
    from apps.registry.exports.services import export_job

    job = export_job(export)
    assert job.error_code == "E_LLAMA_CPP" and "ninja: build stopped" in job.error
    assert job.phase == "building llama.cpp" and job.progress["total"] == 220
    assert _leftovers() == []


def test_bad_input_is_a_422_with_field_messages(lora_version, remote_version, member):
    from apps.core.exceptions import ValidationFailed
    from apps.registry.exports import services
    from apps.registry.models import Export

    cases = [
        (remote_version, "gguf", "q8_0", "version_id", "trained and is served elsewhere"),
        (lora_version, "onnx", None, "format", "choose one of adapter, merged, gguf"),
        (lora_version, "gguf", "q3_xs", "quantization", "q4_k_m"),
        (lora_version, "merged", "q8_0", "quantization", "Only GGUF exports are quantized"),
    ]
    for version, fmt, q, field, words in cases:
        with pytest.raises(ValidationFailed) as err:
            services.export_create(actor=member, model_version_id=version.pk, format=fmt, quantization=q)
        assert err.value.errors[0]["field"] == field and words in err.value.errors[0]["message"], err.value.errors
    assert not Export.objects.exists()


def test_a_full_weights_version_has_no_adapter_export(tiny_base_model, tiny_model_dir, member):
    from apps.core.exceptions import ValidationFailed
    from apps.registry.exports import services
    from apps.registry.services import model_version_register

    full = model_version_register(name="full", kind="full", base_model=tiny_base_model, source_dir=tiny_model_dir)
    with pytest.raises(ValidationFailed) as err:
        services.export_create(actor=member, model_version_id=full.pk, format="adapter")
    assert err.value.errors[0]["field"] == "format" and "merged or gguf" in err.value.errors[0]["message"]


def test_the_same_export_twice_while_it_runs_is_a_conflict(lora_version, member):
    from apps.core.exceptions import Conflict
    from apps.registry.exports import services

    first = services.export_create(actor=member, model_version_id=lora_version.pk, format="gguf")
    assert first.quantization == "q8_0" and first.status == "queued"
    with pytest.raises(Conflict):
        services.export_create(actor=member, model_version_id=lora_version.pk, format="gguf", quantization="q8_0")
    assert services.export_create(actor=member, model_version_id=lora_version.pk, format="gguf",
                                  quantization="q4_k_m").quantization == "q4_k_m"
