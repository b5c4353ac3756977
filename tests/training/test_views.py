"""Dashboard pages: list with filters, new-run form (field errors, estimate, preselect), run page."""
from __future__ import annotations

import pytest

from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, member):
    client.force_login(member)
    return client


def test_new_run_form_preselects_and_creates(logged_in, qa_version, tiny_base_model):
    r = logged_in.get(f"/runs/new/?dataset_version={qa_version.pk}")
    assert r.status_code == 200
    assert f'<option value="{qa_version.pk}" selected' in r.content.decode()
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "max_steps": 3, "action": "create"})
    run = TrainingRun.objects.get()
    assert r.status_code == 302 and r.url == f"/runs/{run.pk}/"
    assert run.hyperparameters["max_steps"] == 3


def test_new_run_form_shows_field_errors(logged_in, qa_version, tiny_base_model):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "batch_size": 0, "lora_r": 500, "action": "create"})
    assert r.status_code == 422
    html = r.content.decode()
    assert "cannot exceed the model&#x27;s hidden size" in html or "cannot exceed the model's hidden size" in html
    assert "Must be at least 1" in html
    assert TrainingRun.objects.count() == 0


def test_estimate_button_renders_estimate(logged_in, qa_version, tiny_base_model):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "epochs": 1, "action": "estimate"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Estimated time" in html and "<html" not in html
    assert TrainingRun.objects.count() == 0


def test_estimate_figures_have_thousands_separators(logged_in, qa_version, tiny_base_model, monkeypatch):
    """Dataset tokens, steps and tokens processed read 12,345 (as the throughput already did)."""
    from apps.training import views

    create = views.services.run_create
    big = {"dataset_tokens": 1234567, "steps": 12345, "tokens_processed": 7654321, "examples_too_long": 1200,
           "longest_example_tokens": 40960}

    def dry_run(**kw):
        out = create(**kw)
        return {**out, "estimate": {**out["estimate"], **big}}

    monkeypatch.setattr(views.services, "run_create", dry_run)
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "epochs": 1, "action": "estimate"}, HTTP_HX_REQUEST="true")
    html = r.content.decode()
    for text in ("<dd>1,234,567</dd>", "<dd>12,345</dd>", "<dd>7,654,321</dd>", "1,200 example(s)",
                 "longest 40,960 tokens"):
        assert text in html, text


def test_run_page_and_list(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", name="<b>x</b>")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="loss-chart"' in html and 'id="run-status"' in html and "/static/js/run_detail.js" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # escaped
    assert "Position 1 in the GPU queue" in html
    lst = logged_in.get("/runs/?status=queued").content.decode()
    assert f"/runs/{run.pk}/" in lst
    assert f"/runs/{run.pk}/" not in logged_in.get("/runs/?status=failed").content.decode()
    cmp = logged_in.get(f"/runs/compare/?ids={run.pk}")
    assert cmp.status_code == 200 and "compare-chart" in cmp.content.decode()


def test_cancel_from_page(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    r = logged_in.post(f"/runs/{run.pk}/cancel/")
    assert r.status_code == 302
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"


def test_pages_need_login(client):
    assert client.get("/runs/").status_code == 302


def test_list_refreshes_itself_while_runs_are_active(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    html = logged_in.get("/runs/").content.decode()
    assert 'hx-trigger="every 5s"' in html
    part = logged_in.get("/runs/", HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith("<form") and "<html" not in part


def test_run_page_shows_no_queue_position_once_started(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert '<p class="badge" id="queue-position">Position 1 in the GPU queue</p>' in html  # removed live by the script
    TrainingRun.objects.filter(pk=run.pk).update(status="running")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert '<p class="badge" id="queue-position"' not in html and "Position 1" not in html


def _placeholders(html: str) -> dict[str, str]:
    import re

    out = {}
    for tag in re.findall(r"<input[^>]*data-default-of[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag).group(1)
        ph = re.search(r'placeholder="([^"]*)"', tag)
        out[name] = ph.group(1) if ph else ""
    return out


def test_new_run_form_shows_effective_defaults_as_placeholders(logged_in, qa_version, tiny_base_model):
    from apps.training.forms import _shown

    html = logged_in.get(f"/runs/new/?dataset_version={qa_version.pk}").content.decode()
    ph = _placeholders(html)
    # lora on the tiny model (context 256): the method's learning rate, max_seq_len capped by the context
    assert ph["learning_rate"] == "0.0002" and ph["max_seq_len"] == "256"
    assert ph["lora_r"] == "8" and ph["lora_alpha"] == "16" and ph["lora_dropout"] == "0.05"
    assert ph["epochs"] == "1" and ph["save_steps"] == "50" and ph["batch_size"] == "4"
    assert 'id="run-defaults"' in html and "default (cosine)" in html
    # empty inputs = exactly those values
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "action": "create"})
    assert r.status_code == 302
    hp = TrainingRun.objects.get().hyperparameters
    for name, shown in ph.items():
        if shown:
            assert _shown(hp[name]) == shown, name


def test_placeholders_follow_the_chosen_method(logged_in, qa_version, tiny_base_model):
    post = {"dataset_version": qa_version.pk, "base_model": "tiny", "backend": "local", "action": "estimate"}
    full = _placeholders(logged_in.post("/runs/new/", {**post, "method": "full"}, HTTP_HX_REQUEST="true")
                         .content.decode())
    assert full["learning_rate"] == "2e-05" and full["lora_r"] == ""
    scratch = _placeholders(logged_in.post("/runs/new/", {**post, "method": "scratch"}, HTTP_HX_REQUEST="true")
                            .content.decode())
    assert scratch["learning_rate"] == "0.001" and scratch["vocab_size"] == "2000" and scratch["max_seq_len"] == "512"
    remote = _placeholders(logged_in.post("/runs/new/", {**post, "method": "lora", "backend": "together"},
                                          HTTP_HX_REQUEST="true").content.decode())
    assert set(remote.values()) == {""}  # the remote provider applies its own defaults


def test_placeholders_of_a_continued_version(logged_in, qa_version, tiny_base_model, tiny_model_dir):
    from apps.registry.services import model_version_register

    full = model_version_register(name="full", kind="full", base_model=tiny_base_model, source_dir=tiny_model_dir)
    html = logged_in.get(f"/runs/new/?dataset_version={qa_version.pk}&parent_version={full.pk}").content.decode()
    ph = _placeholders(html)
    assert ph["learning_rate"] == "0.0001"  # lora default, halved when continuing
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "full", "base_model": "tiny",
                                      "parent_version": full.pk, "backend": "local", "action": "estimate"},
                       HTTP_HX_REQUEST="true")
    ph = _placeholders(r.content.decode())
    assert ph["learning_rate"] == "1e-05" and ph["max_seq_len"] == "256"
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "full", "base_model": "tiny",
                                      "parent_version": full.pk, "backend": "local", "action": "create"})
    assert r.status_code == 302
    assert f'{TrainingRun.objects.get().hyperparameters["learning_rate"]:g}' == "1e-05"
