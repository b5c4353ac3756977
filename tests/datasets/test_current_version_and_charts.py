"""Issue 14: a dataset's current version (pinned, else the newest ready one) is what the list shows, with a newer
failed attempt as a note; pinning is for the owner or an admin only; the versions table is paginated. The dataset
charts are sized to the data (the context limit only near it), and every bar links to the examples behind it."""
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.exceptions import Conflict, PermissionDenied
from apps.datasets import selectors, services
from apps.datasets.views import _buckets, _chart_data
from tests.factories import DatasetVersionFactory, qa_example

from .conftest import good_rows

pytestmark = pytest.mark.django_db


def _file(rows, name="d.jsonl"):
    return SimpleUploadedFile(name, "".join(json.dumps(r) + "\n" for r in rows).encode())


def test_list_shows_the_current_version_and_a_failed_attempt_as_a_note(client, member):
    v1 = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(12)])
    ds = v1.dataset
    DatasetVersionFactory(dataset=ds, status="failed", error="bad file", example_count=0)
    rows = selectors.dataset_list_rows(user=member)
    row = next(d for d in rows if d.pk == ds.pk)
    assert row.current.pk == v1.pk and not row.pinned and row.attempt.number == 2 and row.attempt.status == "failed"
    client.force_login(member)
    page = client.get("/datasets/").content.decode()
    cell = page[page.index(f'href="/datasets/{ds.pk}/?version={v1.pk}"'):]
    cell = cell[:cell.index("</td>")]
    assert ">v1</a>" in cell and "status-ready" in cell and "v2" in cell and "status-failed" in cell
    assert re.search(r'class="num">12</td>', page)  # the current version's examples, not the failed one's 0
    # the dataset page opens on the current version, not on the failed attempt
    page = client.get(f"/datasets/{ds.pk}/").content.decode()
    assert "current version <a" in page and f"?version={v1.pk}\">v1</a> (the newest ready one)" in page


def test_pin_and_unpin_with_permissions(client, member, make_user, admin_user):
    v1 = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(3)])
    ds = v1.dataset
    v2 = DatasetVersionFactory(dataset=ds, examples=[qa_example(i) for i in range(4)])
    failed = DatasetVersionFactory(dataset=ds, status="failed")
    assert selectors.current_version(ds).pk == v2.pk
    other = make_user("mallory")
    with pytest.raises(PermissionDenied):
        services.dataset_pin(user=other, dataset_id=ds.pk, version_id=v1.pk)
    with pytest.raises(Conflict):
        services.dataset_pin(user=member, dataset_id=ds.pk, version_id=failed.pk)
    services.dataset_pin(user=member, dataset_id=ds.pk, version_id=v1.pk)
    ds.refresh_from_db()
    assert selectors.current_version(ds).pk == v1.pk
    row = next(d for d in selectors.dataset_list_rows(user=member) if d.pk == ds.pk)
    assert row.pinned and row.current.pk == v1.pk and row.newer_ready.pk == v2.pk and row.attempt.pk == failed.pk
    # the page: pin buttons for the owner, none for another member; unpin
    client.force_login(other)
    assert b"Pin as current" not in client.get(f"/datasets/{ds.pk}/").content
    r = client.post(f"/datasets/{ds.pk}/pin/", {"version": v2.pk})
    assert r.status_code == 302
    ds.refresh_from_db()
    assert ds.pinned_version_id == v1.pk  # refused
    client.force_login(admin_user)
    r = client.post(f"/datasets/{ds.pk}/pin/", {"version": ""})
    ds.refresh_from_db()
    assert r.status_code == 302 and ds.pinned_version_id is None


def test_pin_api(api, member):
    v1 = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(3)])
    DatasetVersionFactory(dataset=v1.dataset)
    r = api.post(f"/api/datasets/{v1.dataset_id}/pin", {"version_id": v1.pk}, content_type="application/json")
    assert r.status_code == 200 and r.json()["current_version"]["id"] == v1.pk and r.json()["pinned_version_id"] == v1.pk
    r = api.post(f"/api/datasets/{v1.dataset_id}/pin", {"version_id": None}, content_type="application/json")
    assert r.status_code == 200 and r.json()["pinned_version_id"] is None and r.json()["current_version"]["number"] == 2


def test_versions_table_is_paginated(client, member):
    v1 = DatasetVersionFactory(owner=member, examples=[qa_example(0)])
    for _ in range(11):
        DatasetVersionFactory(dataset=v1.dataset)
    client.force_login(member)
    page = client.get(f"/datasets/{v1.dataset_id}/").content.decode()
    table = page[page.index('id="versions-table"'):page.index("</table>", page.index('id="versions-table"'))]
    assert table.count("<tr") == 11  # header + 10 versions
    assert "versions 1–10 of 12" in page and "vpage=2" in page
    page2 = client.get(f"/datasets/{v1.dataset_id}/?vpage=2").content.decode()
    table2 = page2[page2.index('id="versions-table"'):page2.index("</table>", page2.index('id="versions-table"'))]
    assert ">v1</a>" in table2 and ">v2</a>" in table2 and ">v12</a>" not in table2


def test_buckets_are_the_integer_ranges_of_the_bins():
    assert _buckets({"edges": [2.0, 2.7, 3.3, 4.0], "counts": [1, 1, 1]}) == [(2, 2), (3, 3), (4, 4)]
    assert _buckets({"edges": [10.0, 20.0, 30.0], "counts": [1, 1]}) == [(10, 19), (20, 30)]


def test_chart_data_sizes_to_the_data_and_links_every_bar():
    stats = {"tokens": {"hist": {"edges": [40.0, 60.0, 80.0], "counts": [3, 2]}, "max": 80, "context_length": 8192,
                        "role_hist": {"assistant": {"edges": [5.0, 10.0, 15.0], "counts": [1, 4]}}},
             "turns": {"hist": {"edges": [2.0, 2.5, 3.0], "counts": [4, 1]}}, "categories": {"(none)": 5}}
    d = _chart_data(stats, 7)
    assert d["context_on_chart"] is None and "8,192" in d["context_note"]  # 8192 is 100x the data: a note
    assert d["token_bars"]["hrefs"] == ["?version=7&tokens=40-59#examples", "?version=7&tokens=60-80#examples"]
    assert d["role_bars"]["assistant"]["hrefs"][1] == "?version=7&role_tokens=assistant%3A10-15#examples"
    assert d["turn_bars"]["whole"] and d["turn_bars"]["x"] == [2, 3]
    assert "category_bars" not in d and d["category_note"] == "No example has a category (5 examples)."
    near = _chart_data({**stats, "tokens": {**stats["tokens"], "context_length": 100}}, 7)
    assert near["context_on_chart"] == 100 and near["context_note"] == ""
    two = _chart_data({**stats, "categories": {"a": 3, "(none)": 2}}, 7)
    assert two["category_bars"]["hrefs"] == ["?version=7&category=a#examples", "?version=7&category=%28none%29#examples"]


def test_bar_links_list_exactly_the_examples_of_the_bar(client, member):
    rows = good_rows(10) + [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"},
                      {"role": "assistant", "content": "Because air scatters blue light more than red light."}]},
        {"messages": [{"role": "user", "content": "Tell me a long story about a dragon and a knight " * 8},
                      {"role": "assistant", "content": "Once upon a time there was a dragon who guarded gold. " * 6}]}]
    v = services.dataset_import(user=member, name="bars", file=_file(rows))
    # categories come from an upload's folders (a zip of scenarios): set two here, as such an import would
    v.examples.filter(index=10).update(category="science")
    v.examples.filter(index=11).update(category="stories")
    v.stats["categories"] = {"(none)": 10, "science": 1, "stories": 1}
    v.save(update_fields=["stats"])
    d = _chart_data(v.stats, v.pk)
    client.force_login(member)

    def listed(href):
        page = client.get(f"/datasets/{v.dataset_id}/" + href.split("#")[0]).content.decode()
        return int(re.search(r"([\d,]+) examples? · page", page).group(1).replace(",", ""))

    for key in ("token_bars", "turn_bars", "category_bars"):
        b = d[key]
        for href, n in zip(b["hrefs"], b["y"]):
            if n:
                assert listed(href) == n, (key, href)
    for b in d["role_bars"].values():
        for href, n in zip(b["hrefs"], b["y"]):
            if n:
                assert listed(href) == n, href
    # the server-rendered charts carry the same links and whole-number count ticks
    page = client.get(f"/datasets/{v.dataset_id}/").content.decode()
    assert page.count('<a href="?version=') >= len([n for n in d["token_bars"]["y"] if n])
    ticks = re.findall(r'text-anchor="end"[^>]*>([^<]+)</text>', page)
    assert ticks and all(t.replace(",", "").isdigit() for t in ticks), ticks
    assert client.get(f"/datasets/{v.dataset_id}/?tokens=oops").status_code == 422
