"""Deploy bundles (apps/registry/bundles): the zip of an export holds the model files, deployment_config.json, the
tool registry, examples that fit the format (and work: Python compiles, `bash -n` passes, the JSON literals load, the
OpenAI client runs against a stub /v1, the transformers example chats with the tiny model), test_results.json and a
model card that names its lineage; values typed by people cannot break out of any file; a failure, a cancel or a full
disk leaves no zip (nor a partial one). The API, the fragment and the job: test_bundles_api.py."""
from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.exceptions import ValidationFailed
from apps.registry.bundles import build, facts, services
from apps.registry.models import Tool
from tests.factories import BaseModelFactory
from tests.registry.bundle_fixtures import (  # noqa: F401 - fixtures are used by name
    DM, GGUF, build_bundle, extract, gguf_export, make_export, members, merged_export, py_constant, read, read_bytes,
    version)

pytestmark = pytest.mark.django_db


def test_gguf_bundle_has_every_file_and_the_settings(member, version, gguf_export, tmp_path):
    Tool.objects.create(name="lookup_rule", description="Look a rule up.", origin="admin",
                        parameters={"type": "object", "properties": {"rule": {"type": "string"}}, "required": ["rule"]})
    bundle = build_bundle(member, gguf_export, {"temperature": 0.2, "max_tokens": 128})
    assert bundle.status == "succeeded", bundle.error
    assert bundle.path == f"bundles/dragon-v1-gguf-q4_k_m-b{bundle.pk}.zip" and bundle.size_bytes > len(GGUF)
    files = members(bundle)
    assert set(files) == {"model/dragon-v1-q4_k_m.gguf", "deployment_config.json", "tools.json", "TOOLS.md",
                          "test_results.json", "README.md", "examples/openai_client.py", "examples/client.ts",
                          "examples/llama_server.sh", "examples/Modelfile"}
    assert files["model/dragon-v1-q4_k_m.gguf"].compress_type == zipfile.ZIP_STORED
    assert files["README.md"].compress_type == zipfile.ZIP_DEFLATED
    assert read_bytes(bundle, "model/dragon-v1-q4_k_m.gguf") == GGUF

    config = json.loads(read(bundle, "deployment_config.json"))
    assert config["temperature"] == 0.2 and config["max_tokens"] == 128  # asked for
    assert (config["top_p"], config["top_k"], config["repeat_penalty"]) == (0.9, 40, 1.1)  # the sensible defaults
    assert config["system_prompt"] == DM and config["system_prompt_source"] == "dataset"  # the most common one
    assert config["context_length"] == 256  # the tiny base model's
    assert (config["served_name"], config["format"], config["quantization"], config["llama_cpp_version"]) == (
        f"mv-{version.pk}", "gguf", "q4_k_m", "b6000")

    from apps.registry.tools.selectors import tool_docs_markdown, tool_registry_export

    tools = json.loads(read(bundle, "tools.json"))
    assert tools == json.loads(json.dumps(tool_registry_export(), default=str))
    assert "lookup_rule" in {t["name"] for t in tools["tools"]} and "roll" in {t["name"] for t in tools["tools"]}
    docs = read(bundle, "TOOLS.md")
    assert docs.strip() == tool_docs_markdown().strip() and "lookup_rule" in docs

    results = json.loads(read(bundle, "test_results.json"))
    assert results["export"]["checks"]["greedy_agreement"] == 1.0 and results["export"]["passed"] is True
    assert results["model_version"]["metrics"]["eval_loss"] == 1.5 and results["validation"]["perplexity"] == 4.48

    out = extract(bundle, tmp_path)
    shell = out / "examples/llama_server.sh"
    assert subprocess.run(["bash", "-n", str(shell)], capture_output=True).returncode == 0
    text = shell.read_text()
    assert "-m model/dragon-v1-q4_k_m.gguf" in text and "--jinja -c 256" in text and "--temp 0.2" in text
    assert "--top-k 40" in text and "-n 128" in text and f"--alias mv-{version.pk}" in text
    assert files["examples/llama_server.sh"].external_attr >> 16 & 0o111  # executable
    modelfile = (out / "examples/Modelfile").read_text()
    assert "FROM ../model/dragon-v1-q4_k_m.gguf" in modelfile  # relative to the Modelfile, as Ollama reads it
    assert (out / "examples" / "../model/dragon-v1-q4_k_m.gguf").resolve().is_file()
    assert "PARAMETER temperature 0.2" in modelfile and "PARAMETER num_ctx 256" in modelfile
    assert 'TEMPLATE """' in modelfile and "<|im_start|>{{ .Role }}" in modelfile  # the tiny model is ChatML
    assert f'SYSTEM """{DM}"""' in modelfile
    client = (out / "examples/openai_client.py").read_text()
    compile(client, "openai_client.py", "exec")
    assert py_constant(client, "SYSTEM_PROMPT") == DM and py_constant(client, "SAMPLING")["temperature"] == 0.2
    assert py_constant(client, "TOOL")["type"] == "function"
    ts = (out / "examples/client.ts").read_text()
    assert json.loads(re.search(r"const systemPrompt: string = (.*);", ts).group(1)) == DM
    assert 'from "openai"' in ts and ts.count("{") == ts.count("}") and ts.count("(") == ts.count(")")
    assert not (out / "examples/transformers_example.py").exists()


def test_merged_bundle_takes_the_generation_config_and_its_card_names_the_lineage(member, version, merged_export,
                                                                                   tmp_path):
    bundle = build_bundle(member, merged_export, {"system_prompt": ""})  # degraded exports can be bundled
    assert bundle.status == "succeeded", bundle.error
    names = set(members(bundle))
    assert {"model/config.json", "model/model.safetensors", "model/generation_config.json",
            "examples/transformers_example.py", "examples/openai_client.py", "examples/client.ts"} <= names
    assert not {"examples/llama_server.sh", "examples/Modelfile"} & names
    config = json.loads(read(bundle, "deployment_config.json"))
    assert (config["temperature"], config["top_p"], config["top_k"], config["repeat_penalty"], config["max_tokens"]) \
        == (0.3, 0.85, 20, 1.05, 100)
    assert config["system_prompt"] == "" and config["system_prompt_source"] == "none"
    example = read(bundle, "examples/transformers_example.py")
    compile(example, "transformers_example.py", "exec")
    assert "apply_chat_template" in example and "AutoModelForCausalLM" in example and "peft" not in example
    assert py_constant(example, "MAX_TOKENS") == 100 and py_constant(example, "SYSTEM_PROMPT") == ""
    card = read(bundle, "README.md")
    run, dv = version.run, version.dataset_version
    assert f"run {run.pk} (dragon-run)" in card and "lora on local" in card
    assert (f"{dv.dataset.name} v{dv.number} (dataset version {dv.pk}): 6 examples, 5 for training and 1 held "
            "out") in card
    assert "learning\\_rate" in card and "0.0002" in card and "eval\\_loss" in card
    assert "degraded" in card and "greedy agreement 0.50 is below 0.75" in card
    assert "license: see base model" in card and "License: see base model" in card
    assert "python examples/transformers_example.py" in card
    results = json.loads(read(bundle, "test_results.json"))
    assert results["export"]["passed"] is False and results["export"]["reasons"]


def test_adapter_bundle_loads_with_peft(member, version):
    export = make_export(version, "adapter", files={"adapter_config.json": json.dumps(
        {"base_model_name_or_path": "/somewhere/tiny", "r": 8}).encode(), "adapter_model.safetensors": b"\0" * 100})
    bundle = build_bundle(member, export)
    assert bundle.status == "succeeded", bundle.error
    example = read(bundle, "examples/transformers_example.py")
    compile(example, "transformers_example.py", "exec")
    assert "PeftModel.from_pretrained" in example
    assert py_constant(example, "SYSTEM_PROMPT") == DM


def test_license_comes_from_the_base_folder_or_the_known_table(tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# A model\n")
    assert facts.base_license(BaseModelFactory(id="some-base", path=str(folder))) == "mit"
    smol = BaseModelFactory(id="smollm2-135m-instruct", name="SmolLM2-135M-Instruct")
    assert facts.base_license(smol) == "Apache-2.0"
    assert facts.base_license(BaseModelFactory(id="mystery")) == "see base model"


def test_values_typed_by_people_cannot_break_out_of_any_example(member, version, gguf_export, tmp_path):
    version.name = 'evil """ \\N{x} \n $(touch /tmp/pwned) `x` */ name'
    version.save(update_fields=["name"])
    prompt = 'Say """hi""" and \'bye\' $(rm -rf /) `id` \\n\\N{bad}\nline two </script> ${x}'
    bundle = build_bundle(member, gguf_export, {"system_prompt": prompt})
    assert bundle.status == "succeeded", bundle.error
    out = extract(bundle, tmp_path)
    client = (out / "examples/openai_client.py").read_text()
    assert py_constant(client, "SYSTEM_PROMPT") == prompt
    shell = out / "examples/llama_server.sh"
    assert subprocess.run(["bash", "-n", str(shell)], capture_output=True).returncode == 0
    assert "rm -rf" not in shell.read_text()  # the prompt is not in the command; the name only in comments
    assert all(line.startswith("#") for line in shell.read_text().splitlines() if "touch" in line)
    ts = (out / "examples/client.ts").read_text()
    assert json.loads(re.search(r"const systemPrompt: string = (.*);", ts).group(1)) == prompt
    modelfile = (out / "examples/Modelfile").read_text()
    system = modelfile[modelfile.index('SYSTEM """') + 10:]
    assert system.count('"""') == 1 and "Say '''hi'''" in system  # Ollama's triple quotes cannot be escaped
    assert json.loads(read(bundle, "deployment_config.json"))["system_prompt"] == prompt
    assert "evil" in read(bundle, "README.md") and "\\`x\\`" in read(bundle, "README.md")


class _StubV1(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _StubV1.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        message = {"role": "assistant", "content": "I am the dragon."}
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": name, "arguments": '{"dice": "d20"}'}}]}
        data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_client_example_runs_against_a_stub_v1(member, version, gguf_export, tmp_path):
    pytest.importorskip("openai")
    bundle = build_bundle(member, gguf_export, {"top_k": 7})
    out = extract(bundle, tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubV1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _StubV1.seen = []
    try:
        env = {"HUB_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1", "HUB_API_KEY": "th_test",
               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "examples/openai_client.py"], cwd=out, env=env, capture_output=True,
                              text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "I am the dragon." in done.stdout and "tool call: " in done.stdout
    first, second = _StubV1.seen
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer th_test"
    assert first["body"]["model"] == f"mv-{version.pk}" and first["body"]["top_k"] == 7
    assert first["body"]["messages"][0] == {"role": "system", "content": DM}
    assert second["body"]["tools"][0]["type"] == "function"


def test_a_failure_midway_leaves_no_zip_and_says_why(member, version, gguf_export, monkeypatch):
    monkeypatch.setattr(build, "CHUNK", 1024)
    seen_partial = []

    def disk_full(**kwargs):
        partials = list((Path(settings.ARTIFACT_ROOT) / "bundles").glob(".*.partial"))
        seen_partial.append(bool(partials))
        if len(seen_partial) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(services.job_services, "job_progress", disk_full)
    bundle = build_bundle(member, gguf_export)
    assert seen_partial[:3] == [True, True, True]  # it was being written...
    assert bundle.status == "failed" and "disk filled up" in bundle.error and not bundle.path
    assert list((Path(settings.ARTIFACT_ROOT) / "bundles").iterdir()) == []  # ...and nothing is left


def test_a_cancel_midway_leaves_no_zip(member, version, gguf_export, monkeypatch):
    from apps.core.jobs import services as job_services
    from apps.registry.bundles.selectors import bundle_job_id

    monkeypatch.setattr(build, "CHUNK", 1024)
    monkeypatch.setattr(services, "STOP_POLL_S", 0.0)
    bundle = services.bundle_create(actor=member, export_id=gguf_export.pk, config={})
    job_id = bundle_job_id(bundle.pk)
    monkeypatch.setattr(services.job_services, "job_progress", lambda **kw: job_services.job_request_cancel(
        user=None, job_id=job_id, as_system=True))
    bundle = services.bundle_build(bundle_id=bundle.pk)
    assert bundle.status == "cancelled" and not bundle.path
    assert list((Path(settings.ARTIFACT_ROOT) / "bundles").iterdir()) == []


def test_too_little_disk_space_fails_before_writing(member, version, gguf_export, monkeypatch):
    monkeypatch.setattr(build.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    bundle = build_bundle(member, gguf_export)
    assert bundle.status == "failed" and "Not enough disk space" in bundle.error
    assert list((Path(settings.ARTIFACT_ROOT) / "bundles").iterdir()) == []


def test_files_gone_before_the_build_fail_it_cleanly(member, version, gguf_export):
    bundle = services.bundle_create(actor=member, export_id=gguf_export.pk)
    (Path(settings.ARTIFACT_ROOT) / gguf_export.path).unlink()
    bundle = services.bundle_build(bundle_id=bundle.pk)
    assert bundle.status == "failed" and "no longer on disk" in bundle.error
    with pytest.raises(ValidationFailed, match="no longer on disk"):  # and a new one is refused up front
        services.bundle_create(actor=member, export_id=gguf_export.pk)


def test_transformers_example_chats_with_a_merged_export(member, version, tiny_model_dir, tmp_path):
    """The merged example loads the bundle's own weights and answers through the chat template (the tiny model)."""
    export = make_export(version, "merged", files={p.name: p.read_bytes() for p in tiny_model_dir.iterdir()
                                                   if p.is_file()})
    bundle = build_bundle(member, export, {"temperature": 0.0, "max_tokens": 4})
    out = extract(bundle, tmp_path)
    done = subprocess.run([sys.executable, "examples/transformers_example.py", "Roll for initiative"], cwd=out,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
                               "TRANSFORMERS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
