"""A deployed version gets a GGUF so llama.cpp serves it: the deploy asks for a serving export (once), or — on a
machine without llama.cpp — a "llamacpp.build" job on the default queue first, which compiles it (with progress,
cancel, and the compiler's last lines when it fails) and then asks for the deployed versions' GGUFs."""
from __future__ import annotations

import stat
import sys

import pytest
from django.db import transaction

from apps.core.models import Job
from apps.registry.models import Export
from tests.registry.exports_fixtures import lora_version, remote_version, tiny_adapter_dir  # noqa: F401
from tests.inference.test_llamacpp_toolchain import CMAKE_FAIL, CMAKE_OK, fake_cmake

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def serving_on(settings, tmp_path, monkeypatch):
    settings.HUB_SERVING_GGUF = "f16"
    settings.HUB_INFERENCE_VLLM_LORA = False
    settings.HUB_MODEL_CACHE = tmp_path / "cache"
    monkeypatch.delenv("HUB_LLAMA_CPP_DIR", raising=False)
    return settings


@pytest.fixture
def llama_here(serving_on, tmp_path, monkeypatch):
    folder = tmp_path / "llama"
    folder.mkdir()
    exe = folder / "llama-server"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'print(\"version: 11434\")'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("HUB_LLAMA_CPP_DIR", str(folder))


def deploy(version, admin, alias="production"):
    from apps.registry.services import alias_deploy

    with transaction.atomic():
        alias_deploy(actor=admin, version_id=version.pk, alias=alias)


def serving_exports(version):
    return list(Export.objects.filter(model_version=version, format="gguf"))


def test_a_deploy_asks_for_one_f16_gguf_export(llama_here, lora_version, admin_user):
    deploy(lora_version, admin_user)
    (export,) = serving_exports(lora_version)
    assert export.quantization == "f16" and export.status == "queued"
    assert Job.objects.filter(kind="registry.export", target_id=export.pk, queue_name="gpu").exists()
    deploy(lora_version, admin_user, alias="staging")  # a second alias on the same version: nothing new
    assert len(serving_exports(lora_version)) == 1


def test_no_serving_export_when_off_remote_or_vllm(llama_here, lora_version, remote_version, admin_user, settings):
    deploy(remote_version, admin_user)
    assert serving_exports(remote_version) == []
    settings.HUB_INFERENCE_VLLM_LORA = True
    deploy(lora_version, admin_user)
    settings.HUB_INFERENCE_VLLM_LORA = False
    settings.HUB_SERVING_GGUF = "off"
    deploy(lora_version, admin_user, alias="staging")
    assert serving_exports(lora_version) == []


def test_without_llama_cpp_a_deploy_queues_one_build_on_the_default_queue(serving_on, lora_version, admin_user):
    deploy(lora_version, admin_user)
    deploy(lora_version, admin_user, alias="staging")
    builds = Job.objects.filter(kind="llamacpp.build")
    assert builds.count() == 1 and builds[0].queue_name == "default" and builds[0].status == "queued"
    assert serving_exports(lora_version) == []  # the export waits for the build


def test_the_build_job_compiles_then_asks_for_the_deployed_versions_gguf(serving_on, lora_version, admin_user,
                                                                      tmp_path, monkeypatch):
    from apps.registry.exports.llamacpp_job import llamacpp_build_run

    fake_cmake(tmp_path, monkeypatch, CMAKE_OK)
    deploy(lora_version, admin_user)
    job = Job.objects.get(kind="llamacpp.build")
    llamacpp_build_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.progress["version"] == "b11434"
    assert job.progress.get("current") == 3 and job.progress.get("total") == 3
    (export,) = serving_exports(lora_version)
    assert export.quantization == "f16"


def test_a_failed_build_fails_its_job_with_the_compilers_last_line(serving_on, lora_version, admin_user, tmp_path,
                                                                    monkeypatch):
    from apps.registry.exports.llamacpp_job import llamacpp_build_request, llamacpp_build_run

    fake_cmake(tmp_path, monkeypatch, CMAKE_FAIL)
    with transaction.atomic():
        job = llamacpp_build_request(actor=admin_user)
    llamacpp_build_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "Compiling llama.cpp failed" in job.error
    assert "ninja: build stopped" in job.error or "expected ';'" in job.progress["log_tail"]
    assert "ggml.c:42:7: error: expected ';'" in job.progress["log_tail"]
    assert serving_exports(lora_version) == []
