"""Blind voting by keyboard in a real browser (Debian's chromium through Playwright) against pytest-django's live
server, which sends the real Content-Security-Policy: the names stay hidden until a vote, keys 1–4 vote, c
writes a comment (digits typed there never vote), Esc leaves it, s skips; each vote is revealed and recorded
as pressed. The results page draws its plotly plots at heights that follow their rows, and no page raises a
CSP violation, a console error or an uncaught exception. The arena's page gets its websocket events from
Playwright's route_web_socket (the live server speaks no websocket).

With ARENA_SHOTS=<folder> every arena page is saved there as a 1440x900 screenshot (empty states and with
data), to be looked at."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from django.test import Client

from apps.arena.models import ArenaVote
from tests.arena.conftest import prefer_longer, vote_all
from tests.browser import PROBE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("ARENA_SHOTS")
EXPECTED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of (403|409|422)")


class Tab:
    """One logged-in page with the CSP probe, error collectors and a mocked arena websocket."""

    def __init__(self, browser, live_server, user, *, ws_events=()):
        c = Client()
        c.force_login(user)
        self.url = live_server.url
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        self.ctx.add_cookies([{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": self.url}])
        self.ctx.add_init_script(PROBE)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if (m.type == "error" and not EXPECTED_STATUS.search(m.text))
                     or "Content Security Policy" in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

        def on_ws(ws):
            for msg in ws_events:  # each arena's page hears only its own events
                if f"/ws/arenas/{msg['payload']['arena_id']}/" in ws.url:
                    ws.send(json.dumps(msg))
        self.page.route_web_socket("**/ws/arenas/**", on_ws)

    def go(self, path: str, status: int = 200):
        r = self.page.goto(self.url + path, wait_until="load")
        assert r is not None and r.status == status, f"{path}: {r and r.status}"
        self.page.wait_for_load_state("networkidle")

    def key(self, *keys: str):
        for k in keys:
            self.page.keyboard.press(k)

    def shot(self, name: str, full: bool = False):
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)

    def problems(self) -> list[str]:
        return list(self.page.evaluate("() => window.__csp || []")) + self.errors

    def close(self):
        self.ctx.close()


def _swaps(page, n):
    page.wait_for_function(f"() => window.hubArenaSwaps >= {n}")


def test_blind_voting_by_keyboard(browser, live_server, people, make_arena, generate):
    arena = generate(make_arena(prompts=["What is the capital of France?", "Explain recursion.", "Name a prime.",
                                         "Why is the sky blue?", "What is HTTP?"], voters=["v1"], name="Strong vs weak"))
    t = Tab(browser, live_server, people.v1)
    t.go(f"/arenas/{arena.pk}/vote/")
    page = t.page
    assert "fakeai" not in page.inner_text("main")  # nothing names a model before the vote
    assert page.locator("#reveal").count() == 0
    t.shot("vote-screen")

    def held():
        return ArenaVote.objects.select_related("match__a", "match__b").get(arena=arena, voter=people.v1,
                                                                             status="leased")

    # 2: the right answer wins; the reveal names both sides, as they were shown
    first = held()
    right_label = (first.match.b if first.match.left_is_a else first.match.a).label
    left_label = (first.match.a if first.match.left_is_a else first.match.b).label
    t.key("2")
    _swaps(page, 1)
    assert page.inner_text("#reveal [data-reveal=left]") == left_label
    assert page.inner_text("#reveal [data-reveal=right]") == right_label
    assert f"Right is better — {right_label}" in page.inner_text("#reveal")
    v = ArenaVote.objects.get(pk=first.pk)
    assert (v.status, v.winner, v.outcome) == ("done", "right", "b" if first.match.left_is_a else "a")
    t.shot("vote-revealed")

    # c writes a comment: digits typed there do not vote; Esc leaves the box, 1 votes left with it
    second = held()
    t.key("c")
    page.keyboard.type("Left cites 1 fact, 2 steps")
    assert ArenaVote.objects.get(pk=second.pk).status == "leased"
    t.key("Escape", "1")
    _swaps(page, 2)
    v = ArenaVote.objects.get(pk=second.pk)
    assert (v.winner, v.comment) == ("left", "Left cites 1 fact, 2 steps")
    # a second key pressed while the vote is on its way is dropped: it never votes on a pair not seen yet
    fast = held()
    t.key("1", "2")
    _swaps(page, 3)
    page.wait_for_timeout(300)
    assert ArenaVote.objects.get(pk=fast.pk).winner == "left"
    assert ArenaVote.objects.filter(arena=arena, voter=people.v1, status="done").count() == 3
    # s skips (the pair comes back last); 3 tie; 4 both bad; then the skipped one again
    third = held()
    t.key("s")
    _swaps(page, 4)
    assert "Skipped" in page.inner_text("#vote-hint")
    assert ArenaVote.objects.get(pk=third.pk).status == "skipped"
    fourth = held()
    t.key("3")
    _swaps(page, 5)
    assert ArenaVote.objects.get(pk=fourth.pk).winner == "tie"
    t.key("4")
    _swaps(page, 6)
    assert ArenaVote.objects.get(pk=third.pk).winner == "both_bad"  # the skipped pair came back and was voted
    page.wait_for_selector("#nothing-left")
    assert page.inner_text("#my-votes") == "5"
    t.shot("vote-nothing-left")
    assert not t.problems(), t.problems()
    t.close()


def test_every_arena_page(browser, live_server, people, make_arena, generate, upstream):
    # empty states first
    owner = Tab(browser, live_server, people.owner)
    owner.go("/arenas/")
    assert "No arenas yet" in owner.page.inner_text("#arena-list")
    owner.shot("list-empty")
    owner.go("/arenas/new/")
    owner.shot("new", full=True)
    owner.page.fill("#id_name", "From the form")
    owner.page.fill("#id_provider_models", "fakeai/strong\nnowhere/gpt")
    owner.page.check("#id_source_1")
    owner.page.click("#arena-form button[type=submit]")
    owner.page.wait_for_load_state("networkidle")
    assert "no provider is called" in owner.page.inner_text("#arena-form")
    owner.shot("new-errors", full=True)

    three = generate(make_arena(contestants=["fakeai/strong", "fakeai/weak", "fakeai/mid"], voters=["v1", "v2"],
                                overlap=2, judge_model="fakeai/judge", name="Three models"))
    from apps.arena.services import judge_process

    judge_process(arena_id=three.pk)
    vote_all(three, people.v1, prefer_longer)
    vote_all(three, people.v2, lambda left, right: "tie" if "mid" in left + right else prefer_longer(left, right))
    pending = make_arena(name="Still generating", voters=["v1"])
    from apps.arena.services import arena_export
    from tests.factories import ModelVersionFactory

    export = arena_export(user=people.owner, arena_id=three.pk)
    trained = ModelVersionFactory(name="dpo from three", dataset_version=export.version)
    events = [{"event": "snapshot", "payload": {"arena_id": three.pk, "status": "ready", "votes": 30, "required": 30,
                                                "matches": 15, "per_voter": {"v1": 15, "v2": 15}}}]
    owner.close()
    owner = Tab(browser, live_server, people.owner, ws_events=events)
    owner.go("/arenas/")
    assert owner.page.locator("#arena-list tbody tr").count() == 2
    owner.shot("list")
    owner.go(f"/arenas/{three.pk}/")
    owner.page.wait_for_function("() => window.hubArenaEvents >= 1")
    assert owner.page.inner_text("#ws-text") == "live"
    owner.shot("detail-owner", full=True)
    assert owner.page.locator("#exports tbody tr").count() == 1 and owner.page.is_visible("#dpo-form")
    owner.go(f"/models/{trained.pk}/")
    assert "Preference data" in owner.page.inner_text("main") and "Three models" in owner.page.inner_text("main")
    owner.shot("model-version-lineage")
    owner.go(f"/arenas/{pending.pk}/")
    owner.shot("detail-generating")
    owner.go(f"/arenas/{three.pk}/results/")
    owner.page.wait_for_function("() => window.hubArenaChartsDrawn === true")
    pairs_h = owner.page.eval_on_selector("#chart-pairs", "el => el.getBoundingClientRect().height")
    rank_h = owner.page.eval_on_selector("#chart-ranking", "el => el.getBoundingClientRect().height")
    assert pairs_h == pytest.approx(80 + 34 * 3, abs=2) and rank_h == pytest.approx(80 + 34 * 3, abs=2)
    assert owner.page.locator("#chart-pairs .main-svg").count() >= 1  # plotly replaced the server's SVG
    assert owner.page.inner_text("#ranking tbody tr:first-child td:nth-child(2)") == "fakeai/strong"
    owner.shot("results", full=True)
    item = three.items.order_by("index").first()
    owner.go(f"/arenas/{three.pk}/items/{item.pk}/")
    owner.shot("item", full=True)
    assert not owner.problems(), owner.problems()
    owner.close()
