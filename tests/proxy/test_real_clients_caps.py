"""Found by the real-CLI tests (test_real_clients.py): Codex treats a Responses answer with `status:
incomplete` as a failed turn, so an answer cut by the alias's max-tokens cap (which the client never asked
for) is `completed`; only the client's own `max_output_tokens` makes an answer `incomplete`."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def capped(versions, admin_user):
    """Alias `production` (the fake upstream) with a max-tokens cap of 3; `haiku` (the same model) uncapped."""
    from apps.proxy import providers
    from apps.proxy.gateway import caches_clear

    providers.chain_set(actor=admin_user, name="production", targets=[], settings={"max_tokens": 3})
    caches_clear()
    return versions


def test_an_answer_cut_by_the_alias_cap_is_completed(oai, capped, wired):
    # Codex sends no max_output_tokens: the cap is the only limit, and what it cut is the whole answer
    r = oai.responses.create(model="production", input="LENGTH")
    assert wired.seen[-1]["body"]["max_tokens"] == 3  # the cap reached the upstream
    assert r.status == "completed" and r.incomplete_details is None and r.output_text == "cut short"
    assert r.output[0].status == "completed"
    events = list(oai.responses.create(model="production", input="LENGTH", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "cut short"
    assert not [e for e in events if e.type in ("response.incomplete", "response.failed", "error")]
    # the client asked for more than the cap: the cap cut the answer first (2 tokens < 50)
    r = oai.responses.create(model="production", input="LENGTH", max_output_tokens=50)
    assert r.status == "completed"


def test_the_clients_own_limit_still_gives_incomplete(oai, capped):
    r = oai.responses.create(model="production", input="LENGTH", max_output_tokens=2)  # below the cap, reached
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    events = list(oai.responses.create(model="production", input="LENGTH", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete"
    # no cap, no client limit: the model's own limit cut it, as OpenAI reports it
    assert oai.responses.create(model="haiku", input="LENGTH").status == "incomplete"
