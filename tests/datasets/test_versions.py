"""Versions: fixes create new versions, stable splits, diffs, export -> import round trips, worker imports."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.exceptions import ValidationFailed
from apps.datasets import selectors, services
from apps.datasets.models import DatasetVersion

from .conftest import chat, good_rows

pytestmark = pytest.mark.django_db


def _file(rows, name="d.jsonl"):
    return SimpleUploadedFile(name, "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode())


def test_merge_consecutive_fix_creates_new_version(member):
    rows = good_rows(10) + [{"messages": [{"role": "user", "content": "First part of the question."},
                                          {"role": "user", "content": "Second part of it."},
                                          {"role": "assistant", "content": "Here is one answer for both parts."}]}]
    v1 = services.dataset_import(user=member, name="m", file=_file(rows), target="together")
    assert selectors.version_has_errors(v1)
    v2 = services.version_fix(user=member, version_id=v1.pk, fix="merge_consecutive_turns")
    assert v2.number == 2 and v2.parent_id == v1.pk and v2.status == "ready"
    assert not selectors.version_has_errors(v2)
    merged = v2.examples.get(index=10).messages
    assert merged[0] == {"role": "user", "content": "First part of the question.\n\nSecond part of it."}
    v1.refresh_from_db()
    assert v1.examples.get(index=10).messages[1]["content"] == "Second part of it."  # old version untouched
    assert v1.content_hash != v2.content_hash


def test_drop_duplicates_and_empty_turns(member):
    rows = good_rows(10) + [good_rows(1)[0], chat("Is this empty?", "   ")]
    v1 = services.dataset_import(user=member, name="d", file=_file(rows))
    v2 = services.version_fix(user=member, version_id=v1.pk, fix="drop_exact_duplicates")
    assert v1.example_count == 12 and v2.example_count == 11
    v3 = services.version_fix(user=member, version_id=v2.pk, fix="drop_empty_turns")
    assert v3.example_count == 10 and v3.stats["duplicates"]["exact"] == 0
    d = selectors.version_diff(a=v1, b=v3)
    assert d["removed_count"] == 2 and d["added_count"] == 0


def test_convert_text_to_chat(member):
    rows = [{"text": f"User: What is item {i}?\nAssistant: Item {i} is a thing we keep in the store room."}
            for i in range(10)]
    v1 = services.dataset_import(user=member, name="t", file=_file(rows))
    assert v1.examples.first().meta["kind"] == "text"
    v2 = services.version_fix(user=member, version_id=v1.pk, fix="convert_text_to_chat")
    e = v2.examples.get(index=3)
    assert e.meta["kind"] == "chat" and [m["role"] for m in e.messages] == ["user", "assistant"]
    assert e.messages[1]["content"] == "Item 3 is a thing we keep in the store room."
    diff = selectors.version_diff(a=v1, b=v2)
    assert diff["changed_count"] == 10


def test_fix_permissions_and_unknown_fix(member, make_user):
    v1 = services.dataset_import(user=member, name="p", file=_file(good_rows(10)))
    from apps.core.exceptions import PermissionDenied, ValidationFailed
    with pytest.raises(ValidationFailed):
        services.version_fix(user=member, version_id=v1.pk, fix="make_it_better")
    with pytest.raises(PermissionDenied):
        services.version_fix(user=make_user("eve"), version_id=v1.pk, fix="drop_exact_duplicates")


def test_splits_stable_across_versions(member):
    rows = good_rows(60)
    v1 = services.dataset_import(user=member, name="s", file=_file(rows[:40]), split_ratio=0.3)
    v2 = services.dataset_import(user=member, file=_file(rows[20:]), dataset=v1.dataset_id, split_ratio=0.3)
    s1 = dict(v1.examples.values_list("content_hash", "split"))
    s2 = dict(v2.examples.values_list("content_hash", "split"))
    common = set(s1) & set(s2)
    assert len(common) == 20 and all(s1[h] == s2[h] for h in common)
    assert {"train", "validation"} <= set(s1.values())


def test_export_import_round_trip(member, tmp_path):
    tools = [{"type": "function", "function": {"name": "roll", "parameters": {"type": "object"}}}]
    rows = good_rows(10) + [{"messages": [
        {"role": "user", "content": "Roll for me."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": "roll", "arguments": "{\"dice\": \"d20\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "17"},
        {"role": "assistant", "content": "You rolled a 17, which hits the goblin.", "weight": 1}], "tools": tools}]
    v1 = services.dataset_import(user=member, name="rt", file=_file(rows))
    out = tmp_path / "export.jsonl"
    out.write_text("".join(services.version_export_lines(version=v1, fmt="openai")))
    v2 = services.dataset_import(user=member, name="rt2", file=str(out))
    assert list(v1.examples.values_list("content_hash", flat=True)) == list(v2.examples.values_list("content_hash", flat=True))
    assert v1.content_hash == v2.content_hash
    tog = [json.loads(x) for x in services.version_export_lines(version=v1, fmt="together")]
    assert all(set(m["role"] for m in t["messages"]) <= {"system", "user", "assistant"} for t in tog)
    pc = [json.loads(x) for x in services.version_export_lines(version=v1, fmt="together", together_format="prompt_completion")]
    assert set(pc[0]) == {"prompt", "completion"}
    val = list(services.version_export_lines(version=v1, fmt="openai", split="validation"))
    tr = list(services.version_export_lines(version=v1, fmt="openai", split="train"))
    assert len(val) + len(tr) == 11


def test_export_zip_report_and_stats(member, tmp_path):
    import zipfile

    root = tmp_path / "sc"
    for cat in ("combat", "roleplay"):
        (root / cat).mkdir(parents=True)
        for i in range(6):
            (root / cat / f"{i}.md").write_text(f"# USER\nI look around room {cat} {i}.\n\n# DM\nYou see a dusty "
                                                f"hall number {i} in the {cat} wing of the keep.\n")
    v = services.dataset_import(user=member, name="z", file=str(root))
    assert v.status == "ready" and v.stats["categories"] == {"combat": 6, "roleplay": 6}
    path = services.version_export_zip_file(version=v)
    names = zipfile.ZipFile(path).namelist()
    path.unlink()
    assert set(names) == {"combat.jsonl", "roleplay.jsonl", "stats.json", "report.md"}
    assert "## Categories" in services.version_report_text(v)


def test_background_import_via_worker(member, django_capture_on_commit_callbacks, settings):
    from workers.datasets import import_dataset_version

    settings.HUB_DATASET_INLINE_MAX_MB = 0
    with django_capture_on_commit_callbacks(execute=True):
        v = services.dataset_import(user=member, name="big", file=_file(good_rows(20)), background=None)
    assert v.status == "importing"
    import dramatiq
    broker = dramatiq.get_broker()
    msgs = broker.queues["default"].qsize() if "default" in broker.queues else 0
    assert msgs >= 1
    import_dataset_version(v.pk)  # what the worker runs
    v.refresh_from_db()
    assert v.status == "ready" and v.examples.count() == 20 and v.progress["stage"] == "done"
    import_dataset_version(v.pk)  # idempotent
    assert v.examples.count() == 20


def test_failed_parse_leaves_no_examples(member, settings, monkeypatch):
    from apps.datasets.services import versions

    calls = {"n": 0}
    real = versions.example_row

    def boom(version, a):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("disk full")
        return real(version, a)
    monkeypatch.setattr(versions, "example_row", boom)
    monkeypatch.setattr(versions, "INSERT_BATCH", 2)
    v = services.dataset_import(user=member, name="f", file=_file(good_rows(20)))
    assert v.status == "failed" and "disk full" in v.error and v.examples.count() == 0


def test_failed_background_import_deletes_committed_batches(member, monkeypatch):
    from apps.datasets.services import versions

    v = services.dataset_import(user=member, name="bg", file=_file(good_rows(30)), background=True)
    assert v.status == "importing"
    calls = {"n": 0}
    real = versions.example_row

    def boom(version, a):
        calls["n"] += 1
        if calls["n"] > 25:
            raise RuntimeError("worker lost its disk")
        return real(version, a)
    monkeypatch.setattr(versions, "example_row", boom)
    monkeypatch.setattr(versions, "INSERT_BATCH", 5)
    v = services.version_process(version_id=v.pk)
    assert v.status == "failed" and "worker lost its disk" in v.error and v.examples.count() == 0


def test_edit_example_creates_version_and_diff(member, client):
    v1 = services.dataset_import(user=member, name="e", file=_file(good_rows(12)))
    new_msgs = [{"role": "user", "content": "Edited question about lists?"},
                {"role": "assistant", "content": "An edited answer that is long enough to pass."}]
    v2 = services.example_edit(user=member, version_id=v1.pk, index=3, messages=new_msgs)
    assert v2.number == 2 and v2.example_count == 12 and v2.examples.get(index=3).messages == new_msgs
    assert v1.examples.get(index=3).messages == good_rows(12)[3]["messages"]
    d = selectors.version_diff(a=v1, b=v2)
    assert d["changed_count"] == 1 and d["added_count"] == 0 and d["removed_count"] == 0
    from apps.core.exceptions import ValidationFailed
    with pytest.raises(ValidationFailed) as exc:
        services.example_edit(user=member, version_id=v1.pk, index=3, messages=[{"role": "user", "content": "x"}])
    assert exc.value.field == "messages" and "assistant" in exc.value.message
    with pytest.raises(ValidationFailed) as exc:  # PostgreSQL's jsonb refuses NUL: a field error, not a 500
        services.example_edit(user=member, version_id=v1.pk, index=3,
                              messages=[{"role": "user", "content": "a\u0000b"}, new_msgs[1]])
    assert exc.value.field == "messages" and "NUL" in exc.value.message
    v3 = services.example_edit(user=member, version_id=v2.pk, index=0, messages=None, delete=True)
    assert v3.example_count == 11
    client.force_login(member)
    page = client.post(f"/datasets/versions/{v3.pk}/examples/0/edit/", {"messages": "[not json"})
    assert page.status_code == 422 and b"not valid JSON" in page.content
    r = client.post(f"/datasets/versions/{v3.pk}/examples/0/edit/", {"messages": json.dumps(new_msgs)})
    assert r.status_code == 302 and "/diff/" in r["Location"]


def test_edit_example_api(api, member):
    v1 = services.dataset_import(user=member, name="e", file=_file(good_rows(12)))
    r = api.post(f"/api/datasets/versions/{v1.pk}/examples/2", {"messages": [
        {"role": "user", "content": "A new question?"}, {"role": "assistant", "content": "A brand new answer here now."}]},
        content_type="application/json")
    assert r.status_code == 201 and r.json()["parent_id"] == v1.pk and r.json()["note"] == "Edited example #3"
    r = api.post(f"/api/datasets/versions/{v1.pk}/examples/2", {"messages": [{"role": "bot", "content": "x"}]},
                 content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "messages"


def test_revalidate_for_another_target(member, client):
    rows = good_rows(10) + [{"messages": [{"role": "user", "content": "One."}, {"role": "user", "content": "Two."},
                                          {"role": "assistant", "content": "An answer for both of those."}]}]
    v1 = services.dataset_import(user=member, name="rv", file=_file(rows))
    assert not selectors.version_has_errors(v1)
    v2 = services.version_revalidate(user=member, version_id=v1.pk, target="together")
    assert v2.target == "together" and selectors.version_has_errors(v2)
    assert v2.validation["errors"][0]["code"] == "consecutive_same_role" and v2.validation["errors"][0]["line"] == 11
    client.force_login(member)
    r = client.post(f"/datasets/versions/{v1.pk}/fix/", {"fix": "target:openai"})
    assert r.status_code == 302 and DatasetVersion.objects.filter(dataset=v1.dataset, target="openai").exists()


def _scenario_folder(root, cats=("combat", "role play", "role_play"), n=5):
    for cat in cats:
        (root / cat).mkdir(parents=True)
        for i in range(n):
            (root / cat / f"{i}.md").write_text(f"# USER\nI look around room {cat} {i}.\n\n# DM\nYou see a dusty "
                                                f"hall number {i} in the {cat} wing of the old keep.\n")
    return root


def test_category_zip_is_streamed_from_a_temp_file_and_round_trips(member, client, tmp_path, settings):
    import zipfile

    from django.http import FileResponse

    # "role play" and "role_play" make the same safe file name: both are kept
    v = services.dataset_import(user=member, name="zrt", file=str(_scenario_folder(tmp_path / "sc")))
    assert v.status == "ready" and v.example_count == 15
    client.force_login(member)
    r = client.get(f"/datasets/{v.dataset_id}/export/?version={v.pk}&kind=categories&format=openai")
    assert r.status_code == 200 and isinstance(r, FileResponse)
    assert r["Content-Type"] == "application/zip"
    assert f'filename="dataset-{v.dataset_id}-v{v.number}-openai-by-category.zip"' in r["Content-Disposition"]
    tmp_dir = settings.ARTIFACT_ROOT / services.EXPORT_TMP_DIR
    assert tmp_dir.is_dir() and not any(tmp_dir.iterdir())  # the temp file is gone (the open handle serves it)
    data = b"".join(r.streaming_content)
    assert int(r["Content-Length"]) == len(data)
    out = tmp_path / "export.zip"
    out.write_bytes(data)
    zf = zipfile.ZipFile(out)
    assert set(zf.namelist()) == {"combat.jsonl", "role_play.jsonl", "role_play-2.jsonl", "stats.json", "report.md"}
    assert json.loads(zf.read("stats.json"))["categories"] == v.stats["categories"]
    # every category file imports back to exactly the examples of that category
    by_cat = {}
    for e in v.examples.all():
        by_cat.setdefault(e.category, []).append(e.content_hash)
    got = []
    for entry in ("combat.jsonl", "role_play.jsonl", "role_play-2.jsonl"):
        p = tmp_path / entry
        p.write_bytes(zf.read(entry))
        back = services.dataset_import(user=member, name=f"back {entry}", file=str(p))
        assert back.status == "ready" and back.example_count == 5
        got.append(sorted(back.examples.values_list("content_hash", flat=True)))
    assert sorted(got) == sorted(sorted(h) for h in by_cat.values())


def test_category_zip_bad_format_leaves_no_temp_file(member, client, tmp_path, settings):
    v = services.dataset_import(user=member, name="zbad", file=str(_scenario_folder(tmp_path / "sc", cats=("a",))))
    with pytest.raises(ValidationFailed):
        services.version_export_zip_file(version=v, fmt="martian")
    client.force_login(member)
    r = client.get(f"/datasets/{v.dataset_id}/export/?version={v.pk}&kind=categories&format=martian")
    assert r.status_code == 302
    tmp_dir = settings.ARTIFACT_ROOT / services.EXPORT_TMP_DIR
    assert not tmp_dir.exists() or not any(tmp_dir.iterdir())


def test_category_zip_failure_midway_removes_the_temp_file(member, tmp_path, settings, monkeypatch):
    v = services.dataset_import(user=member, name="zmid", file=str(_scenario_folder(tmp_path / "sc")))

    def boom(**kw):
        yield '{"messages": []}\n'
        raise RuntimeError("database went away")
    monkeypatch.setattr(services.exports, "version_export_lines", boom)
    with pytest.raises(RuntimeError):
        services.version_export_zip_file(version=v)
    assert not any((settings.ARTIFACT_ROOT / services.EXPORT_TMP_DIR).iterdir())
