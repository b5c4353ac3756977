"""Finishing a review of an imported (validated) version: accepted items left as they are go to the datasets
side as `Unchanged` references (their rows copied, their stored figures reused), edited ones as examples;
the result has the tags, meta and lineage it always had, and the report and statistics of a validation from
scratch of the same examples."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets import services as dataset_services
from apps.review import services
from tests.datasets.test_derive_reuse import Spy, _assert_as_from_scratch, _rows_of
from tests.review.conftest import chat_example

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]  # imports and results inline


def test_finish_reuses_the_parents_figures_and_matches_a_validation_from_scratch(people, make_task, monkeypatch):
    rows = [chat_example(i) for i in range(12)]
    rows[7]["messages"][2]["content"] = "Short one."  # a short answer (its content checks run again)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    parent = dataset_services.dataset_import(user=people.owner, name="imported",
                                             file=SimpleUploadedFile("r.jsonl", data))
    assert parent.status == "ready" and "counts" in parent.validation
    before = _rows_of(parent)
    task = make_task(version=parent, overlap=1, assignees=[people.rev1])
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"q": "Question 3"}, action="tag", tag="hard")
    while (item := services.queue_next(user=people.rev1, task_id=task.pk)) is not None:
        i, messages = item.example_index, None
        if i == 4:
            messages = [dict(m) for m in item.example.messages]
            messages[2]["content"] = "Answer 4: an edited answer, with more words than before."
        turns = {"2": "reject"} if i == 6 else None  # kept as context only (weight 0): a changed example
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk,
                             decision="reject" if i in (0, 9) else "accept", messages=messages, turn_decisions=turns)
    spy = Spy(monkeypatch)
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    v = snap.version
    assert (snap.accepted, snap.rejected, snap.edited) == (10, 2, 1)
    assert v.status == "ready" and v.parent_id == parent.pk and v.example_count == 10
    # 4 (edited) and 6 (a rejected turn) were built, checked and tokenized; the other 8 rows were copied and
    # only their content checks that had found something (7: a short answer) ran again
    assert (spy.tokenized, spy.rechecked, spy.checked, spy.copied) == (2, 2, 3, 8)
    items = {it.example_index: it for it in task.items.all()}
    out = _rows_of(v)
    assert [r["meta"]["review"]["item"] for r in out] == [items[i].pk for i in range(12) if i not in (0, 9)]
    by_item = {r["meta"]["review"]["item"]: r for r in out}
    assert by_item[items[3].pk]["tags"] == ["hard"] and by_item[items[5].pk]["tags"] == []
    assert by_item[items[3].pk]["meta"] == {"kind": "chat", "review": {
        "task": task.pk, "item": items[3].pk, "decision": "accept", "edited": False}}
    assert by_item[items[4].pk]["meta"]["review"]["edited"] is True
    assert by_item[items[4].pk]["messages"][2]["content"].startswith("Answer 4: an edited")
    assert [m.get("weight") for m in by_item[items[6].pk]["messages"]] == [None, None, 0]
    assert by_item[items[5].pk]["messages"] == before[5]["messages"]
    assert "short_answer" in by_item[items[7].pk]["issues"]
    _assert_as_from_scratch(v)
    assert _rows_of(parent) == before  # the reviewed version is untouched
