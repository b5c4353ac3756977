"""Exports over /api, the command line and the pages: shapes, statuses, the job on the gpu queue, download (a folder
as a zip), delete, 404s in the API's error shape, `manage.py export_model --json`, the version page's section."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.registry.exports_fixtures import lora_version, remote_version, tiny_adapter_dir  # noqa: F401

pytestmark = pytest.mark.django_db
KEYS = {"id", "model_version_id", "model_version_name", "status", "format", "quantization", "path", "size_bytes",
        "checks", "checks_summary", "timings", "llama_cpp_version", "error", "job_id", "phase", "progress",
        "download_url", "created_by", "created_at", "finished_at"}


@pytest.fixture
def api(api_key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")  # a member


@pytest.fixture
def admin_api(admin_key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {admin_key}")


def _stub_queue(name: str) -> list:
    import dramatiq

    queue = dramatiq.get_broker().queues.get(name)
    return [dramatiq.Message.decode(m) for m in list(queue.queue)] if queue is not None else []


def test_post_queues_a_job_on_the_gpu_queue_and_get_follows_it(api, lora_version, django_capture_on_commit_callbacks):
    import dramatiq

    from apps.registry.exports.run import export_run

    dramatiq.get_broker().flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/models/{lora_version.pk}/exports", {"format": "adapter"}, content_type="application/json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert set(body) == KEYS
    assert body["status"] == "queued" and body["format"] == "adapter" and body["quantization"] is None
    assert body["job_id"] and body["path"] is None and body["download_url"] is None
    messages = _stub_queue("gpu")
    assert len(messages) == 1
    message = messages[0]
    assert message.actor_name == "export_model_version" and list(message.args) == [body["id"]]

    export_run(export_id=body["id"])  # what the gpu worker does with the message
    r = api.get(f"/api/exports/{body['id']}")
    done = r.json()
    assert r.status_code == 200 and done["status"] == "succeeded", done
    assert done["path"] == str(settings.ARTIFACT_ROOT / f"exports/ex-{body['id']}/adapter")
    assert done["size_bytes"] > 0 and done["checks"]["greedy_agreement"] == 1.0
    assert "greedy agreement 4/4" in done["checks_summary"]
    assert done["download_url"] == f"/api/exports/{body['id']}/download" and done["job_id"] == body["job_id"]
    listed = api.get(f"/api/models/{lora_version.pk}/exports").json()
    assert [e["id"] for e in listed] == [body["id"]]

    r = api.get(done["download_url"])
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
    names = archive.namelist()
    assert f"ex-{body['id']}-adapter/adapter_config.json" in names
    assert archive.testzip() is None
    assert json.loads(archive.read(f"ex-{body['id']}-adapter/adapter_config.json"))["r"] == 4

    r = api.delete(f"/api/exports/{body['id']}")
    assert r.status_code == 204
    assert not (settings.ARTIFACT_ROOT / f"exports/ex-{body['id']}").exists()
    r = api.get(f"/api/exports/{body['id']}")
    assert r.status_code == 404 and r.json()["code"] == "not_found" and r.json()["detail"]


def test_api_input_errors(api, lora_version, remote_version):
    r = api.post(f"/api/models/{remote_version.pk}/exports", {"format": "gguf", "quantization": "q8_0"},
                 content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "version_id"
    assert "elsewhere" in r.json()["errors"][0]["message"]
    r = api.post(f"/api/models/{lora_version.pk}/exports", {"format": "gguf", "quantization": "q2_xxs"},
                 content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantization"
    assert "q4_k_m" in r.json()["errors"][0]["message"] and "q8_0" in r.json()["errors"][0]["message"]
    r = api.post(f"/api/models/{lora_version.pk}/exports", {"format": "onnx"}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format"
    r = api.post(f"/api/models/{lora_version.pk}/exports", {"format": "merged", "quantization": "q8_0"},
                 content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantization"
    assert api.post("/api/models/999999/exports", {"format": "merged"},
                    content_type="application/json").status_code == 404
    for url in ("/api/exports/999999", "/api/exports/999999/download", "/api/models/999999/exports"):
        r = api.get(url)
        assert r.status_code == 404 and set(r.json()) >= {"detail", "code"}, url
    assert api.delete("/api/exports/999999").status_code == 404


def test_download_and_delete_wait_for_the_job_and_delete_is_the_creators(api, admin_api, lora_version, make_user):
    from apps.registry.exports import services

    other = make_user("other")
    export = services.export_create(actor=other, model_version_id=lora_version.pk, format="merged")
    assert api.get(f"/api/exports/{export.pk}/download").status_code == 409
    assert admin_api.delete(f"/api/exports/{export.pk}").status_code == 409  # queued: cancel it first
    export.status = "failed"
    export.save(update_fields=["status"])
    r = api.delete(f"/api/exports/{export.pk}")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert admin_api.delete(f"/api/exports/{export.pk}").status_code == 204


def test_gguf_manifest_path_is_recorded_once_and_moves_on_delete(lora_version, tmp_path):
    from apps.registry.exports import services
    from apps.registry.models import Export

    manifest = settings.ARTIFACT_ROOT / "models" / f"mv-{lora_version.pk}" / "hub_model.json"
    gguf = tmp_path / "a.gguf"
    gguf.write_bytes(b"GGUF")
    assert services.manifest_record_gguf(lora_version.pk, gguf) is True
    assert services.manifest_record_gguf(lora_version.pk, tmp_path / "b.gguf") is False  # it has one already
    data = json.loads(manifest.read_text())
    assert data["gguf_path"] == str(gguf.resolve()) and data["name"] == f"mv-{lora_version.pk}"
    other = settings.ARTIFACT_ROOT / "exports" / "ex-77" / "b-f16.gguf"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"GGUF")
    Export.objects.create(model_version=lora_version, format="gguf", quantization="f16", status="succeeded",
                          path="exports/ex-77/b-f16.gguf")
    services.manifest_forget_gguf(lora_version.pk, tmp_path / "unrelated.gguf")  # not its file: nothing changes
    assert json.loads(manifest.read_text())["gguf_path"] == str(gguf.resolve())
    services.manifest_forget_gguf(lora_version.pk, gguf)
    assert json.loads(manifest.read_text())["gguf_path"] == str(other.resolve())


def test_command_json_prints_the_result_and_exits_non_zero_on_failure(lora_version, remote_version, admin_user,
                                                                       capsys):
    call_command("export_model", f"mv-{lora_version.pk}", "--format", "merged", "--json")
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"status", "path", "size_bytes", "checks"}
    assert out["status"] == "succeeded" and out["path"].startswith(str(settings.ARTIFACT_ROOT))
    assert (settings.ARTIFACT_ROOT / out["path"]).joinpath("config.json").is_file()
    assert out["size_bytes"] > 0 and out["checks"]["greedy_agreement"] == 1.0
    call_command("export_model", "tiny lora", "--format", "adapter")  # by name, words instead of JSON
    words = capsys.readouterr().out
    assert "succeeded" in words and "Checks: perplexity ±0.0 % · greedy agreement 4/4" in words
    with pytest.raises(SystemExit) as exit_:
        call_command("export_model", str(remote_version.pk), "--format", "gguf", "--json")
    assert exit_.value.code == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["status"] == "failed" and "version_id" in failed["error"] and failed["path"] is None
    with pytest.raises(SystemExit) as exit_:
        call_command("export_model", "no-such-version", "--format", "merged", "--json")
    assert exit_.value.code == 1 and "No model version" in json.loads(capsys.readouterr().out)["error"]


def test_version_page_section_form_errors_and_export_page(client, member, lora_version):
    from apps.registry.exports import services
    from apps.registry.models import Export

    client.force_login(member)
    r = client.get(f"/models/{lora_version.pk}/")
    html = r.content.decode()
    assert r.status_code == 200 and 'id="exports"' in html and "No exports yet." in html
    r = client.post(f"/models/{lora_version.pk}/exports", {"format": "gguf", "quantization": "q2_xxs"})
    assert r.status_code == 422 and "Select a valid choice" in r.content.decode()
    r = client.post(f"/models/{lora_version.pk}/exports", {"format": "adapter", "quantization": "q8_0"})
    assert r.status_code == 302  # the hidden quantization select is ignored for other formats
    export = Export.objects.get()
    assert export.format == "adapter" and export.quantization == ""
    r = client.get(f"/models/{lora_version.pk}/")
    html = r.content.decode()
    assert f'id="export-{export.pk}"' in html and 'hx-trigger="every 2s"' in html  # live while it is queued
    from apps.registry.exports.run import export_run

    export_run(export_id=export.pk)
    html = client.get(f"/models/{lora_version.pk}/exports/list").content.decode()
    assert "every 2s" not in html and "greedy agreement 4/4" in html and "Download" in html
    page = client.get(f"/models/exports/{export.pk}/")
    text = page.content.decode()
    assert page.status_code == 200 and "Round-trip checks" in text and 'id="bundles"' in text
    assert f'hx-get="/models/exports/{export.pk}/bundles"' in text and "Peak memory" in text
    assert client.get("/models/exports/999999/").status_code == 404
    r = client.get(f"/models/exports/{export.pk}/download")
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    r = client.post(f"/models/exports/{export.pk}/delete")
    assert r.status_code == 302 and not Export.objects.filter(pk=export.pk).exists()
    assert services.export_job(export.pk) is not None  # the job stays on the Jobs page
