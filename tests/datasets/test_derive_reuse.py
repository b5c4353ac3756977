"""Derived versions reuse what the parent stored for its unchanged examples (token counts, content hashes,
issue codes, MinHash signatures) and copy their rows in the database, yet end with the report, statistics and
per-example figures of a validation from scratch of the same examples; the parent never changes."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets import services
from apps.datasets.models import DatasetVersion, Example
from apps.datasets.services import versions
from apps.datasets.services.versions import Unchanged, _derive_version, _example_dict
from apps.datasets.validation import pipeline
from apps.datasets.validation.tokens import counter_for_base_model
from tests.factories import DatasetVersionFactory

from .conftest import chat, good_rows

pytestmark = pytest.mark.django_db

ROW_FIELDS = ("index", "messages", "tools", "source_file", "source_line", "category", "tags", "meta", "content_hash",
              "split", "token_count", "role_tokens", "issues", "minhash")


def _tool_example(i):
    return {"messages": [
        {"role": "user", "content": f"What is the weather in town number {i} today?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "weather", "arguments": json.dumps({"town": i})}}]},
        {"role": "tool", "tool_call_id": f"c{i}", "content": f"Sunny, {10 + i} degrees."},
        {"role": "assistant", "content": f"It is sunny in town {i} today, about {10 + i} degrees outside."}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}


def _rows():
    rows = good_rows(24)
    rows[3] = chat("Where do I send the signed contract?",
                   "Send it to jane.doe@acme-widgets.com before Friday, with both pages signed and dated please.")
    rows += [
        chat("What is two plus two?", "Four."),  # 24: short_answer
        {"messages": [{"role": "user", "content": "First half of a question about tuples."},  # 25: structural warning
                      {"role": "user", "content": "And the second half of it."},
                      {"role": "assistant", "content": "Both halves together: tuples are immutable sequences."}]},
        good_rows(1)[0],  # 26: exact duplicate of 0 (0 is dropped below: no longer a duplicate)
        good_rows(3)[2],  # 27: exact duplicate of 2 (both kept: still one)
        chat("Tell me something useful about Python dicts number 1.",  # 28: near duplicate of 1
             "Here is a fact about dicts: item 1 shows how they behave in real programs!"),
        _tool_example(1), _tool_example(2),  # 29, 30: tool calls (rendered in full for their token count)
        chat("Say hi to the new team member please.", "Hi!", system="You are a friendly greeter."),  # 31
    ]
    return rows


@pytest.fixture
def parent(member):
    data = "".join(json.dumps(r) + "\n" for r in _rows()).encode()
    v = services.dataset_import(user=member, name="reuse", file=SimpleUploadedFile("d.jsonl", data))
    assert v.status == "ready" and v.example_count == 32 and "counts" in v.validation
    assert v.stats["tokens"]["base_model"]  # counted with the default tokenizer (loaded by conftest)
    return v


def _rows_of(version):
    return list(version.examples.order_by("index").values(*ROW_FIELDS))


def _from_scratch(version):
    """Validate the version's examples from nothing, as an import would: (validation, stats, content hash,
    per-example figures)."""
    counter = counter_for_base_model(version.base_model_id or None)
    annotated = []
    result = pipeline.validate_examples(
        [_example_dict(e) for e in version.examples.order_by("index")], fmt=version.format, target=version.target,
        counter=counter, split_ratio=version.split_ratio, base_model_id=version.base_model_id or None,
        on_batch=annotated.extend)
    rep = result.as_dict()
    validation = {k: rep[k] for k in ("errors", "warnings", "counts", "error_total", "warning_total", "truncated")}
    figures = [{"index": a.index, "content_hash": a.hash, "split": a.split, "token_count": a.tokens,
                "role_tokens": a.role_tokens, "issues": versions._issues(a.codes), "minhash": a.minhash}
               for a in annotated]
    return json.loads(json.dumps(validation)), json.loads(json.dumps(result.stats)), result.content_hash, figures


def _assert_as_from_scratch(version):
    validation, stats, chash, figures = _from_scratch(version)
    assert version.validation == validation
    assert version.stats == stats
    assert version.content_hash == chash
    stored = [{**{k: r[k] for k in ("index", "content_hash", "split", "token_count", "role_tokens", "issues")},
               "minhash": _bytes(r["minhash"])} for r in _rows_of(version)]
    assert stored == figures


def _bytes(value):
    return None if value is None else bytes(value)


class Spy:
    """Counts the examples tokenized, content-checked, structurally re-checked, MinHash-signed, copied and built
    as objects while it is on."""

    def __init__(self, monkeypatch):
        from apps.datasets.formats.rows import RowChecker

        self.tokenized = self.checked = self.rechecked = self.signed = self.copied = self.built = 0
        counter = counter_for_base_model(None)
        count, check, copy, row = counter.count, pipeline.check_content, versions._copy_rows, versions.example_row
        recheck = RowChecker.check_example
        sign = pipeline.signatures

        def _sign(texts):
            self.signed += len(texts)
            return sign(texts)

        def _recheck(checker, ex):
            self.rechecked += 1
            return recheck(checker, ex)

        def _count(batch):
            self.tokenized += len(batch)
            return count(batch)

        def _check(ex, report, **kw):
            self.checked += 1
            return check(ex, report, **kw)

        def _copy(version, batch):
            self.copied += len(batch)
            return copy(version, batch)

        def _row(version, a):
            self.built += 1
            return row(version, a)

        monkeypatch.setattr(counter, "count", _count)
        monkeypatch.setattr(RowChecker, "check_example", _recheck)
        monkeypatch.setattr(pipeline, "check_content", _check)
        monkeypatch.setattr(pipeline, "signatures", _sign)
        monkeypatch.setattr(versions, "_copy_rows", _copy)
        monkeypatch.setattr(versions, "example_row", _row)


def _derive(member, parent, items, **kw):
    v = _derive_version(user=member, parent=parent, note="test", examples=iter(items), stage={"stage": "test"}, **kw)
    assert v.status == "ready", v.error
    return v


def test_a_derived_version_reuses_the_parents_figures_and_matches_a_validation_from_scratch(member, parent,
                                                                                            monkeypatch):
    before = _rows_of(parent)
    pks = dict(parent.examples.values_list("index", "pk"))
    edited = chat("Tell me something useful about Python lists number 8.", "Lists: yes.")  # now a short answer
    items = []
    for i in range(32):
        if i in (0, 5, 31):  # dropped (0: the first of an exact duplicate pair)
            continue
        if i == 8:
            items.append({**edited, "tools": None, "source_file": "d.jsonl", "source_line": 9, "category": "",
                          "tags": ["edited"], "meta": {"kind": "chat", "note": "edited"}})
        else:
            items.append(Unchanged(pks[i], add_tags=("reviewed",) if i % 2 else (), meta={"review": {"i": i}}))
    spy = Spy(monkeypatch)
    v = _derive(member, parent, items)
    # only the edited example was tokenized and signed; content checks ran for it and for the examples whose
    # stored codes came from their content (3: e-mail, 24: short answer) — not for the other 25
    assert (spy.tokenized, spy.signed, spy.checked) == (1, 1, 3)
    # the parent's report has a finding of the structural rules (25: two user turns): they run on every example
    assert "warning:consecutive_same_role" in parent.validation["counts"] and spy.rechecked == 29
    # the unchanged rows were copied in the database; one row was built in Python
    assert spy.copied == 28 and (spy.built == 1 or not _is_pg())
    assert v.parent_id == parent.pk and v.example_count == 29
    rows = _rows_of(v)
    assert rows[0]["messages"] == before[1]["messages"] and rows[0]["tags"] == ["reviewed"]
    assert rows[0]["meta"] == {"kind": "chat", "review": {"i": 1}}
    assert rows[6]["messages"][1]["content"] == "Lists: yes." and rows[6]["meta"]["note"] == "edited"
    # what changed with the set of examples is recomputed: 26 is no longer a duplicate (0 is gone), 27 still is
    by_line = {r["source_line"]: r for r in rows}
    assert "duplicate" not in by_line[27]["issues"] and "duplicate" in by_line[28]["issues"]
    assert "duplicate" in dict(zip(range(32), [r["issues"] for r in before]))[26]
    _assert_as_from_scratch(v)
    assert _rows_of(parent) == before  # the parent is untouched
    parent.refresh_from_db()
    assert parent.status == "ready" and parent.example_count == 32


def _is_pg():
    from django.db import connection

    return connection.vendor == "postgresql"


def test_stored_figures_are_used_only_when_they_belong_to_the_content(member, parent):
    """Reuse is real (a doctored stored count flows into the new version) but bounded: a stored hash that
    is not the content's hash, or a revalidation, recomputes everything."""
    pks = dict(parent.examples.values_list("index", "pk"))
    Example.objects.filter(pk=pks[1]).update(token_count=777, role_tokens={"user": 1, "assistant": 2})
    Example.objects.filter(pk=pks[2]).update(content_hash="0" * 64, token_count=888)
    v = _derive(member, parent, [Unchanged(pks[i]) for i in range(32)])
    rows = _rows_of(v)
    assert rows[1]["token_count"] == 777 and rows[1]["role_tokens"] == {"user": 1, "assistant": 2}  # reused
    assert rows[2]["token_count"] != 888 and rows[2]["content_hash"] != "0" * 64  # recomputed
    # counts stored by an earlier way of counting (another chat layout) are made again
    stats = dict(parent.stats)
    stats["tokens"] = {**stats["tokens"], "counting": stats["tokens"]["counting"] - 1}
    DatasetVersion.objects.filter(pk=parent.pk).update(stats=stats)
    parent.refresh_from_db()
    recounted = _rows_of(_derive(member, parent, [Unchanged(pks[i]) for i in range(32)]))
    assert recounted[1]["token_count"] != 777 and recounted[1]["role_tokens"] != {"user": 1, "assistant": 2}
    # a revalidation computes every figure again (rows are still copied)
    again = services.version_revalidate(user=member, version_id=v.pk, target="local")
    assert again.status == "ready" and again.parent_id == v.pk
    assert _rows_of(again)[1]["token_count"] not in (777, None)
    _assert_as_from_scratch(again)


def test_a_parent_not_validated_here_is_validated_in_full(member, monkeypatch):
    """Rows written by other means (a factory, an old import) have no report counts: nothing is reused."""
    parent = DatasetVersionFactory(owner=member, examples=good_rows(12) + [chat("Short?", "Yes.")])
    assert "counts" not in parent.validation
    spy = Spy(monkeypatch)
    v = services.example_edit(user=member, version_id=parent.pk, index=2,
                              messages=[{"role": "user", "content": "An edited question about sets?"},
                                        {"role": "assistant", "content": "An edited answer about sets, in full."}])
    assert v.status == "ready" and v.example_count == 13
    assert spy.tokenized == 13 and spy.checked == 13 and spy.signed == 13
    _assert_as_from_scratch(v)
    assert "short_answer" in _rows_of(v)[12]["issues"]


def test_an_edit_copies_the_other_rows_and_reuses_their_figures(member, parent, monkeypatch):
    spy = Spy(monkeypatch)
    v = services.example_edit(user=member, version_id=parent.pk, index=24,
                              messages=[{"role": "user", "content": "What is two plus two?"},
                                        {"role": "assistant", "content": "Two plus two is four, always."}])
    assert v.status == "ready" and v.example_count == 32
    assert spy.tokenized == 1 and spy.checked == 3  # the edit, the e-mail address (3) and "Hi!" (31)
    assert spy.signed == 1
    assert spy.copied == 31 and (spy.built == 1 or not _is_pg())
    assert parent.validation["counts"]["warning:short_answer"] == 2
    assert v.validation["counts"]["warning:short_answer"] == 1  # "Hi!" only
    _assert_as_from_scratch(v)
    deleted = services.example_edit(user=member, version_id=v.pk, index=0, messages=None, delete=True)
    assert deleted.example_count == 31
    _assert_as_from_scratch(deleted)


def test_an_unknown_example_fails_the_version_and_leaves_no_rows(member, parent):
    other = DatasetVersionFactory(owner=member, examples=good_rows(3))
    foreign = other.examples.first().pk
    v = _derive_version(user=member, parent=parent, note="bad", examples=iter([Unchanged(foreign)]),
                        stage={"stage": "test"})
    assert v.status == DatasetVersion.Status.FAILED and not v.examples.exists()


def test_stored_signatures_are_used_only_when_they_belong_to_the_content(member, parent, monkeypatch):
    """A stored MinHash signature stands for the example's text (a doctored one makes a near duplicate that the
    texts are not), unless the row's hash is not its content's or the signature was made another way: then it
    is computed again, and the new row stores the fresh one. A revalidation computes them all."""
    from apps.datasets.validation import dedup

    pks = dict(parent.examples.values_list("index", "pk"))
    stored = {r.index: bytes(r.minhash) for r in parent.examples.all()}
    assert all(dedup.unpack(b) is not None for b in stored.values())  # the import stored every signature
    Example.objects.filter(pk=pks[11]).update(minhash=stored[10])  # 11 now "looks like" 10
    Example.objects.filter(pk=pks[12]).update(minhash=bytes([dedup.SIGNATURE_VERSION + 1]) + stored[10][1:])
    Example.objects.filter(pk=pks[13]).update(minhash=stored[10], content_hash="0" * 64)
    spy = Spy(monkeypatch)
    v = _derive(member, parent, [Unchanged(pks[i]) for i in range(32)])
    assert spy.signed == 2  # 12 (another kind of signature) and 13 (not its content's hash)
    rows = _rows_of(v)
    assert {"near_duplicate", "split_leakage"} & set(rows[11]["issues"].strip("|").split("|"))  # reused
    assert _bytes(rows[11]["minhash"]) == stored[10]  # copied with the row
    for i in (12, 13):  # computed from the text again, and stored
        fresh = dedup.pack(dedup.signatures([dedup.example_text(_example_dict(v.examples.get(index=i)))]))[0]
        assert _bytes(rows[i]["minhash"]) == fresh != stored[10]
    assert not rows[12]["issues"] and not rows[13]["issues"]
    monkeypatch.undo()
    again = services.version_revalidate(user=member, version_id=v.pk, target="local")
    assert again.status == "ready" and not _rows_of(again)[11]["issues"]
    _assert_as_from_scratch(again)
