"""Reward-based evaluations: the job end to end on a tiny version compared with its parent (answers generated and
scored per component, the summary with the paired comparison), the API's 422s, the registry endpoint, the pages."""
from __future__ import annotations

import math

import pytest
from django.test import Client

from apps.evaluations import stats

pytestmark = pytest.mark.django_db

CODE_TASK = {"prompt": "Write add(a, b).", "tests": "def test_add():\n    assert add(1, 2) == 3\n",
             "language": "python"}


@pytest.fixture
def api(api_key):
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


def _stub_queue(name: str) -> list:
    import dramatiq

    queue = dramatiq.get_broker().queues.get(name)
    return [dramatiq.Message.decode(m) for m in list(queue.queue)] if queue is not None else []


def test_evaluation_job_end_to_end_compares_with_parent(api, versions, task_dataset,
                                                        django_capture_on_commit_callbacks):
    import dramatiq

    from apps.evaluations.models import Evaluation, EvaluationAnswer
    from apps.evaluations.run import evaluation_process

    child, parent = versions
    dramatiq.get_broker().flush_all()
    weights = {"answer_match": 2, "length": 1, "distinct_ngrams": 1, "tests_pass": 1}
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post("/api/evaluations", {"model_version_id": child.pk, "compare_to_version_id": parent.pk,
                                          "dataset_version_id": task_dataset.pk, "weights": weights,
                                          "max_new_tokens": 12}, content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "queued" and body["task_count"] == 3 and body["compare_to"]["id"] == parent.pk
    assert body["progress"] == {"done": 0, "total": 6, "percent": 0.0}
    [msg] = _stub_queue("gpu")
    assert msg.actor_name == "evaluate_rewards" and list(msg.args) == [body["id"]]

    ev = evaluation_process(evaluation_id=body["id"])  # what the gpu worker does with the message
    assert ev.status == Evaluation.Status.SUCCEEDED, ev.error
    answers = list(EvaluationAnswer.objects.filter(task__evaluation=ev))
    assert len(answers) == 6 and {a.side for a in answers} == {"a", "b"}
    for a in answers:
        assert a.error == "" and set(a.components) == set(weights)
        assert a.components["tests_pass"]["skipped"]  # the dataset's tasks have answers, no tests
        assert 0.0 <= a.total <= 1.0
        assert f"expected {a.task.task['answer']}" in a.components["answer_match"]["detail"]
        live = {k: v for k, v in a.components.items() if not v["skipped"]}
        want = sum(weights[k] * v["score"] for k, v in live.items()) / sum(weights[k] for k in live)
        assert math.isclose(a.total, want)
    s = ev.summary
    for side in ("a", "b"):
        mine = [a.total for a in answers if a.side == side]
        assert math.isclose(s["sides"][side]["total"], sum(mine) / 3)
    diffs = sorted(a.total for a in answers if a.side == "a")
    cmp_ = s["comparison"]["total"]
    assert cmp_["n"] == 3 and cmp_["wins"] + cmp_["losses"] + cmp_["ties"] == 3
    assert math.isclose(cmp_["diff"], s["sides"]["a"]["total"] - s["sides"]["b"]["total"])
    assert cmp_["low"] <= cmp_["diff"] <= cmp_["high"] and diffs
    assert {"functionality", "efficiency"} <= set(s["sides"]["a"]["categories"]) <= {"functionality", "efficiency",
                                                                                       "innovation"}

    got = api.get(f"/api/evaluations/{ev.pk}").json()
    assert got["status"] == "succeeded" and got["summary"]["comparison"]["total"]["n"] == 3
    tasks = api.get(f"/api/evaluations/{ev.pk}/tasks").json()
    assert len(tasks) == 3 and all(len(t["answers"]) == 2 for t in tasks)
    # run again: nothing to do (the job is finished), nothing duplicated
    evaluation_process(evaluation_id=ev.pk)
    assert EvaluationAnswer.objects.filter(task__evaluation=ev).count() == 6


def test_task_list_with_tests_and_a_hanging_plugin(api, versions, django_capture_on_commit_callbacks):
    """Given tasks (one with tests), a plugin that hangs: it scores 0 with its error and the run finishes."""
    from workers.engine import rewards

    from apps.evaluations.run import evaluation_process

    before = dict(rewards.COMPONENTS)
    rewards.load_plugins(["tests.rewards.plugin_fixtures"])
    try:
        child, _ = versions
        r = api.post("/api/evaluations", {"model_version_id": child.pk, "tasks": [CODE_TASK, "Say hi."],
                                          "weights": {"tests_pass": 1, "code_parses": 1, "hangs": 1},
                                          "max_new_tokens": 8}, content_type="application/json")
        assert r.status_code == 201, r.content
        ev = evaluation_process(evaluation_id=r.json()["id"])
        assert ev.status == "succeeded", ev.error
        a = ev.tasks.get(index=0).answers.get(side="a")
        assert a.components["hangs"]["score"] == 0.0 and "timed out" in a.components["hangs"]["error"]
        assert not a.components["tests_pass"]["skipped"] and a.components["tests_pass"]["score"] == 0.0
        assert ev.summary["sides"]["a"]["components"]["hangs"]["errors"] == 2
        assert "comparison" not in ev.summary
    finally:
        rewards.COMPONENTS.clear()
        rewards.COMPONENTS.update(before)


def _fields(r) -> dict:
    assert r.status_code == 422, r.content
    return {e["field"]: e["message"] for e in r.json()["errors"]}


def test_api_422s(api, versions, task_dataset, tiny_base_model):
    from tests.factories import DatasetVersionFactory, ModelVersionFactory

    child, parent = versions
    post = lambda body: api.post("/api/evaluations", body, content_type="application/json")  # noqa: E731
    f = _fields(post({"model_version_id": child.pk, "tasks": ["hi"], "weights": {"nope": 1, "lint": -1}}))
    assert "weights.nope" in f and "Unknown reward component" in f["weights.nope"] and "weights.lint" in f
    assert "weights" in _fields(post({"model_version_id": child.pk, "tasks": ["hi"], "weights": {"lint": 0}}))
    assert "preset" in _fields(post({"model_version_id": child.pk, "tasks": ["hi"], "preset": "nope"}))
    assert "tasks" in _fields(post({"model_version_id": child.pk}))
    assert "tasks" in _fields(post({"model_version_id": child.pk, "tasks": []}))
    f = _fields(post({"model_version_id": child.pk, "tasks": ["ok", {"prompt": ""}, {"prompt": "x", "answer": [1]}]}))
    assert set(f) == {"tasks.1.prompt", "tasks.2.answer"}
    empty = DatasetVersionFactory(examples=[{"messages": [{"role": "user", "content": "a"},
                                                          {"role": "assistant", "content": "b"}]}])
    assert "dataset_version_id" in _fields(post({"model_version_id": child.pk, "dataset_version_id": empty.pk}))
    remote = ModelVersionFactory(kind="remote", base_model=tiny_base_model, remote_model_id="acme/x", name="far away")
    f = _fields(post({"model_version_id": remote.pk, "tasks": ["hi"]}))
    assert "model_version_id" in f and "no weights here" in f["model_version_id"]
    f = _fields(post({"model_version_id": 999999, "compare_to_version_id": remote.pk, "tasks": ["hi"]}))
    assert "does not exist" in f["model_version_id"] and "compare_to_version_id" in f
    assert "compare_to_version_id" in _fields(post({"model_version_id": child.pk, "compare_to_version_id": child.pk,
                                                    "tasks": ["hi"]}))
    assert "max_tasks" in _fields(post({"model_version_id": child.pk, "tasks": ["hi"], "max_tasks": 0}))
    from apps.evaluations.models import Evaluation

    assert Evaluation.objects.count() == 0
    assert api.get("/api/evaluations/999999").status_code == 404


def test_components_endpoint(api):
    body = api.get("/api/rewards/components").json()
    names = {c["name"] for c in body["components"]}
    assert {"code_parses", "lint", "complexity", "tests_pass", "answer_match", "tool_calls", "file_blocks",
            "length", "distinct_ngrams"} <= names
    assert body["presets"]["autonomous-agent"]["complexity"] == 0.2
    assert "105" in body["preset_notes"]["autonomous-agent"]


def test_generated_tasks_upload_and_meta_tests():
    from apps.evaluations.tasks import parse_upload, task_from_messages, tasks_from_list

    items = parse_upload('{"title": "Fix add", "description": "add subtracts", "files": ["calc.py"], '
                         '"acceptance_criteria": ["add(1, 2) == 3"]}\n"plain prompt"\n')
    tasks, errors = tasks_from_list(items)
    assert not errors and tasks[0]["metadata"]["expects_files"] and tasks[0]["language"] == "python"
    assert "<file path=" in tasks[0]["prompt"][0]["content"] and tasks[1]["prompt"][0]["content"] == "plain prompt"
    t = task_from_messages(
        [{"role": "user", "content": "Write `calc.py`.\n\n`test_calc.py`:\n```python\nfrom calc import add\n"
                                     "def test_add():\n    assert add(1, 2) == 3\n```"},
         {"role": "assistant", "content": '<file path="calc.py">\ndef add(a, b):\n    return a + b\n</file>'}],
        None, {"generator": "tests_to_impl", "tests": "test_calc.py", "language": "Python"})
    assert t["tests"].startswith("from calc import add") and t["language"] == "python"
    assert t["metadata"]["expects_files"] and t["metadata"]["reference"].startswith("<file")


def test_bootstrap_interval():
    assert stats.bootstrap_ci([]) is None and stats.bootstrap_ci([0.5]) == (0.5, 0.5)
    lo, hi = stats.bootstrap_ci([0.1, 0.2, 0.3, 0.4, 0.5] * 4)
    assert 0.2 < lo < 0.3 < hi < 0.4
    assert stats.bootstrap_ci([1.0] * 10) == (1.0, 1.0)


def test_pages_poll_then_refresh(client, member, versions):
    from apps.evaluations import services

    child, _ = versions
    ev = services.evaluation_create(user=member, model_version_id=child.pk, tasks=["Say hi."], preset="tool-use")
    client.force_login(member)
    r = client.get(f"/evaluations/{ev.pk}/", HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and b"<html" not in r.content and b'hx-trigger="every 2s"' in r.content
    assert "HX-Refresh" not in r
    services.evaluation_cancel(user=member, evaluation_id=ev.pk)  # queued, nobody on it: cancelled at once
    r = client.get(f"/evaluations/{ev.pk}/", HTTP_HX_REQUEST="true")
    assert r["HX-Refresh"] == "true" and b"every 2s" not in r.content
    page = client.get(f"/evaluations/{ev.pk}/")
    assert page.status_code == 200 and b"cancelled" in page.content
    assert client.get(f"/evaluations/{ev.pk}/tasks/999999/").status_code == 404
    assert client.get(f"/models/{child.pk}/").content.count(b'id="evaluate-version"') == 1
    new = client.get(f"/evaluations/new/?version={child.pk}")
    assert new.status_code == 200 and f'<option value="{child.parent_id}" selected'.encode() in new.content


def test_cancel_during_the_run_and_a_version_that_cannot_load(member, versions, monkeypatch, settings):
    import shutil
    from pathlib import Path

    from apps.evaluations import run, services

    child, parent = versions
    asked = iter([False, True])
    monkeypatch.setattr(run._Job, "should_stop", lambda self: next(asked, True))
    ev = services.evaluation_create(user=member, model_version_id=child.pk, tasks=["One.", "Two.", "Three."],
                                    preset="tool-use", max_new_tokens=4)
    ev = run.evaluation_process(evaluation_id=ev.pk)
    assert ev.status == "cancelled" and ev.summary["sides"]["a"]["n"] == 1  # the one answered before is kept
    assert ev.tasks.get(index=0).answers.count() == 1 and not ev.tasks.get(index=1).answers.exists()
    monkeypatch.undo()

    ev = services.evaluation_create(user=member, model_version_id=parent.pk, tasks=["One."], preset="tool-use")
    shutil.rmtree(Path(settings.ARTIFACT_ROOT) / parent.artifact_path)  # the weights went away after creation
    ev = run.evaluation_process(evaluation_id=ev.pk)
    assert ev.status == "failed" and "Could not load the model version" in ev.error
    assert ev.job.error_code == "E_EVALUATION_FAILED"


def test_task_page_shows_the_offered_tools_one_per_line(client, member, versions):
    """A task's tool definitions: one collapsible entry per tool (name, description, argument schema), as on the
    traffic pages, not one JSON dump of the whole list; content escaped."""
    from apps.evaluations import services

    child, _ = versions
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather <b>now</b>",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "list_cities"}}]
    ev = services.evaluation_create(user=member, model_version_id=child.pk,
                                    tasks=[{"prompt": "Weather in Paris?", "tools": tools}], preset="tool-use")
    client.force_login(member)
    page = client.get(f"/evaluations/{ev.pk}/tasks/{ev.tasks.get().pk}/").content.decode()
    assert page.count('<details class="tool">') == 2
    assert '<strong class="mono">get_weather</strong>' in page and '<strong class="mono">list_cities</strong>' in page
    assert "Current weather &lt;b&gt;now&lt;/b&gt;" in page and "<b>now</b>" not in page
    assert "&quot;city&quot;: {" in page and "No arguments." in page
    assert "<dt>tools</dt>" not in page and "Tools the model was offered (2)" in page
