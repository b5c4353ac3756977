"""/api/sources and /api/generations: register (path, URL, archive), discover, permissions (members own their
sources, admins see all, reviewers add none), analyses and generations as jobs, the estimate, the bundle, and bad
input — each a clear field error with the engine's code, and no row or file left behind."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.models import Job
from apps.datasets.models import Dataset, DatasetVersion
from apps.sources.models import Analysis, Generation, Source, SourceRepo
from tests.factories import ApiKeyFactory
from tests.sources.conftest import Repo, git

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def auth(user):
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiKeyFactory(user=user).plaintext}"}


def nothing_left():
    sources_dir = Path(settings.ARTIFACT_ROOT) / "sources"
    leftovers = [p for p in sources_dir.rglob("*")] if sources_dir.exists() else []
    return (not Source.objects.exists() and not SourceRepo.objects.exists() and not Analysis.objects.exists()
            and not leftovers)


@pytest.fixture
def member_roots(settings, tmp_path):
    settings.HUB_SOURCE_ROOTS = [str(tmp_path)]


def test_member_registers_a_path_and_the_analysis_runs_as_a_job(api, repo, member_roots, run_jobs):
    r = post(api, "/api/sources", {"kind": "path", "location": str(repo.path),
                                   "rules": [{"name": "helpers", "glob": "text*.py"}]})
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["kind"] == "path" and body["repos"][0]["commit"] == repo.head() and body["repos"][0]["role"] == "core"
    assert body["analysis_id"] and body["rules"] == [{"name": "helpers", "glob": "text*.py"}]
    job = Job.objects.get(kind="source.analyse")
    assert job.status == "queued" and job.actor_name == "source_analyse"
    run_jobs()
    a = api.get(f"/api/sources/analyses/{body['analysis_id']}").json()
    assert a["status"] == "succeeded", a
    totals = a["results"]["totals"]
    assert totals["languages"]["Python"]["files"] >= 3 and totals["complexity"]["functions"] >= 8
    assert totals["components"]["helpers"] == 1 and totals["license"]["spdx"] == "MIT"
    assert totals["history"]["commits"] == 3


def test_members_own_their_sources_admins_see_all(client, repo, member, make_user, admin_user, member_roots):
    other = make_user("other", "member")
    r = post(client, "/api/sources", {"kind": "path", "location": str(repo.path), "analyse": False}, **auth(member))
    sid = r.json()["id"]
    assert client.get(f"/api/sources/{sid}", **auth(other)).status_code == 404
    assert client.get("/api/sources", **auth(other)).json() == []
    assert post(client, f"/api/sources/{sid}/analyses", {}, **auth(other)).status_code == 404
    assert client.delete(f"/api/sources/{sid}", **auth(other)).status_code == 404
    assert [s["id"] for s in client.get("/api/sources", **auth(admin_user)).json()] == [sid]
    assert client.get(f"/api/sources/{sid}", **auth(admin_user)).status_code == 200
    reviewer = make_user("rita", "reviewer")
    r = post(client, "/api/sources", {"kind": "path", "location": str(repo.path)}, **auth(reviewer))
    assert r.status_code == 403
    assert client.delete(f"/api/sources/{sid}", **auth(member)).status_code == 204
    assert not Source.objects.exists()


def test_members_may_not_register_paths_outside_the_allowed_roots(api, repo):
    r = post(api, "/api/sources", {"kind": "path", "location": str(repo.path)})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "location"
    assert not Source.objects.exists()


def test_bad_paths_are_field_errors_and_leave_nothing(admin_api, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    for location, code in ((str(plain), "not_a_git_repo"), (str(empty), "empty_repo"),
                           (str(tmp_path / "nope"), "path_not_found"), ("relative/path", "invalid")):
        r = post(admin_api, "/api/sources", {"kind": "path", "location": location})
        assert r.status_code == 422, (location, r.json())
        assert r.json()["code"] == code and r.json()["errors"][0]["field"] == "location", r.json()
    assert nothing_left()


def test_urls_bad_or_unreachable_leave_nothing(admin_api, settings):
    settings.HUB_SOURCE_CLONE_TIMEOUT_S = 20
    r = post(admin_api, "/api/sources", {"kind": "url", "location": "file:///etc"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_url"
    r = post(admin_api, "/api/sources", {"kind": "url", "location": "http://127.0.0.1:9/nothing.git"})
    assert r.status_code == 422, r.json()
    assert r.json()["code"] in ("network_unavailable", "clone_failed") and r.json()["errors"][0]["field"] == "location"
    assert "127.0.0.1" in r.json()["detail"] or "reach" in r.json()["detail"].lower()
    assert nothing_left()


def test_a_url_source_is_cloned_into_the_artifacts_and_removed_with_it(repo, admin_user, settings, monkeypatch):
    """No network in the tests: the engine clones the local repository (file://) in place of the https URL."""
    from apps.sources import services
    from workers.engine import repos as engine

    original = engine.clone
    monkeypatch.setattr(engine, "clone", lambda url, dest, **kw: original(f"file://{repo.path}", dest, **kw))
    src = services.source_create(user=admin_user, kind="url", location="https://example.com/org/calc.git")
    r = src.repos.get()
    assert r.url == "https://example.com/org/calc.git" and r.name == "calc" and r.commit == repo.head()
    assert not Path(r.path).is_absolute() and (Path(settings.ARTIFACT_ROOT) / r.path / "HEAD").is_file()  # a bare clone
    assert services.source_for_location(user=admin_user, location="https://EXAMPLE.com/org/calc") == src
    services.source_delete(user=admin_user, source_id=src.pk)
    assert nothing_left()


def test_archives_upload_and_traversal(admin_api, make_archive):
    zpath = make_archive("proj.zip", {"proj/calc.py": "def add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n",
                                      "proj/README.md": "# Proj\n\nA project.\n"})
    with open(zpath, "rb") as fh:
        r = admin_api.post("/api/sources/archive", {"file": fh, "name": "Proj", "analyse": "false"})
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["kind"] == "archive" and len(body["repos"][0]["commit"]) == 40 and body["archive_name"] == "proj.zip"
    Source.objects.all().delete()
    import shutil

    shutil.rmtree(Path(settings.ARTIFACT_ROOT) / "sources")
    for name, members in (("evil.zip", {"../../evil.py": "x = 1\n"}), ("evil.tar.gz", {"/etc/evil.py": "x = 1\n"}),
                          ("dots.zip", {"a/../../b.py": "x = 1\n"})):
        with open(make_archive(name, members), "rb") as fh:
            r = admin_api.post("/api/sources/archive", {"file": fh})
        assert r.status_code == 422, (name, r.json())
        assert r.json()["code"] == "archive_path_traversal" and r.json()["errors"][0]["field"] == "archive"
    bad = Path(settings.ARTIFACT_ROOT).parent / "not-an-archive.zip"
    bad.write_text("hello")
    with open(bad, "rb") as fh:
        r = admin_api.post("/api/sources/archive", {"file": fh})
    assert r.status_code == 422 and r.json()["code"] in ("archive_corrupt", "archive_unsupported")
    r = admin_api.post("/api/sources/archive", {})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "archive"
    assert nothing_left()


def test_discover_lists_a_core_and_its_plugins(admin_api, tmp_path):
    root = tmp_path / "workspace"
    Repo(root / "core").commit("core", {"core.py": "def run():\n    return 1\n"})
    Repo(root / "plugins" / "plugin-a").commit("a", {"a.py": "def a():\n    return 2\n"})
    Repo(root / "plugins" / "empty-one")  # no commit: skipped
    r = post(admin_api, "/api/sources/discover", {"path": str(root)})
    assert r.status_code == 200, r.json()
    found = r.json()
    assert [f["relative"] for f in found] == ["core", "plugins/plugin-a"]
    r = post(admin_api, "/api/sources", {"kind": "path", "location": str(root), "analyse": False,
                                         "repos": [{"path": "plugins/plugin-a", "role": "plugin"},
                                                   {"path": "core", "role": "core"}]})
    assert r.status_code == 201, r.json()
    assert [(x["name"], x["role"]) for x in r.json()["repos"]] == [("plugins/plugin-a", "plugin"), ("core", "core")]
    r = post(admin_api, "/api/sources", {"kind": "path", "location": str(root), "repos": [{"path": "elsewhere"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "repos"


def test_estimate_and_option_errors(admin_api, repo, run_jobs):
    sid = post(admin_api, "/api/sources", {"kind": "path", "location": str(repo.path)}).json()["id"]
    run_jobs()
    r = post(admin_api, f"/api/sources/{sid}/estimate", {"max_examples": 50, "generators": ["fim", "docstring"]})
    assert r.status_code == 200, r.json()
    est = r.json()["estimate"]
    assert est["based_on_analysis"] and 0 < est["scenarios"] <= 50 and est["seconds"] > 0
    assert set(est["by_generator"]) == {"fim", "docstring"} and est["training"]["together"]["usd"] >= 0
    r = post(admin_api, f"/api/sources/{sid}/estimate", {"teacher": {"endpoint": "hub", "model": "production",
                                                                     "price_in_per_mtok": 1, "price_out_per_mtok": 2}})
    assert r.json()["estimate"]["teacher"]["cost_usd"] > 0
    for body, field in (({"generators": ["nope"]}, "generators"), ({"max_examples": 0}, "max_examples"),
                        ({"test_command": "pytest"}, "run_tests"), ({"run_tests": True}, "test_command"),
                        ({"teacher": {"endpoint": "provider", "model": "x"}}, "teacher.provider_id")):
        r = post(admin_api, f"/api/sources/{sid}/generations", body)
        assert r.status_code == 422, (body, r.json())
        assert r.json()["errors"][0]["field"] == field, r.json()
    assert not Generation.objects.exists()


def test_generation_runs_on_the_worker_and_makes_a_version(admin_api, repo, run_jobs):
    sid = post(admin_api, "/api/sources", {"kind": "path", "location": str(repo.path)}).json()["id"]
    run_jobs()
    r = post(admin_api, f"/api/sources/{sid}/generations", {"max_examples": 15, "seed": 1})
    assert r.status_code == 202, r.json()
    g = r.json()
    assert g["status"] == "queued" and g["estimate"]["scenarios"] > 0
    assert Job.objects.get(pk=g["job"]["id"]).actor_name == "source_generate"
    assert post(admin_api, f"/api/sources/{sid}/generations", {}).status_code == 409  # one at a time
    run_jobs()
    g = admin_api.get(f"/api/generations/{g['id']}").json()
    assert g["status"] == "succeeded", g
    assert g["dataset_version_id"] and g["report"]["totalScenarios"] == g["summary"]["total"] <= 15
    v = DatasetVersion.objects.get(pk=g["dataset_version_id"])
    assert v.status == "ready" and v.job_id == g["job"]["id"] and v.format == "code-scenarios"
    r = admin_api.get(f"/api/generations/{g['id']}/bundle")
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(__import__("io").BytesIO(b"".join(r.streaming_content))).namelist()
    assert "generation-report.json" in names
    listed = admin_api.get(f"/api/generations?source={sid}").json()
    assert [x["id"] for x in listed] == [g["id"]]


def test_cancel_a_queued_generation_leaves_no_version(admin_api, repo, run_jobs):
    sid = post(admin_api, "/api/sources", {"kind": "path", "location": str(repo.path)}).json()["id"]
    run_jobs()
    gid = post(admin_api, f"/api/sources/{sid}/generations", {"max_examples": 5}).json()["id"]
    r = admin_api.post(f"/api/generations/{gid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert not DatasetVersion.objects.exists() and not Dataset.objects.exists()
    assert admin_api.get(f"/api/generations/{gid}/bundle").status_code == 404


def test_a_test_command_never_runs_in_the_web_request(admin_api, repo, run_jobs, monkeypatch):
    """Opting in queues the job: nothing of the repository (generators, its tests) runs while the request is served."""
    from workers.engine import repos as engine

    sid = post(admin_api, "/api/sources", {"kind": "path", "location": str(repo.path), "analyse": False}).json()["id"]
    monkeypatch.setattr(engine, "generate", lambda *a, **k: pytest.fail("generate ran in the web request"))
    monkeypatch.setattr(engine, "run_command", lambda *a, **k: pytest.fail("a command ran in the web request"))
    r = post(admin_api, f"/api/sources/{sid}/generations",
             {"generators": ["mutation"], "run_tests": True, "test_command": "python3 -c 'print(1)'"})
    assert r.status_code == 202 and r.json()["status"] == "queued", r.json()
    assert r.json()["options"]["run_tests"] is True
    assert Job.objects.get(pk=r.json()["job"]["id"]).queue_name == "default"


def test_patch_rules_and_name(admin_api, repo):
    sid = post(admin_api, "/api/sources", {"kind": "path", "location": str(repo.path), "analyse": False}).json()["id"]
    r = admin_api.patch(f"/api/sources/{sid}", json.dumps({"name": "Calc", "rules": [
        {"name": "stacks", "regex": r"class \w+"}, {"name": "text", "glob": "text*.py"}]}),
        content_type="application/json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "Calc" and [x["name"] for x in r.json()["rules"]] == ["stacks", "text"]
    r = admin_api.patch(f"/api/sources/{sid}", json.dumps({"rules": [{"name": "bad", "regex": "("}]}),
                        content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules"
    r = admin_api.patch(f"/api/sources/{sid}", json.dumps({"rules": [{"name": "functions", "glob": "*.py"}]}),
                        content_type="application/json")
    assert r.status_code == 422 and "built-in" in r.json()["detail"]
    assert [x.name for x in Source.objects.get().component_rules.all()] == ["stacks", "text"]
