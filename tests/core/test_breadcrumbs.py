"""Issue 14: every page below a list page opens with the same breadcrumb trail (templates/core/_breadcrumbs.html):
Home › <list page> [› <its parent>] › <this page>. Django's test client, one page of each kind across the apps."""
from __future__ import annotations

import re
import uuid

import pytest
from django.utils import timezone

from tests.factories import (AliasFactory, ApiKeyFactory, DatasetVersionFactory, ModelVersionFactory,
                             TrainingRunFactory, UserFactory, qa_example)

NAV = re.compile(r'<nav class="breadcrumbs" aria-label="Breadcrumb">(.*?)</nav>', re.S)


def trail(client, url: str, status: int = 200) -> tuple[list[tuple[str, str]], str]:
    """The breadcrumb links [(href, text)] and the current page's text of the page at `url`."""
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code)
    found = NAV.findall(r.content.decode())
    assert len(found) == 1, f"{url}: {len(found)} breadcrumb trails"
    links = [(h, re.sub(r"<[^>]+>", "", t).strip()) for h, t in re.findall(r'<a href="([^"]*)">(.*?)</a>', found[0])]
    here = re.search(r'<span aria-current="page">(.*?)</span>', found[0])
    assert here, f"{url}: no current page in the trail"
    return links, here.group(1).strip()


@pytest.fixture
def rows(db, admin_user, django_capture_on_commit_callbacks):
    """One row of each kind the pages below show, owned by (or visible to) the admin."""
    from apps.arena.models import Arena
    from apps.experiments.services import experiment_create
    from apps.proxy.services import request_log_record
    from apps.registry.services import alias_deploy
    from apps.review.services import task_create

    version = DatasetVersionFactory(owner=admin_user, examples=[qa_example(i) for i in range(6)])
    reviewer = UserFactory(username="rev1", role="reviewer")
    v1, v2 = ModelVersionFactory(name="base one"), ModelVersionFactory(name="tuned two")
    alias_deploy(actor=admin_user, version_id=v1.pk, alias="production")
    payload = {
        "request_id": uuid.uuid4().hex, "user_id": admin_user.pk, "endpoint": "chat.completions",
        "model_requested": "production", "model_served": "hub-local", "stream": False, "status_code": 200,
        "latency_ms": 120.0, "ttft_ms": 50.0, "prompt_tokens": 10, "completion_tokens": 5,
        "request": {"model": "production", "messages": [{"role": "user", "content": "Hi?"}]},
        "response": {"id": "c1", "object": "chat.completion", "model": "production",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                                  "finish_reason": "stop"}]},
        "error": "", "started_at": timezone.now().timestamp() - 1, "alias": "production",
        "served_by": f"version:{v1.pk}", "fallback": False, "api_key_id": None, "attempts": [],
    }
    with django_capture_on_commit_callbacks(execute=True):
        log = request_log_record(payload=payload)
    return {
        "version": version,
        "run": TrainingRunFactory(owner=admin_user, dataset_version=version),
        "model": v1,
        "alias": AliasFactory(name="staging", model_version=v2),
        "key": ApiKeyFactory(user=admin_user, name="laptop"),
        "arena": Arena.objects.create(name="Strong vs weak", owner=admin_user, status="ready", source="prompts"),
        "task": task_create(user=admin_user, version_id=version.pk, name="First pass", assignees=[reviewer.username]),
        "experiment": experiment_create(actor=admin_user, alias="production", metric="error_rate",
                                        arms=[{"model_version_id": v1.pk, "weight": 50},
                                              {"model_version_id": v2.pk, "weight": 50}]),
        "log": log,
    }


@pytest.mark.django_db
def test_pages_below_a_list_page_have_the_trail(client, admin_user, rows):
    client.force_login(admin_user)
    ds = rows["version"].dataset
    dataset_url = f"/datasets/{ds.pk}/"
    cases = [  # (url, the parent links after Home, the current page's text)
        (f"/runs/{rows['run'].pk}/", ["/runs/"], f"Run #{rows['run'].pk}"),
        ("/runs/new/", ["/runs/"], "New run"),
        ("/runs/compare/", ["/runs/"], "Compare runs"),
        (dataset_url, ["/datasets/"], ds.name),
        (f"/datasets/upload/?dataset={ds.pk}", ["/datasets/", dataset_url], "New version"),
        (f"{dataset_url}diff/", ["/datasets/", dataset_url], "Compare versions"),
        (f"/datasets/versions/{rows['version'].pk}/examples/1/edit/", ["/datasets/", dataset_url], "Edit example #2"),
        (f"/models/{rows['model'].pk}/", ["/models/"], "base one"),
        ("/models/aliases/staging/", ["/models/"], "Alias staging"),
        ("/models/tools/", ["/models/"], "Tool registry"),
        ("/arenas/new/", ["/arenas/"], "New arena"),
        (f"/arenas/{rows['arena'].pk}/", ["/arenas/"], "Strong vs weak"),
        (f"/arenas/{rows['arena'].pk}/results/", ["/arenas/", f"/arenas/{rows['arena'].pk}/"], "Results"),
        ("/evaluations/new/", ["/evaluations/"], "New evaluation"),
        ("/reviews/new/", ["/reviews/"], "New review task"),
        (f"/reviews/{rows['task'].pk}/", ["/reviews/"], "First pass"),
        (f"/reviews/{rows['task'].pk}/agreement/", ["/reviews/", f"/reviews/{rows['task'].pk}/"], "Agreement"),
        ("/sources/new/", ["/sources/"], "New source"),
        (f"/experiments/{rows['experiment'].pk}/", ["/experiments/"], str(rows["experiment"])),
        (f"/traffic/requests/{rows['log'].pk}/", ["/traffic/"], f"Request {rows['log'].request_id[:13]}…"),
        (f"/accounts/api-keys/{rows['key'].pk}/", ["/accounts/api-keys/"], "Key laptop"),
        ("/proxy/aliases/production/chain", ["/proxy/providers/"], "Chain of production"),
    ]
    for url, parents, here in cases:
        links, current = trail(client, url)
        hrefs = [h for h, _ in links]
        assert links[0] == ("/", "Home"), (url, links)
        assert hrefs[1:] == parents, (url, hrefs)
        assert current == here, (url, current)


@pytest.mark.django_db
def test_trail_keeps_the_list_filter_and_names_missing_pages(client, admin_user, rows):
    client.force_login(admin_user)
    links, _ = trail(client, f"/traffic/requests/{rows['log'].pk}/?back=status%3D5xx%26q%3Dhi")
    assert links[1] == ("/traffic/?status=5xx&amp;q=hi", "Traffic")  # back to the filtered list
    for url, parent in [("/experiments/999999/", "/experiments/"), ("/models/999999/", "/models/"),
                        ("/accounts/api-keys/999999/", "/accounts/api-keys/")]:
        links, current = trail(client, url, status=404)
        assert [h for h, _ in links] == ["/", parent] and current in ("Not found", "No such key"), (url, links)


@pytest.mark.django_db
def test_names_in_the_trail_are_escaped(client, admin_user):
    version = DatasetVersionFactory(owner=admin_user, dataset__name="<b>bold</b> set", examples=[qa_example(0)])
    client.force_login(admin_user)
    body = client.get(f"/datasets/{version.dataset_id}/diff/").content.decode()
    nav = NAV.search(body).group(1)
    assert "&lt;b&gt;bold&lt;/b&gt; set" in nav and "<b>" not in nav
