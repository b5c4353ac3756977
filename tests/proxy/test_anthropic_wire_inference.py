"""Anthropic Messages against the real inference process (tiny model): stop sequences reported by the server
come back as `stop_reason: stop_sequence`, count_tokens is the server's own count (tools included), and the
estimate in message_start comes from the model's tokenizer."""
from __future__ import annotations

import anthropic
import pytest

from tests.proxy.fake_upstream import ServerThread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(settings, hub_server, api_key, admin_user, tiny_base_model):
    from apps.proxy import tokencount
    from apps.proxy.gateway import caches_clear
    from apps.registry.services import alias_deploy, model_version_register
    from workers.inference.server import create_app

    version = model_version_register(name="tiny served", kind="adapter", base_model=tiny_base_model)
    alias_deploy(actor=admin_user, version_id=version.pk, alias="tinyclaude")
    caches_clear()
    tokencount.clear()
    with ServerThread(create_app(artifact_root=settings.ARTIFACT_ROOT)) as inference:
        settings.HUB_INFERENCE_URL = inference.url + "/v1"
        with anthropic.Anthropic(base_url=hub_server.url, api_key=api_key, max_retries=0, timeout=60) as client:
            yield client
    tokencount.clear()


def _pick_stop(text: str) -> str | None:
    """A short piece of the answer, preferably not at its very start (a random tiny model may repeat one
    character: then that character, and the cut answer is empty)."""
    for start in range(2, len(text) - 2):
        piece = text[start:start + 2]
        if piece.strip() == piece and text.find(piece) == start:
            return piece
    return text[:1] or None


def test_stop_sequences_and_counts_through_the_inference_server(served):
    ask = dict(model="tinyclaude", max_tokens=24, extra_body={"temperature": 0},
               messages=[{"role": "user", "content": "What is"}])
    free = served.messages.create(**ask)
    text = free.content[0].text if free.content else ""
    stop = _pick_stop(text)
    assert stop is not None, f"the tiny model's greedy answer is too short to cut: {text!r}"
    cut = served.messages.create(**ask, stop_sequences=[stop, "\x01never"])
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop
    assert (cut.content[0].text if cut.content else "") == text[:text.index(stop)]
    with served.messages.stream(**ask, stop_sequences=[stop]) as s:
        streamed = s.get_final_message()
    assert streamed.stop_reason == "stop_sequence" and streamed.stop_sequence == stop
    assert "".join(b.text for b in streamed.content if b.type == "text") == text[:text.index(stop)]

    tools = [{"name": "get_weather", "description": "The weather in a city.",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    plain = served.messages.count_tokens(model="tinyclaude", messages=ask["messages"]).input_tokens
    with_tools = served.messages.count_tokens(model="tinyclaude", messages=ask["messages"], tools=tools).input_tokens
    assert with_tools > plain >= 1
    assert free.usage.input_tokens == plain  # the count is the prompt the server really built

    with served.messages.stream(**ask, system="Be brief.") as s:
        events = list(s)
        final = s.get_final_message()
    estimate = events[0].message.usage.input_tokens
    real = final.usage.input_tokens
    assert real == served.messages.count_tokens(model="tinyclaude", system="Be brief.",
                                                messages=ask["messages"]).input_tokens
    assert abs(estimate - real) <= 2, (estimate, real)  # the template skeleton + contents, with the tokenizer
