"""Review edits as preference pairs (apps.review.services.preferences): one pair per edited assistant turn of an
accepted example — the item's final text preferred, the dataset's original not — with whitespace-only edits,
user-turn edits, examples not accepted and rejected turns left out; the export as a ready preference dataset
version with provenance in meta (and re-export as a new version of it); who may export; the empty case (422);
/api/reviews/{id}/preference-export and /dpo; the task page's buttons."""
from __future__ import annotations

import json

import pytest

from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed
from apps.review import services
from tests.factories import ApiKeyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]


def _conversation(i: int) -> dict:
    return {"messages": [
        {"role": "system", "content": "You answer arithmetic briefly."},
        {"role": "user", "content": f"Question {i}: what is {i} plus {i + 1}?"},
        {"role": "assistant", "content": f"Answer {i}: it is {2 * i + 5}, I think."},
        {"role": "user", "content": f"Are you sure about question {i}?"},
        {"role": "assistant", "content": f"Yes, for question {i} I am sure it is {2 * i + 5}."},
    ]}


def _decide(task, reviewer, index, decision="accept", edits=None, turn_decisions=None):
    """`reviewer` takes items until the one at `index` and decides it, with `edits` {turn: new content}."""
    item = services.queue_next(user=reviewer, task_id=task.pk)
    while item.example_index != index:
        services.item_skip(user=reviewer, task_id=task.pk, item_id=item.pk)
        item = services.queue_next(user=reviewer, task_id=task.pk)
    messages = None
    if edits:
        from apps.review.services.edits import current_messages

        messages = [dict(m) for m in current_messages(item)]
        for turn, content in edits.items():
            messages[turn]["content"] = content
    services.item_decide(user=reviewer, task_id=task.pk, item_id=item.pk, decision=decision, messages=messages,
                         turn_decisions=turn_decisions)
    return item


@pytest.fixture
def edited_task(people, make_task, make_version):
    """Overlap 1, rev1 alone: 0 answer fixed; 1 whitespace only; 2 the user turn only; 3 fixed but rejected;
    4 both answers fixed, the first turn rejected; 5 the question and the last answer changed; 6 untouched."""
    task = make_task(overlap=1, assignees=[people.rev1], version=make_version(examples=[_conversation(i)
                                                                                        for i in range(7)]))
    rev1 = people.rev1
    _decide(task, rev1, 0, edits={2: "Answer 0: it is 1."})
    _decide(task, rev1, 1, edits={2: "Answer 1:  it is 7,\n I think."})
    _decide(task, rev1, 2, edits={1: "Question 2: what is 2 plus 2?"})
    _decide(task, rev1, 3, decision="reject", edits={2: "Answer 3: it is 7."})
    _decide(task, rev1, 4, edits={2: "Answer 4: it is 9.", 4: "Yes: 4 plus 5 is 9."}, turn_decisions={"2": "reject"})
    _decide(task, rev1, 5, edits={1: "Question 5: what is 5 plus 5?", 4: "Sorry, 5 plus 5 is 10."})
    _decide(task, rev1, 6)
    return task


def test_pairs_follow_the_edits(people, edited_task):
    rows, provenance, counts = services.preference_pairs(edited_task)
    assert counts == {"pairs": 3, "whitespace_only": 1, "not_accepted": 1, "rejected_turn": 1, "tool_calls": 0,
                      "no_context": 0}
    originals = {i: _conversation(i)["messages"] for i in range(7)}
    r0, r4, r5 = rows
    assert r0 == {"input": {"messages": originals[0][:2]},
                  "preferred_output": [{"role": "assistant", "content": "Answer 0: it is 1."}],
                  "non_preferred_output": [originals[0][2]]}
    # example 4: the rejected first answer gives no pair but stays in the context as the review left it
    assert r4["input"]["messages"][2]["content"] == "Answer 4: it is 9."
    assert r4["preferred_output"][0]["content"] == "Yes: 4 plus 5 is 9."
    assert r4["non_preferred_output"] == [originals[4][4]]
    # example 5: the edited question is the pair's context (the reviewed version's), not the original one
    assert r5["input"]["messages"][1]["content"] == "Question 5: what is 5 plus 5?"
    assert [m["role"] for m in r5["input"]["messages"]] == ["system", "user", "assistant", "user"]
    items = {i.example_index: i for i in edited_task.items.all()}
    assert [(p["example_index"], p["turn"]) for p in provenance] == [(0, 2), (4, 4), (5, 4)]
    assert provenance[0] == {"task": edited_task.pk, "item": items[0].pk, "example": items[0].example_id,
                             "example_index": 0, "turn": 2, "reviewer": "rev1", "editors": ["rev1"],
                             "decision": "accept", "state": "agreed"}


def test_several_reviewers_the_final_edit_wins_and_disputes_wait(people, make_task, make_version):
    task = make_task(overlap=2, assignees=[people.rev1, people.rev2],
                     version=make_version(examples=[_conversation(i) for i in range(2)]))
    _decide(task, people.rev1, 0, edits={2: "Answer 0: it is 1, first fix."})
    _decide(task, people.rev2, 0, edits={2: "Answer 0: 0 plus 1 is 1."})  # rev2 sees rev1's fix and rewrites it
    _decide(task, people.rev1, 1, edits={4: "Answer 1: it is 3."})
    _decide(task, people.rev2, 1, decision="reject")
    rows, provenance, counts = services.preference_pairs(task)
    assert counts["pairs"] == 1 and counts["not_accepted"] == 1  # example 1 is disputed: no final accept yet
    assert rows[0]["preferred_output"][0]["content"] == "Answer 0: 0 plus 1 is 1."
    assert rows[0]["non_preferred_output"][0]["content"] == "Answer 0: it is 5, I think."
    assert provenance[0]["reviewer"] == "rev2" and provenance[0]["editors"] == ["rev1", "rev2"]
    # the adjudicator accepts example 1: rev1's edit is now a pair
    item1 = task.items.get(example_index=1)
    services.item_adjudicate(user=people.admin, task_id=task.pk, item_id=item1.pk,
                             decision="accept")
    rows, provenance, counts = services.preference_pairs(task)
    assert counts["pairs"] == 2 and provenance[1]["state"] == "resolved" and provenance[1]["reviewer"] == "rev1"


def test_export_makes_a_preference_version_with_provenance(people, edited_task):
    from apps.datasets.models import Example

    e = services.review_preference_export(user=people.owner, task_id=edited_task.pk, name="fixed answers")
    v = e.version
    assert e.pairs == 3 and v.status == "ready" and v.example_count == 3 and v.dataset.name == "fixed answers"
    assert v.dataset.owner_id == people.owner.pk and v.source_name == f"review-{edited_task.pk}-preferences.jsonl"
    examples = list(Example.objects.filter(version=v).order_by("source_line"))
    assert [ex.meta["kind"] for ex in examples] == ["preference"] * 3
    assert [ex.meta["review"]["example_index"] for ex in examples] == [0, 4, 5]
    assert all(ex.meta["review"]["task"] == edited_task.pk and ex.meta["review"]["reviewer"] == "rev1"
               for ex in examples)
    first = examples[0]
    assert first.messages[-1]["content"] == "Answer 0: it is 1."  # chosen: the reviewed turn
    assert first.meta["non_preferred_output"] == [{"role": "assistant", "content": "Answer 0: it is 5, I think."}]
    # DPO accepts it as pairs (no field error on the dataset)
    from apps.training.services.preferences import preference_problem

    assert preference_problem(v, method="dpo") is None
    assert services.last_preference_export(edited_task).pk == v.pk
    again = services.review_preference_export(user=people.owner, task_id=edited_task.pk)
    assert again.version.dataset_id == v.dataset_id and again.version.number == v.number + 1
    assert services.last_preference_export(edited_task).pk == again.version.pk


def test_who_may_export(people, edited_task, make_task):
    with pytest.raises(PermissionDenied):
        services.review_preference_export(user=people.rev1, task_id=edited_task.pk)  # an assignee
    with pytest.raises(PermissionDenied):
        services.review_preference_export(user=people.member2, task_id=edited_task.pk)  # not part of it
    with pytest.raises(NotFound):
        services.review_preference_export(user=people.owner, task_id=edited_task.pk + 1000)
    with pytest.raises(PermissionDenied):
        services.review_dpo_start(user=people.rev1, task_id=edited_task.pk, base_model="tiny")
    e = services.review_preference_export(user=people.admin, task_id=edited_task.pk)
    assert e.pairs == 3 and e.version.dataset.owner_id == people.admin.pk


def test_nothing_edited_is_a_422(people, make_task):
    task = make_task(n=3, overlap=1, assignees=[people.rev1])
    with pytest.raises(ValidationFailed) as exc:
        services.review_preference_export(user=people.owner, task_id=task.pk)
    assert exc.value.status_code == 422 and exc.value.errors[0]["field"] == "edits"
    assert exc.value.message.startswith("No edited assistant turn to build pairs from")
    # an edit taken back by undo is no edit
    item = _decide(task, people.rev1, 0, edits={2: "Answer 0: a real fix."})
    assert services.preference_pairs(task)[2]["pairs"] == 1
    services.decision_undo(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    assert services.preference_pairs(task)[2] == dict.fromkeys(services.preferences.COUNT_KEYS, 0)
    # a whitespace-only edit says why it was left out
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    msgs = [dict(m) for m in item.example.messages]
    msgs[2]["content"] = msgs[2]["content"].replace(" ", "  ", 1)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", messages=msgs)
    with pytest.raises(ValidationFailed) as exc:
        services.review_preference_export(user=people.owner, task_id=task.pk)
    assert "1 changed only whitespace" in exc.value.message
    with pytest.raises(ValidationFailed) as exc:  # no export yet: nothing to train on
        services.review_dpo_start(user=people.owner, task_id=task.pk, base_model="tiny")
    assert exc.value.errors[0]["field"] == "dataset_version_id"
    from apps.datasets.models import DatasetVersion

    assert not DatasetVersion.objects.filter(source_name=f"review-{task.pk}-preferences.jsonl").exists()


def _api(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
    return client


def _post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_api_export_and_dpo(client, people, edited_task, make_task, tiny_base_model):
    from apps.training.models import TrainingRun

    api = _api(client, people.owner)
    r = _post(api, f"/api/reviews/{edited_task.pk}/dpo", {"base_model": "tiny"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset_version_id"  # export first
    r = _post(api, f"/api/reviews/{edited_task.pk}/preference-export", {"name": "pairs"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["pairs"] == 3 and body["skipped"] == {"whitespace_only": 1, "not_accepted": 1, "rejected_turn": 1,
                                                      "tool_calls": 0, "no_context": 0}
    r = _post(api, f"/api/reviews/{edited_task.pk}/dpo", {"base_model": "nope"})
    assert r.status_code == 422 and "base_model" in [e["field"] for e in r.json()["errors"]]
    r = _post(api, f"/api/reviews/{edited_task.pk}/dpo", {"dataset_version_id": 999999})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset_version_id"
    r = _post(api, f"/api/reviews/{edited_task.pk}/dpo", {"base_model": "tiny", "hyperparameters": {"max_steps": 2}})
    assert r.status_code == 201, r.content
    run = TrainingRun.objects.get(pk=r.json()["run_id"])
    assert run.method == "dpo" and run.dataset_version_id == body["dataset_version_id"] and run.base_model_id == "tiny"
    assert r.json()["dataset_version_id"] == body["dataset_version_id"]
    # an empty task: 422 naming the field; a reviewer or someone outside the task: 403; no such task: 404
    empty = make_task(n=2, overlap=1, assignees=[people.rev1])
    r = _post(api, f"/api/reviews/{empty.pk}/preference-export")
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "edits", "message": r.json()["detail"]}] and "No edited assistant turn" in r.json()["detail"]
    assert _post(_api(client, people.rev1), f"/api/reviews/{edited_task.pk}/preference-export").status_code == 403
    assert _post(api, f"/api/reviews/{edited_task.pk + 1000}/preference-export").status_code == 404
    assert _post(_api(client, people.member2), f"/api/reviews/{edited_task.pk}/preference-export").status_code == 403


def test_task_page_buttons(client, people, edited_task, tiny_base_model):
    from apps.training.models import TrainingRun

    client.force_login(people.owner)
    page = client.get(f"/reviews/{edited_task.pk}/").content.decode()
    assert "Export edits as preference pairs" in page and "Train DPO on them" not in page  # nothing exported yet
    r = client.post(f"/reviews/{edited_task.pk}/preference-export/", follow=True)
    page = r.content.decode()
    assert "Exported 3 preference pairs" in page and "(3 edited turns left out)" in page
    assert 'id="preference-export"' in page and "Train DPO on them" in page
    r = client.post(f"/reviews/{edited_task.pk}/dpo/", {"base_model": "tiny"})
    run = TrainingRun.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/runs/{run.pk}/" and run.method == "dpo"
    client.force_login(people.rev1)  # reviewers see no export button and cannot post it
    assert "Export edits as preference pairs" not in client.get(f"/reviews/{edited_task.pk}/").content.decode()
    assert client.post(f"/reviews/{edited_task.pk}/preference-export/").status_code == 302
    from apps.datasets.models import DatasetVersion

    assert DatasetVersion.objects.filter(source_name=f"review-{edited_task.pk}-preferences.jsonl").count() == 1
