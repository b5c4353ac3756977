"""The issue-2 path: upload a chat JSONL through /api and the form, examples stored, selectors."""
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets import selectors, services
from apps.datasets.models import Dataset, DatasetVersion

from .conftest import chat, good_rows

pytestmark = pytest.mark.django_db


def _upload(api, content: bytes, name="Support chats", filename="chats.jsonl", **extra):
    return api.post("/api/datasets", {"file": SimpleUploadedFile(filename, content), "name": name, **extra})


def _jsonl(rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_upload_jsonl_returns_version_with_report_and_stores_examples(api, settings):
    r = _upload(api, _jsonl(good_rows(12)))
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["id"] == body["version_id"] and body["dataset_id"]
    assert body["status"] == "ready" and body["example_count"] == 12 and body["format"] == "jsonl"
    assert body["validation"]["errors"] == []
    v = DatasetVersion.objects.get(pk=body["id"])
    assert v.examples.count() == 12 and len(v.content_hash) == 64
    raw = Path(settings.ARTIFACT_ROOT) / v.source_file
    assert raw.read_bytes() == _jsonl(good_rows(12))  # the raw upload is kept


def test_non_jsonl_upload_fails_cleanly_and_keeps_raw(api, settings):
    r = _upload(api, b"\x00\x01\x02binary\xff" * 50, filename="weights.bin")
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "failed" and "binary" in body["error"]
    assert body["validation"]["errors"][0]["code"] == "binary_file"
    v = DatasetVersion.objects.get(pk=body["id"])
    assert v.examples.count() == 0
    assert (Path(settings.ARTIFACT_ROOT) / v.source_file).exists()


def test_rows_with_errors_are_reported_with_lines(api):
    rows = good_rows(11) + ['{"messages": [{"role": "user", "content": "hi"}', chat("a", "b") | {"extra": 1}]
    r = _upload(api, _jsonl(rows), target="together")
    body = r.json()
    codes = {(e["code"], e["line"]) for e in body["validation"]["errors"]}
    assert ("truncated_json", 12) in codes or ("invalid_json", 12) in codes
    assert ("unexpected_column", 13) in codes
    assert body["has_errors"] is True


def test_missing_name_and_file_are_field_errors(api):
    r = api.post("/api/datasets", {"file": SimpleUploadedFile("x.jsonl", _jsonl(good_rows(2)))})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
    r = api.post("/api/datasets", {"name": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    r = _upload(api, _jsonl(good_rows(2)), target="martian")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target"
    assert not Dataset.objects.exists()


def test_upload_over_limit_refused_from_header(api, settings):
    settings.HUB_MAX_UPLOAD_MB = 1
    r = _upload(api, b'{"text": "x"}\n' * 90000)
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "file"
    assert not Dataset.objects.exists()


def test_unauthenticated_is_401(client):
    assert client.get("/api/datasets").status_code == 401


def test_list_detail_versions_examples_export(api):
    body = _upload(api, _jsonl(good_rows(30))).json()
    ds = body["dataset_id"]
    lst = api.get("/api/datasets").json()
    assert lst[0]["id"] == ds and lst[0]["latest_version"]["id"] == body["id"]
    detail = api.get(f"/api/datasets/{ds}").json()
    assert detail["latest"]["id"] == body["id"] and len(detail["versions"]) == 1
    assert api.get(f"/api/datasets/{ds}/versions").json()[0]["number"] == 1
    page = api.get(f"/api/datasets/{ds}/examples?page=2&page_size=7").json()
    assert page["count"] == 30 and page["pages"] == 5 and len(page["results"]) == 7
    assert page["results"][0]["index"] == 7
    q = api.get(f"/api/datasets/{ds}/examples?q=decorators").json()
    assert q["count"] >= 1 and all("decorators" in json.dumps(x["messages"]) for x in q["results"])
    val = api.get(f"/api/datasets/{ds}/examples?split=validation&page_size=200").json()
    train = api.get(f"/api/datasets/{ds}/examples?split=train&page_size=200").json()
    assert val["count"] + train["count"] == 30
    exp = api.get(f"/api/datasets/{ds}/export?format=openai")
    assert exp.status_code == 200
    lines = b"".join(exp.streaming_content).decode().splitlines()
    assert len(lines) == 30 and json.loads(lines[0]) == good_rows(30)[0]
    tog = b"".join(api.get(f"/api/datasets/{ds}/export?format=together").streaming_content).decode().splitlines()
    assert json.loads(tog[0])["messages"][0]["role"] == "user"
    assert api.get(f"/api/datasets/{ds}/export?format=csv").status_code == 422
    assert api.get("/api/datasets/99999").status_code == 404


def test_selectors_contract(member):
    v = services.dataset_import(user=member, name="d", file=SimpleUploadedFile("d.jsonl", _jsonl(good_rows(40))))
    got = selectors.version_get(user=member, version_id=v.pk)
    assert got.pk == v.pk
    everything = list(selectors.version_training_examples(version=v))
    assert len(everything) == 40 and set(everything[0]) == {"messages", "tools"}
    assert everything[0]["messages"][0] == {"role": "user", "content": good_rows(40)[0]["messages"][0]["content"]}
    tr = list(selectors.version_training_examples(version=v, split="train"))
    va = list(selectors.version_training_examples(version=v, split="validation"))
    assert len(tr) + len(va) == 40 and len(va) >= 1
    assert selectors.version_has_errors(v) is False
    from apps.core.exceptions import NotFound
    with pytest.raises(NotFound):
        selectors.version_get(user=member, version_id=123456)


def test_import_from_path_and_permissions(member, make_user, tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(_jsonl(good_rows(12)))
    v = services.dataset_import(user=member, name="from path", file=str(p))
    assert v.status == "ready"
    other = make_user("mallory", "member")
    from apps.core.exceptions import PermissionDenied
    with pytest.raises(PermissionDenied):
        services.dataset_import(user=other, file=str(p), dataset=v.dataset_id)
    v2 = services.dataset_import(user=member, file=str(p), dataset=v.dataset_id)
    assert v2.number == 2 and v2.dataset_id == v.dataset_id


def test_load_demo_data_is_idempotent(make_user):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("load_demo_data", stdout=io.StringIO())
    make_user("admin", "admin")
    call_command("load_demo_data", stdout=io.StringIO())
    ds = Dataset.objects.get(name="Demo: programming & D&D chat")
    assert ds.owner.username == "admin"
    v = ds.latest_version
    assert v.status == "ready" and v.example_count >= 200 and not selectors.version_has_errors(v)
    call_command("load_demo_data", stdout=io.StringIO())
    assert Dataset.objects.count() == 1 and DatasetVersion.objects.count() == 1


def test_form_upload_and_pages(client, member):
    client.force_login(member)
    r = client.get("/datasets/upload/")
    assert r.status_code == 200 and b"csrfmiddlewaretoken" in r.content
    r = client.post("/datasets/upload/", {"name": "", "file": SimpleUploadedFile("a.jsonl", _jsonl(good_rows(3))),
                                          "target": "local"})
    assert r.status_code == 422 and b"Give the dataset a name" in r.content
    rows = good_rows(12) + [chat("<script>alert(1)</script> what?", "Use <thinking>think</thinking> then "
                                 '<file path="a.py">print(1)</file> and done here now.')]
    r = client.post("/datasets/upload/", {"name": "Form upload", "target": "local",
                                          "file": SimpleUploadedFile("a.jsonl", _jsonl(rows))})
    assert r.status_code == 302
    v = DatasetVersion.objects.get(dataset__name="Form upload")
    page = client.get(r["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert f"/runs/new/?dataset_version={v.pk}" in html
    listing = client.get("/datasets/").content.decode()
    assert "Form upload" in listing
    ex = client.get(f"/datasets/{v.dataset_id}/?version={v.pk}&partial=examples&q=script",
                    HTTP_HX_REQUEST="true").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in ex and "<script>alert(1)" not in ex
    assert "file: a.py" in ex and "thinking" in ex


def test_form_upload_over_limit_is_a_field_message(client, member, settings):
    settings.HUB_MAX_UPLOAD_MB = 1
    client.force_login(member)
    r = client.post("/datasets/upload/", {"name": "big", "target": "local",
                                          "file": SimpleUploadedFile("a.jsonl", b'{"text": "x"}\n' * 90000)})
    assert r.status_code == 413 and b"larger than the 1 MB limit" in r.content
    assert not Dataset.objects.exists()


def test_fix_and_diff_pages(client, member):
    rows = good_rows(10) + [good_rows(1)[0]]
    v = services.dataset_import(user=member, name="dup", file=SimpleUploadedFile("d.jsonl", _jsonl(rows)))
    client.force_login(member)
    r = client.post(f"/datasets/versions/{v.pk}/fix/", {"fix": "drop_exact_duplicates"})
    assert r.status_code == 302
    v2 = DatasetVersion.objects.get(dataset=v.dataset, number=2)
    assert v2.example_count == 10
    page = client.get(f"/datasets/{v.dataset_id}/diff/?a={v.pk}&b={v2.pk}").content.decode()
    assert "0 added · 1 removed · 0 changed" in page
    detail = client.get(f"/datasets/{v.dataset_id}/?version={v.pk}&partial=issues&code=duplicate",
                        HTTP_HX_REQUEST="true").content.decode()
    assert "Exact duplicate of example 1" in detail
    assert client.get(f"/datasets/{v.dataset_id}/export/?version={v2.pk}&kind=report").status_code == 200
    z = client.get(f"/datasets/{v.dataset_id}/export/?version={v2.pk}&kind=categories")
    assert z["Content-Type"] == "application/zip"
    prog = client.get(f"/datasets/versions/{v2.pk}/progress/", HTTP_HX_REQUEST="true")
    assert prog.status_code == 200 and prog["HX-Redirect"].endswith(f"?version={v2.pk}")


def test_api_fix_and_diff(api, member):
    rows = good_rows(10) + [good_rows(1)[0]]
    body = _upload(api, _jsonl(rows)).json()
    r = api.post(f"/api/datasets/versions/{body['id']}/fixes", {"fix": "drop_exact_duplicates"},
                 content_type="application/json")
    assert r.status_code == 201 and r.json()["parent_id"] == body["id"] and r.json()["example_count"] == 10
    d = api.get(f"/api/datasets/{body['dataset_id']}/diff?a={body['id']}&b={r.json()['id']}").json()
    assert d["removed_count"] == 1 and d["added_count"] == 0
    assert api.get(f"/api/datasets/{body['dataset_id']}/examples?code=duplicate&version={body['id']}").json()["count"] == 1


def test_csv_upload_with_column_mapping(api):
    csv = b'q,a\n"What is 2+2?","It is four, as basic arithmetic says."\n"Capital of France?","Paris is the capital city of France."\n'
    r = _upload(api, csv, filename="qa.csv", columns="prompt=q, completion=a")
    assert r.status_code == 201 and r.json()["example_count"] == 2 and r.json()["format"] == "csv"
    r = _upload(api, csv, filename="qa.csv", columns="prompt=q")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "columns"
    r = _upload(api, csv, filename="qa.csv", columns="prompt=nope, completion=a")
    assert r.json()["status"] == "failed" and "nope" in r.json()["error"]


def test_big_form_upload_goes_to_worker_with_live_progress(client, member, settings, django_capture_on_commit_callbacks):
    settings.HUB_DATASET_INLINE_MAX_MB = 0
    client.force_login(member)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/datasets/upload/", {"name": "Big one", "target": "local",
                                              "file": SimpleUploadedFile("big.jsonl", _jsonl(good_rows(30)))})
    assert r.status_code == 302
    v = DatasetVersion.objects.get(dataset__name="Big one")
    assert v.status == "importing"
    page = client.get(r["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page and f"/datasets/versions/{v.pk}/progress/" in page
    from workers.datasets import import_dataset_version
    import_dataset_version(v.pk)
    prog = client.get(f"/datasets/versions/{v.pk}/progress/", HTTP_HX_REQUEST="true")
    assert prog["HX-Redirect"].endswith(f"?version={v.pk}")
    assert "Train on this dataset" in client.get(prog["HX-Redirect"]).content.decode()
