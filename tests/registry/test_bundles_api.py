"""Deploy bundles over /api and on the export's page: only a succeeded or degraded export can be bundled and bad
settings are 422 field errors (API and service alike); create (202 + job), detail, download (409 before it is
built, 403 for a reviewer); the fragment (full page, htmx fragment, list polling, field errors, CSRF form); the job
kind keeps the Bundle in step, a failed bundle can be retried, and deleting an export's bundles removes their zips."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.registry.bundles import services
from apps.registry.models import Bundle
from tests.factories import ApiKeyFactory
from tests.registry.bundle_fixtures import (  # noqa: F401 - fixtures are used by name
    DM, GGUF, build_bundle, gguf_export, make_export, read, version)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", ["failed", "running", "queued", "cancelled"])
def test_only_succeeded_or_degraded_exports_can_be_bundled(api, version, status):
    export = make_export(version, "gguf", status=status, quantization="f16", files={"x.gguf": GGUF},
                         error="convert_hf_to_gguf.py: unsupported architecture" if status == "failed" else "")
    response = api.post(f"/api/exports/{export.pk}/bundles", {}, content_type="application/json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["errors"][0]["field"] == "export_id" and "Only a succeeded or degraded export" in body["detail"]
    if status == "failed":
        assert "unsupported architecture" in body["detail"]
    assert not Bundle.objects.exists()


def test_bad_settings_are_field_errors(api, member, version, gguf_export):
    url = f"/api/exports/{gguf_export.pk}/bundles"
    bad = api.post(url, {"config": {"temperature": 5, "top_k": -1}}, content_type="application/json")
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"config.temperature", "config.top_k"}
    unknown = api.post(url, {"config": {"temprature": 0.5}}, content_type="application/json")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "config.temprature"
    too_long = api.post(url, {"config": {"max_tokens": 257}}, content_type="application/json")  # context is 256
    assert too_long.status_code == 422 and too_long.json()["errors"] == [
        {"field": "config.max_tokens", "message": "At most the context length, 256 tokens."}]
    with pytest.raises(ValidationFailed) as exc:  # the service checks on its own too (forms, direct callers)
        services.bundle_create(actor=member, export_id=gguf_export.pk,
                               config={"temperature": float("nan"), "top_p": True, "system_prompt": "a\x00b"})
    assert {e["field"] for e in exc.value.errors} == {"config.temperature", "config.top_p", "config.system_prompt"}
    assert not Bundle.objects.exists()


def test_api_create_detail_download(api, client, member, make_user, version, gguf_export):
    created = api.post(f"/api/exports/{gguf_export.pk}/bundles", {"config": {"temperature": 0.0}},
                       content_type="application/json")
    assert created.status_code == 202, created.content
    body = created.json()
    assert body["status"] == "queued" and body["job_id"] and body["download_url"] is None
    assert body["config"]["temperature"] == 0.0 and "hub_base_url" not in body["config"]
    early = api.get(f"/api/bundles/{body['id']}/download")
    assert early.status_code == 409
    services.bundle_build(bundle_id=body["id"])
    detail = api.get(f"/api/bundles/{body['id']}").json()
    assert detail["status"] == "succeeded" and detail["size_bytes"] > 0
    download = api.get(detail["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert f'filename="dragon-v1-gguf-q4_k_m-b{body["id"]}.zip"' in download["Content-Disposition"]
    zipped = b"".join(download.streaming_content)
    assert zipped[:2] == b"PK"
    bundle = Bundle.objects.get(pk=body["id"])
    config = json.loads(read(bundle, "deployment_config.json"))
    assert config["hub"]["base_url"] == "http://testserver/v1"  # where the caller reached the hub
    assert "'http://testserver/v1'" in read(bundle, "examples/openai_client.py")

    reviewer_key = ApiKeyFactory(user=make_user("rita", "reviewer")).plaintext
    auth = {"HTTP_AUTHORIZATION": f"Bearer {reviewer_key}"}
    assert client.get(detail["download_url"], **auth).status_code == 403
    assert client.post(f"/api/exports/{gguf_export.pk}/bundles", {}, content_type="application/json",
                       **auth).status_code == 403
    assert api.get("/api/bundles/999999").status_code == 404
    assert api.post("/api/exports/999999/bundles", {}, content_type="application/json").status_code == 404
    with pytest.raises(PermissionDenied):
        services.bundle_create(actor=make_user("rob", "reviewer"), export_id=gguf_export.pk)


def test_fragment_lists_bundles_and_builds_one_with_field_errors(client, member, make_user, version, gguf_export):
    url = f"/models/exports/{gguf_export.pk}/bundles"
    client.force_login(member)
    page = client.get(url)
    assert page.status_code == 200 and b"<html" in page.content and b"No bundles yet" in page.content
    fragment = client.get(url, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html and 'id="bundles-box"' in html
    assert "csrfmiddlewaretoken" in html and f'hx-post="{url}"' in html and DM in html  # prefilled

    bad = client.post(url, {"system_prompt": DM, "temperature": "9", "top_p": "0.9", "top_k": "40",
                            "repeat_penalty": "1.1", "max_tokens": "99999"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422
    text = bad.content.decode()
    assert "Ensure this value is less than or equal to 2" in text and "less than or equal to 256" in text
    assert not Bundle.objects.exists()

    ok = client.post(url, {"system_prompt": DM, "temperature": "0.4", "top_p": "0.9", "top_k": "40",
                           "repeat_penalty": "1.1", "max_tokens": "64"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200, ok.content[:500]
    bundle = Bundle.objects.get()
    assert f"Bundle {bundle.pk} is queued" in ok.content.decode() and 'hx-trigger="every 3s"' in ok.content.decode()
    assert bundle.config["temperature"] == 0.4 and bundle.config["system_prompt_source"] == "dataset"
    services.bundle_build(bundle_id=bundle.pk)
    listed = client.get(url + "?part=list", HTTP_HX_REQUEST="true").content.decode()
    assert f"/api/bundles/{bundle.pk}/download" in listed and "every 3s" not in listed and "succeeded" in listed

    client.force_login(make_user("rita", "reviewer"))
    seen = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Only admins and members can build bundles." in seen and "<form" not in seen
    assert client.get("/models/exports/999999/bundles").status_code == 404


def test_the_job_kind_keeps_the_bundle_in_step_and_a_failed_one_can_be_retried(member, version, gguf_export):
    from apps.core.jobs import services as job_services
    from apps.registry.bundles.selectors import bundle_job_id

    bundle = services.bundle_create(actor=member, export_id=gguf_export.pk)
    (Path(settings.ARTIFACT_ROOT) / gguf_export.path).rename(Path(settings.ARTIFACT_ROOT) / "moved.gguf")
    assert services.bundle_build(bundle_id=bundle.pk).status == "failed"
    (Path(settings.ARTIFACT_ROOT) / "moved.gguf").rename(Path(settings.ARTIFACT_ROOT) / gguf_export.path)
    job_services.job_retry(user=member, job_id=bundle_job_id(bundle.pk))
    bundle.refresh_from_db()
    assert bundle.status == "queued" and bundle.error == ""
    bundle = services.bundle_build(bundle_id=bundle.pk)
    assert bundle.status == "succeeded" and bundle.finished_at is not None
    assert services.bundle_build(bundle_id=bundle.pk).status == "succeeded"  # a re-delivered message: a no-op


def test_an_exports_zips_can_be_removed_and_a_bundle_deleted_midway_keeps_none(member, version, gguf_export,
                                                                               monkeypatch):
    done = build_bundle(member, gguf_export)
    zip_path = Path(settings.ARTIFACT_ROOT) / done.path
    assert zip_path.is_file()
    assert services.bundle_files_remove(export_id=gguf_export.pk) == 1 and not zip_path.exists()

    other = services.bundle_create(actor=member, export_id=gguf_export.pk)
    monkeypatch.setattr(services.job_services, "job_progress",
                        lambda **kw: Bundle.objects.filter(pk=other.pk).delete())  # the export was deleted meanwhile
    assert services.bundle_build(bundle_id=other.pk) is None
    assert list((Path(settings.ARTIFACT_ROOT) / "bundles").glob("*")) == []
