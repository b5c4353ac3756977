"""The sources pages: list (empty state with the one-click demo, and with data), new source (kinds, Discover,
field errors), a source (repositories, the analysis with its four plots, generations), the options with the
estimate and the launch, a generation (summary, version, diff, bundle, send to review), the provenance page,
and the dataset page's link from an example to its source lines. Members see only their own sources."""
from __future__ import annotations

import pytest
from django.urls import reverse

from apps.sources import services
from apps.sources.models import Generation, Source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def generated(repo, member, settings, tmp_path):
    settings.HUB_SOURCE_ROOTS = [str(tmp_path)]
    src = services.source_create(user=member, kind="path", location=str(repo.path))
    services.analysis_start(user=member, source_id=src.pk, inline=True)
    gen = services.generation_start(user=member, source_id=src.pk, options={"max_examples": 12}, inline=True)
    assert gen.status == "succeeded", gen.error
    return src, gen


def test_empty_list_offers_the_demo_and_one_click_makes_it(owner_client, repo, monkeypatch, run_jobs):
    monkeypatch.setattr("apps.sources.conf.hub_checkout", lambda: repo.path)
    r = owner_client.get(reverse("sources:list"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "No code sources yet" in html and "own code as a sample" in html
    r = owner_client.post(reverse("sources:demo"))
    src = Source.objects.get()
    assert src.demo and r.status_code == 302 and r["Location"] == reverse("sources:detail", args=[src.pk])
    assert owner_client.post(reverse("sources:demo")).status_code == 302 and Source.objects.count() == 1
    run_jobs()
    html = owner_client.get(reverse("sources:list")).content.decode()
    assert "sample" in html and "Use the hub" not in html


def test_new_source_form_errors_and_success(owner_client, repo, tmp_path, settings):
    settings.HUB_SOURCE_ROOTS = [str(tmp_path)]
    assert owner_client.get(reverse("sources:new")).status_code == 200
    (tmp_path / "plain").mkdir()
    r = owner_client.post(reverse("sources:new"), {"kind": "path", "location": str(tmp_path / "plain")})
    assert r.status_code == 422 and "not a git repository" in r.content.decode()
    r = owner_client.post(reverse("sources:new"), {"kind": "url", "location": ""})
    assert r.status_code == 422 and "Give the git URL." in r.content.decode()
    r = owner_client.post(reverse("sources:new"), {"kind": "path", "location": str(repo.path),
                                                   "rules": "helpers: glob text*.py\nbad line"})
    assert r.status_code == 422 and "Rule on line 2" in r.content.decode()
    assert not Source.objects.exists()
    r = owner_client.post(reverse("sources:discover"), {"location": str(repo.path)}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and 'name="repo"' in r.content.decode() and "<html" not in r.content.decode()
    r = owner_client.post(reverse("sources:new"), {"kind": "path", "location": str(repo.path),
                                                   "rules": "helpers: glob text*.py", "repo": [str(repo.path)],
                                                   "core": str(repo.path)})
    src = Source.objects.get()
    assert r.status_code == 302 and r["Location"] == reverse("sources:detail", args=[src.pk])
    assert src.component_rules.get().glob == "text*.py" and src.analyses.count() == 1


def test_source_page_shows_the_analysis_plots_and_generations(owner_client, generated):
    src, gen = generated
    r = owner_client.get(reverse("sources:detail", args=[src.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    for chart in ("chart-languages", "chart-complexity", "chart-components", "chart-churn"):
        assert f'id="{chart}"' in html
    assert html.count("<svg") >= 4 and "source-charts" in html
    assert "Most complex functions" in html and "MIT" in html
    assert f"#{gen.pk}" in html and f"v{gen.dataset_version.number}" in html


def test_generate_page_estimates_and_launches(owner_client, generated):
    src, _ = generated
    r = owner_client.get(reverse("sources:generate", args=[src.pk]))
    assert r.status_code == 200 and "Estimate" in r.content.decode() and "Incremental" in r.content.decode()
    form = {"generators": ["fim"], "max_examples": "5", "seed": "0", "test_timeout": "60", "max_test_runs": "50",
            "include_tests": "on", "action": "estimate"}
    r = owner_client.post(reverse("sources:generate", args=[src.pk]), form, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "~5" in r.content.decode() and "<html" not in r.content.decode()
    r = owner_client.post(reverse("sources:generate", args=[src.pk]), {**form, "test_command": "pytest"},
                          HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "opt in" in r.content.decode()
    r = owner_client.post(reverse("sources:generate", args=[src.pk]), {**form, "action": "launch"})
    gen = Generation.objects.order_by("-pk").first()
    assert r.status_code == 302 and r["Location"] == reverse("sources:generation", args=[gen.pk])
    assert gen.status == "queued" and gen.options["generators"] == ["fim"]
    html = owner_client.get(r["Location"]).content.decode()
    assert f'data-job-id="{gen.job_id}"' in html and "Cancel" in html


def test_generation_page_links_version_diff_bundle_and_review(owner_client, generated, repo):
    src, gen = generated
    html = owner_client.get(reverse("sources:generation", args=[gen.pk])).content.decode()
    v = gen.dataset_version
    assert f"/datasets/{v.dataset_id}/?version={v.pk}" in html
    assert reverse("sources:bundle", args=[gen.pk]) in html
    assert f"/reviews/new/?dataset_version={v.pk}" in html
    r = owner_client.get(reverse("sources:bundle", args=[gen.pk]))
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    # a second generation after a commit: its page links the datasets diff page
    from tests.sources.conftest import TEXT

    repo.commit("Change slugify", {"textutil.py": TEXT.replace('"-".join(words)', '"_".join(words)')})
    gen2 = services.generation_start(user=src.owner, source_id=src.pk, options={"max_examples": 12}, inline=True)
    html = owner_client.get(reverse("sources:generation", args=[gen2.pk])).content.decode()
    diff_url = f"/datasets/{v.dataset_id}/diff/?a={v.pk}&amp;b={gen2.dataset_version_id}"
    assert diff_url in html
    diff = owner_client.get(diff_url.replace("&amp;", "&"))
    assert diff.status_code == 200


def test_provenance_page_and_dataset_link(owner_client, generated, repo):
    src, gen = generated
    v = gen.dataset_version
    e = v.examples.exclude(meta__generator="docs_qa").order_by("index").first()
    prov = e.meta["provenance"]
    html = owner_client.get(f"/datasets/{v.dataset_id}/?version={v.pk}").content.decode()
    assert reverse("sources:provenance", args=[v.examples.order_by("index").first().pk]) in html
    r = owner_client.get(reverse("sources:provenance", args=[e.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    assert prov["commit"] in html and f'id="L{prov["start_line"]}"' in html and 'class="hit"' in html
    assert "matches the repository at this commit" in html


def test_examples_api_returns_meta_with_provenance(api, generated):
    src, gen = generated
    v = gen.dataset_version
    body = api.get(f"/api/datasets/{v.dataset_id}/examples?version={v.pk}&page_size=50").json()
    assert body["count"] == v.example_count
    for ex in body["results"]:
        prov = ex["meta"]["provenance"]
        assert prov["repo"] == "calc" and len(prov["commit"]) == 40 and prov["start_line"] <= prov["end_line"]
        assert ex["source_file"] == prov["path"]


def test_other_members_get_404_admins_see_it(client, generated, make_user, admin_user):
    src, gen = generated
    e = gen.dataset_version.examples.first()
    client.force_login(make_user("other", "member"))
    for url in (reverse("sources:detail", args=[src.pk]), reverse("sources:generate", args=[src.pk]),
                reverse("sources:generation", args=[gen.pk]), reverse("sources:bundle", args=[gen.pk])):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("sources:delete", args=[src.pk])).status_code == 404
    assert "No code sources yet" in client.get(reverse("sources:list")).content.decode()
    html = client.get(reverse("sources:provenance", args=[e.pk])).content.decode()
    assert "Only the source" in html and 'class="hit"' not in html
    client.force_login(admin_user)
    assert client.get(reverse("sources:detail", args=[src.pk])).status_code == 200
    assert src.name in client.get(reverse("sources:list")).content.decode()


def test_load_demo_data_registers_the_sample_source_analysed(db, make_user, repo, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setattr("apps.sources.conf.hub_checkout", lambda: repo.path)
    admin = make_user("admin", "admin")
    out = __import__("io").StringIO()
    call_command("load_demo_data", stdout=out)
    src = Source.objects.get(owner=admin, demo=True)
    assert src.analyses.get().status == "succeeded"
    assert f"Sample code source: {src.name}" in out.getvalue()
