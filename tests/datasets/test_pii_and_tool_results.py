"""Issue 14, polish: US-style phone numbers with parentheses are personal data, and a tool call that never gets
a result is reported (a warning on the example's line)."""
import json

import pytest

from apps.datasets.validation import validate_path
from apps.datasets.validation.content import _scan, find_phones, unanswered_tool_calls

from .conftest import good_rows


@pytest.mark.parametrize("text", [
    "Call me at (206) 734-8812 tomorrow.",
    "Her number: (206)734-8812.",
    "+1 (206) 734-8812 is the front desk",
    "Dial 1-206-734-8812 after six.",
    "Reach us on 206-734-8812 or 206.734.8812",
    "Call our office on +44 20 7946 0958 during office hours please.",
])
def test_phone_numbers_are_personal_data(text):
    assert find_phones(text), text
    assert "pii_phone" in _scan(text), text


@pytest.mark.parametrize("text", [
    "for i in range(10) 100-2000",
    "Use version 1.20.300 of the package.",
    "The meeting is on 2024-01-15 at 10:30.",
    "listen on 127.0.0.1:8000",
    "call foo(206) 734-8812",  # code: a function call, not a phone number
    "a ratio of 3:2 and 12 345 apples",
])
def test_not_phone_numbers(text):
    assert "pii_phone" not in _scan(text), (text, find_phones(text))


U = {"role": "user", "content": "What is the weather in Oslo today?"}
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
A = {"role": "assistant", "content": "It is three degrees and cloudy in Oslo right now."}


def test_unanswered_tool_calls_helper():
    reply = {"role": "tool", "tool_call_id": "c1", "content": "3"}
    assert unanswered_tool_calls([U, CALL, reply, A]) == []
    assert [(i, j) for i, j, _ in unanswered_tool_calls([U, CALL, A])] == [(1, 0)]
    # a result BEFORE the call does not answer it; a result by name (no id) does
    assert unanswered_tool_calls([U, reply, CALL, A])
    assert unanswered_tool_calls([U, CALL, {"role": "tool", "name": "get_weather", "content": "3"}, A]) == []


def test_unanswered_tool_call_is_a_warning_on_its_line(tmp_path):
    rows = good_rows(10) + [{"messages": [U, CALL, A], "tools": TOOLS},
                            {"messages": [U, CALL, {"role": "tool", "tool_call_id": "c1", "content": "3"}, A],
                             "tools": TOOLS}]
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = validate_path(p, target="local").as_dict()
    hits = [w for w in rep["warnings"] if w["code"] == "unanswered_tool_call"]
    assert len(hits) == 1, rep["warnings"]
    assert hits[0]["line"] == 11 and "get_weather" in hits[0]["message"] and "'c1'" in hits[0]["message"]
    assert not rep["errors"]
