"""The review pages through Django's test client: who may open which page, the forms' field errors (nothing
written on a bad form), example content with HTML in it escaped, and the review screen's htmx actions
(decide, skip, undo, turn marks, inline edits with their 422 and 409 answers, comments, flags), agreement,
adjudication, bulk actions, snapshot / finish and the JSONL export. Fixtures: tests/review/conftest.py."""
from __future__ import annotations

import json
import re

import pytest

from apps.review import selectors, services
from apps.review.models import BulkAction, ReviewComment, ReviewFlag, ReviewItem, ReviewResponse, ReviewTask, TurnEdit
from apps.review.views import conversation, kappa_class, kappa_matrix
from tests.review.conftest import chat_example

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]  # results built inline
HX = {"HTTP_HX_REQUEST": "true"}


def login(client, user):
    client.force_login(user)
    return client


def html_of(response) -> str:
    return response.content.decode().strip()


# -- list, nav, new task --------------------------------------------------------------------------------
def test_list_shows_each_user_their_tasks_and_the_nav_entry(client, people, make_task):
    task = make_task(n=3, name="Tone check")
    html = html_of(login(client, people.rev1).get("/reviews/"))
    assert 'href="/reviews/"' in html  # the nav entry
    assert "Tone check" in html and f"/reviews/{task.pk}/review/" in html
    assert "New review task" not in html  # reviewers do not create tasks
    html = html_of(login(client, people.member2).get("/reviews/"))
    assert "Tone check" not in html and "No review tasks" in html
    assert "New review task" in html
    html = html_of(login(client, people.owner).get("/reviews/"))
    assert "Tone check" in html and f"/reviews/{task.pk}/review/" not in html  # the owner is not an assignee


def test_new_task_form_shows_field_errors_and_writes_nothing(client, people, make_version):
    v = make_version(4)
    c = login(client, people.owner)
    r = c.get(f"/reviews/new/?dataset_version={v.pk}")
    assert r.status_code == 200
    assert f'<option value="{v.pk}" selected' in html_of(r)
    r = c.post("/reviews/new/", {"dataset_version": v.pk, "name": "", "overlap": 3, "assignees": ["rev1", "rev2"],
                                 "min_turns": "many"})
    assert r.status_code == 422
    html = html_of(r)
    assert "This field is required." in html  # name
    assert "Enter a whole number." in html  # min_turns
    # the service's own checks come back on their fields
    r = c.post("/reviews/new/", {"dataset_version": v.pk, "name": "x", "overlap": 3, "assignees": ["rev1", "rev2"]})
    assert r.status_code == 422
    assert "Overlap 3 needs at least 3 assignees" in html_of(r)
    r = c.post("/reviews/new/", {"dataset_version": v.pk, "name": "x", "overlap": 1, "assignees": ["rev1"],
                                 "q": "no example says this"})
    assert r.status_code == 422 and "The filter selects no examples" in html_of(r)
    assert ReviewTask.objects.count() == 0


def test_new_task_form_creates_the_task(client, people, make_version):
    v = make_version(12)
    r = login(client, people.owner).post("/reviews/new/", {
        "dataset_version": v.pk, "name": "Facts", "instructions": "Check every fact.", "overlap": 2,
        "assignees": ["rev1", "rev2", "rev3"], "lead": "lead", "labels": "tone, facts,  tone", "rating": "on",
        "q": "Question 1"})
    task = ReviewTask.objects.get()
    assert r.status_code == 302 and r.url == f"/reviews/{task.pk}/"
    assert (task.name, task.overlap, task.labels, task.rating, task.lead.username) == ("Facts", 2, ["tone", "facts"], True, "lead")
    assert task.filter == {"q": "Question 1"} and task.total_items == 3
    html = html_of(client.get(r.url))
    assert "Check every fact." in html and "Start reviewing" not in html  # the owner does not review


def test_reviewers_cannot_open_the_new_task_form(client, people, make_version):
    make_version(2)
    assert login(client, people.rev1).get("/reviews/new/").status_code == 403
    # a member only gets their own datasets' versions to choose from
    other = make_version(2, owner=people.member2)
    html = html_of(login(client, people.owner).get("/reviews/new/"))
    assert f'value="{other.pk}"' not in html


# -- permissions on every page --------------------------------------------------------------------------
def test_permission_matrix_of_the_pages(client, people, make_task):
    task = make_task(n=2, overlap=1, lead="lead")
    t = task.pk
    pages = {"detail": f"/reviews/{t}/", "review": f"/reviews/{t}/review/", "agreement": f"/reviews/{t}/agreement/",
             "adjudication": f"/reviews/{t}/adjudication/", "bulk": f"/reviews/{t}/bulk/",
             "export": f"/reviews/{t}/export/"}
    expected = {
        "rev1": {"detail": 200, "review": 200, "agreement": 200, "adjudication": 403, "bulk": 403, "export": 403},
        "owner": {"detail": 200, "review": 403, "agreement": 200, "adjudication": 403, "bulk": 200, "export": 200},
        "lead": {"detail": 200, "review": 403, "agreement": 200, "adjudication": 200, "bulk": 403, "export": 200},
        "admin1": {"detail": 200, "review": 403, "agreement": 200, "adjudication": 200, "bulk": 200, "export": 200},
        "member2": {k: 403 for k in pages},
    }
    for who, row in expected.items():
        login(client, getattr(people, who if who != "admin1" else "admin"))
        got = {k: client.get(url).status_code for k, url in pages.items()}
        assert got == row, who
    client.logout()
    r = client.get(pages["detail"])
    assert r.status_code == 302 and "/accounts/login/" in r.url
    login(client, people.rev1)
    assert client.get("/reviews/999999/").status_code == 404
    # actions are refused the same way (the services check)
    item = task.items.first()
    login(client, people.member2)
    assert client.post(f"/reviews/{t}/items/{item.pk}/decide/", {"decision": "accept"}, **HX).status_code == 403
    assert client.post(f"/reviews/{t}/finish/").status_code == 403
    assert not ReviewResponse.objects.filter(status="done").exists()


# -- the review screen ----------------------------------------------------------------------------------
HOSTILE = [
    {"role": "system", "content": "You help. <script>alert('sys')</script>"},
    {"role": "user", "content": "Read <b>bold</b> and <img src=x onerror=alert(1)> please\n```python\nprint('<hi>')\n```"},
    {"role": "assistant", "content": "<thinking>secret <i>plan</i></thinking>Let me look.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "read_file", "arguments": json.dumps({"path": "<evil>.py"})}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "<file path=\"a<b>.py\">x = '<tag>'</file>"},
    {"role": "assistant", "content": "Done: <a href=javascript:alert(2)>click</a>"},
]


def test_review_screen_renders_the_conversation_escaped(client, people, make_task, make_version):
    v = make_version(examples=[{"messages": HOSTILE}, chat_example(1)])
    task = make_task(version=v, instructions="Be <strict> & fair", labels=["tone <x>"], rating=True)
    r = login(client, people.rev1).get(f"/reviews/{task.pk}/review/")
    assert r.status_code == 200
    html = html_of(r)
    for raw in ("<script>alert('sys')", "<b>bold</b>", "<img src=x", "<i>plan</i>", "<a href=javascript",
                "<evil>", "<tag>", "<strict>", "tone <x>"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#x27;sys&#x27;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "Be &lt;strict&gt; &amp; fair" in html
    # thinking and file blocks are folded, the code block is a code block
    assert '<details class="thinking"><summary>thinking' in html and "secret &lt;i&gt;plan&lt;/i&gt;" in html
    assert '<details class="file-block"><summary>file <span class="mono">a&lt;b&gt;.py</span>' in html
    assert '<pre class="code" data-lang="python"><code>print(&#x27;&lt;hi&gt;&#x27;)</code></pre>' in html
    # the tool call and its result link to each other
    assert 'id="call-2-0"' in html and 'href="#turn-3"' in html and 'href="#call-2-0"' in html
    # the questions the task asks, the keys documented, scripts static (no inline code)
    assert 'data-label-key="1"' in html and 'data-rating-key="5"' in html
    assert "Keyboard shortcuts" in html and "/static/js/review.js" in html
    assert "<script>" not in html.replace('<script src="', "")
    assert not re.search(r"<[^>]*\son[a-z]+=", html)  # no inline event handler in any tag


def test_decide_skip_undo_and_history_over_htmx(client, people, make_task):
    task = make_task(n=3, overlap=1, assignees=[people.rev1])
    c = login(client, people.rev1)
    first = services.queue_next(user=people.rev1, task_id=task.pk)
    r = c.post(f"/reviews/{task.pk}/items/{first.pk}/decide/", {"decision": "accept", "comment": "ok"}, **HX)
    assert r.status_code == 200
    html = html_of(r)
    assert html.startswith('<div id="review-item"') and "<html" not in html  # the fragment only
    assert "Example #2" in html and "Accepted the example" in html
    assert r["HX-Push-Url"] == f"/reviews/{task.pk}/review/"
    resp = ReviewResponse.objects.get(item=first, reviewer=people.rev1)
    assert (resp.status, resp.decision, resp.comment) == ("done", "accept", "ok")
    second = ReviewItem.objects.get(task=task, example_index=1)
    r = c.post(f"/reviews/{task.pk}/items/{second.pk}/skip/", **HX)
    assert "Example #3" in html_of(r) and "Skipped" in html_of(r)
    # history: p shows the answered example, marked as such
    r = c.get(f"/reviews/{task.pk}/review/?item={first.pk}", **HX)
    assert "You answered this example" in html_of(r) and 'data-history="1"' in html_of(r)
    # undo: the last decision comes back to its reviewer
    r = c.post(f"/reviews/{task.pk}/undo/", **HX)
    assert "Example #1" in html_of(r) and "Undone" in html_of(r)
    assert ReviewResponse.objects.get(item=first, reviewer=people.rev1).status == "leased"
    r = c.post(f"/reviews/{task.pk}/undo/", **HX)
    assert "Nothing to undo" in html_of(r)
    # a decision the service refuses is shown in place, with its status
    r = c.post(f"/reviews/{task.pk}/items/{first.pk}/decide/", {"decision": "maybe"}, **HX)
    assert r.status_code == 422 and "The decision is accept, reject or skip." in html_of(r)
    r = c.post(f"/reviews/{task.pk}/items/{first.pk}/decide/", {"decision": "accept", "rating": "4"}, **HX)
    assert r.status_code == 422 and "This task asks for no rating." in html_of(r)


def test_labels_rating_flags_and_comments(client, people, make_task):
    task = make_task(n=2, overlap=1, assignees=[people.rev1], labels=["tone", "facts"], rating=True)
    c = login(client, people.rev1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    r = c.post(f"/reviews/{task.pk}/items/{item.pk}/flags/", {"flag": "pii", "on": "1"}, **HX)
    assert r.status_code == 200 and 'aria-pressed="true"' in html_of(r)
    assert list(ReviewFlag.objects.values_list("flag", flat=True)) == ["pii"]
    r = c.post(f"/reviews/{task.pk}/items/{item.pk}/flags/", {"flag": "shiny"}, **HX)
    assert r.status_code == 422 and "The flag is one of" in html_of(r)
    r = c.post(f"/reviews/{task.pk}/items/{item.pk}/comments/", {"body": "<b>look</b> here"}, **HX)
    assert r.status_code == 200 and "&lt;b&gt;look&lt;/b&gt; here" in html_of(r)
    r = c.post(f"/reviews/{task.pk}/items/{item.pk}/comments/", {"body": "   "}, **HX)
    assert r.status_code == 422 and "Write a comment" in html_of(r)
    assert ReviewComment.objects.count() == 1
    r = c.post(f"/reviews/{task.pk}/items/{item.pk}/decide/",
               {"decision": "reject", "labels": ["facts"], "rating": "2"}, **HX)
    assert r.status_code == 200
    resp = ReviewResponse.objects.get(item=item)
    assert (resp.decision, resp.labels, resp.rating) == ("reject", ["facts"], 2)


def test_turn_marks_and_inline_edit_with_validation(client, people, make_task):
    task = make_task(n=2, overlap=1, assignees=[people.rev1])
    c = login(client, people.rev1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    url = f"/reviews/{task.pk}/items/{item.pk}/turns/2/"
    r = c.post(url, {"action": "reject"}, **HX)
    assert r.status_code == 200 and html_of(r).startswith('<div class="rturn turn-assistant decided-reject"')
    assert ReviewResponse.objects.get(item=item).turn_decisions == {"2": "reject"}
    r = c.post(url, {"action": "clear"}, **HX)
    assert ReviewResponse.objects.get(item=item).turn_decisions == {}
    # an empty assistant turn is refused with a clear message, the edit box stays open, nothing is saved
    r = c.post(url, {"action": "edit", "content": "   ", "base_revision": "0"}, **HX)
    assert r.status_code == 422
    html = html_of(r)
    assert "an assistant turn cannot be empty" in html
    assert '<form class="rturn-edit"  method="post"' in html  # not hidden
    assert TurnEdit.objects.count() == 0 and ReviewItem.objects.get(pk=item.pk).revision == 0
    # the live preview diffs against the original, writing nothing
    r = c.post(url + "preview/", {"content": "Answer 0: <new> text."}, **HX)
    assert r.status_code == 200 and '<div class="add">+Answer 0: &lt;new&gt; text.</div>' in html_of(r)
    assert TurnEdit.objects.count() == 0
    # a good edit is saved and shown with its diff
    r = c.post(url, {"action": "edit", "content": "Answer 0: a better answer.\r\nWith two lines.",
                     "base_revision": "0"}, **HX)
    assert r.status_code == 200
    html = html_of(r)
    assert "edited by rev1" in html and '<div class="add">+Answer 0: a better answer.</div>' in html
    assert ReviewItem.objects.get(pk=item.pk).messages[2]["content"] == "Answer 0: a better answer.\nWith two lines."
    # the edit box of a tool-call turn refuses broken JSON
    r = c.post(url, {"action": "edit", "content": "x", "tool_calls": "[{", "base_revision": "1"}, **HX)
    assert r.status_code == 422 and "The tool calls are not valid JSON" in html_of(r)


def test_two_reviewers_editing_one_turn_get_a_conflict(client, people, make_task):
    task = make_task(n=1, overlap=2)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.queue_next(user=people.rev2, task_id=task.pk)
    login(client, people.rev2).post(f"/reviews/{task.pk}/items/{item.pk}/turns/2/",
                                    {"action": "edit", "content": "rev2's version", "base_revision": "0"}, **HX)
    r = login(client, people.rev1).post(f"/reviews/{task.pk}/items/{item.pk}/turns/2/",
                                        {"action": "edit", "content": "rev1's version", "base_revision": "0"}, **HX)
    assert r.status_code == 409
    html = html_of(r)
    assert "<strong>rev2</strong> changed this turn" in html and "rev2&#x27;s version" in html
    assert "rev1&#x27;s version</textarea>" in html  # nothing of rev1's is lost: it is still in the box
    assert 'name="base_revision" value="1"' in html  # saving again replaces theirs knowingly
    assert ReviewItem.objects.get(pk=item.pk).messages[2]["content"] == "rev2's version"
    r = client.post(f"/reviews/{task.pk}/items/{item.pk}/turns/2/",
                    {"action": "edit", "content": "rev1's version", "base_revision": "1"}, **HX)
    assert r.status_code == 200
    assert ReviewItem.objects.get(pk=item.pk).messages[2]["content"] == "rev1's version"


def test_nothing_left_and_finished_states(client, people, make_task):
    task = make_task(n=1, overlap=1, assignees=[people.rev1])
    c = login(client, people.rev1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    html = html_of(c.get(f"/reviews/{task.pk}/review/"))
    assert "Nothing left for you" in html and 'data-prev-url="/reviews/' in html
    services.task_finish(user=people.owner, task_id=task.pk)
    html = html_of(c.get(f"/reviews/{task.pk}/review/"))
    assert "This task is finished" in html


# -- agreement, adjudication ----------------------------------------------------------------------------
def _disagree(people, task, n):
    for _ in range(n):
        a = services.queue_next(user=people.rev1, task_id=task.pk)
        services.queue_next(user=people.rev2, task_id=task.pk)
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=a.pk, decision="accept")
        services.item_decide(user=people.rev2, task_id=task.pk, item_id=a.pk,
                             decision="reject" if a.example_index % 2 == 0 else "accept")


def test_agreement_page_empty_and_with_data(client, people, make_task):
    task = make_task(n=4, overlap=2)
    c = login(client, people.owner)
    html = html_of(c.get(f"/reviews/{task.pk}/agreement/"))
    assert "No answers yet" in html and "plotly" not in html
    _disagree(people, task, 4)
    html = html_of(c.get(f"/reviews/{task.pk}/agreement/"))
    assert 'id="kappa-matrix"' in html and "n=4" in html
    assert "/static/vendor/plotly-basic.min.js" in html and 'id="agreement-data"' in html
    data = json.loads(html.split('id="agreement-data" type="application/json">')[1].split("</script>")[0])
    assert data["reviewers"] == ["rev1", "rev2"] and data["done"] == [4, 4]
    assert data["accept_rate"] == [1.0, 0.5]


def test_adjudication_queue_side_by_side_and_final_edit(client, people, make_task):
    task = make_task(n=4, overlap=2, lead="lead")
    _disagree(people, task, 4)
    c = login(client, people.lead)
    html = html_of(c.get(f"/reviews/{task.pk}/adjudication/"))
    disputed = list(task.items.filter(state="disputed").order_by("example_index"))
    assert len(disputed) == 2
    assert all(f"/reviews/{task.pk}/adjudication/{i.pk}/" in html for i in disputed)
    url = f"/reviews/{task.pk}/adjudication/{disputed[0].pk}/"
    html = html_of(c.get(url))
    assert "rev1" in html and "rev2" in html and 'class="decision-accept"' in html and 'class="decision-reject"' in html
    # an edit that breaks the example is refused on its turn, nothing saved
    r = c.post(url, {"decision": "accept", "turn-2-content": "", "base_revision": "0"})
    assert r.status_code == 422 and "an assistant turn cannot be empty" in html_of(r)
    assert ReviewItem.objects.get(pk=disputed[0].pk).state == "disputed"
    r = c.post(url, {"decision": "accept", "turn-2-content": "A fixed answer.", "comment": "settled",
                     "base_revision": "0"})
    assert r.status_code == 302 and r.url == f"/reviews/{task.pk}/adjudication/{disputed[1].pk}/"
    item = ReviewItem.objects.get(pk=disputed[0].pk)
    assert (item.state, item.final_decision, item.messages[2]["content"]) == ("resolved", "accept", "A fixed answer.")


# -- bulk, result, export -------------------------------------------------------------------------------
def test_bulk_count_preview_and_apply(client, people, make_task):
    task = make_task(n=12, overlap=1)
    c = login(client, people.owner)
    r = c.get(f"/reviews/{task.pk}/bulk/?partial=count&q=Question+1", **HX)
    assert r.status_code == 200 and '<span id="match-count">3</span> of 12' in html_of(r)
    r = c.get(f"/reviews/{task.pk}/bulk/?partial=count&min_turns=lots", **HX)
    assert "Fix the filter" in html_of(r)
    r = c.post(f"/reviews/{task.pk}/bulk/", {"q": "Question 1", "action": "tag", "new_tag": ""})
    assert r.status_code == 422 and "Give the tag to add." in html_of(r)
    r = c.post(f"/reviews/{task.pk}/bulk/", {"q": "Question 1", "action": "assign", "assign_to": ["rev1"]})
    assert r.status_code == 302
    r = c.post(f"/reviews/{task.pk}/bulk/", {"state": "unreviewed", "split": "train", "action": "reject"})
    assert r.status_code == 302
    audit = BulkAction.objects.order_by("-pk").first()
    assert (audit.action, audit.count, audit.filter) == ("reject", 12, {"split": "train", "state": "unreviewed"})
    html = html_of(c.get(r.url))
    assert "Reject: 12 items" in html and 'id="bulk-audit"' in html


def test_snapshot_finish_and_export(client, people, make_task):
    task = make_task(n=2, overlap=1, assignees=[people.rev1])
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    c = login(client, people.owner)
    r = c.post(f"/reviews/{task.pk}/snapshot/")
    snap = task.snapshots.get()
    assert r.status_code == 302 and r.url == f"/reviews/{task.pk}/?made={snap.version_id}"
    html = html_of(c.get(r.url))
    assert "Snapshot: dataset version" in html
    assert f"/datasets/{snap.version.dataset_id}/?version={snap.version_id}" in html
    r = c.get(f"/reviews/{task.pk}/export/")
    lines = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines()]
    assert r["Content-Type"] == "application/jsonl" and len(lines) == 2
    assert lines[0]["responses"][0]["reviewer"] == "rev1"
    r = c.post(f"/reviews/{task.pk}/finish/")
    task.refresh_from_db()
    assert task.status == "finished" and task.result_version_id
    again = c.post(f"/reviews/{task.pk}/finish/")  # finishing twice gives the same version
    assert again.url == r.url
    html = html_of(c.get(r.url))
    assert "Finish the review" not in html and "finished" in html


def test_finish_refused_while_disputed_items_wait(client, people, make_task):
    task = make_task(n=2, overlap=2)
    _disagree(people, task, 2)
    r = login(client, people.owner).post(f"/reviews/{task.pk}/finish/", follow=True)
    assert r.status_code == 200 and "adjudicat" in html_of(r)
    assert ReviewTask.objects.get(pk=task.pk).status == "open"


# -- pure helpers ---------------------------------------------------------------------------------------
def test_conversation_links_calls_and_results():
    turns = conversation(HOSTILE, marks={"2": "reject"})
    assert turns[2]["tool_calls"][0]["result_turn"] == 3 and turns[2]["mark"] == "reject"
    assert turns[3]["answers"] == {"turn": 2, "anchor": "call-2-0", "name": "read_file"}
    assert [s["kind"] for s in turns[1]["segments"]] == ["text", "code"]
    assert [s["kind"] for s in turns[2]["segments"]] == ["thinking", "text"]
    assert turns[2]["tool_calls"][0]["arguments"] == '{\n "path": "<evil>.py"\n}'


def test_kappa_colours_and_matrix():
    assert [kappa_class(v) for v in (-1, 0, 1, None, 2)] == ["k-0", "k-5", "k-10", "k-na", "k-10"]
    m = kappa_matrix([{"a": "x", "b": "y", "cohen_kappa": 0.5, "n": 3}])
    assert m["names"] == ["x", "y"]
    assert m["rows"][0]["cells"][1] == {"kappa": 0.5, "n": 3, "css": "k-8"} and m["rows"][1]["cells"][1] == {"diag": True}


def test_progress_on_the_task_page(client, people, make_task):
    task = make_task(n=3, overlap=2)
    services.queue_next(user=people.rev1, task_id=task.pk)
    html = html_of(login(client, people.rev2).get(f"/reviews/{task.pk}/"))
    assert 'data-reviewer-bar="rev1"' in html and 'data-reviewer-bar="rev2"' in html
    assert "rev1 · #1" in html  # reviewing right now
    assert "/static/js/review_live.js" in html and 'data-task-id="%d"' % task.pk in html
    assert selectors.task_progress(task=task)["required"] == 6
