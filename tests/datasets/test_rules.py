"""Every validation rule: a failing case with the right code, severity and line, and a passing case."""
import json

import pytest

from apps.datasets.validation import validate_path

from .conftest import chat, good_rows

U = {"role": "user", "content": "How do I sort a list in Python?"}
A = {"role": "assistant", "content": "Call sorted(items) to get a new sorted list back."}


def msgs(*m, **extra):
    return {"messages": list(m), **extra}


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
TOOL_REPLY = {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"}

# (bad row, target, code, severity); the bad row is written as line 11, after 10 good rows
CASES = [
    ('{"messages": [', "local", "truncated_json", "error"),
    ('{"messages": [}', "local", "invalid_json", "error"),
    ("[1, 2]", "local", "not_an_object", "error"),
    ({"foo": 1}, "local", "unknown_row_format", "error"),
    ({"text": "a plain text row here"}, "local", "mixed_formats", "error"),
    (msgs(U, A, source="x"), "together", "unexpected_column", "error"),
    (msgs(U, A, tools=TOOLS), "together", "unexpected_column", "error"),
    ({"messages": "hello"}, "local", "messages_not_list", "error"),
    ({"messages": []}, "local", "empty_messages", "error"),
    (msgs({"role": "user", "content": "bad\u0000byte"}, A), "local", "nul_character", "error"),
    (msgs({"content": "hi"}, A), "local", "missing_role", "error"),
    (msgs({"role": "robot", "content": "hi"}, A), "local", "invalid_role", "error"),
    (msgs(U, CALL, TOOL_REPLY, A), "together", "role_not_supported", "error"),
    (msgs(U, {"role": "assistant"}), "local", "missing_content", "error"),
    (msgs({"role": "user", "content": None}, A), "local", "null_content", "error"),
    (msgs({"role": "user", "content": 5}, A), "local", "content_not_string", "error"),
    (msgs(dict(U, mood="happy"), A), "openai", "unexpected_message_key", "error"),
    (msgs(U, U, A), "together", "consecutive_same_role", "error"),
    (msgs(U, U, A), "local", "consecutive_same_role", "warning"),
    (msgs(A, U, A), "together", "must_start_with_user", "warning"),
    (msgs(U, A, {"role": "system", "content": "be brief"}, U, A), "together", "system_not_first", "error"),
    (msgs(U, dict(A, weight=2)), "local", "invalid_weight", "error"),
    (msgs(dict(U, weight=1), A), "local", "weight_not_on_assistant", "error"),
    (msgs(U, {"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]}), "local", "invalid_tool_calls", "error"),
    (msgs(U, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]}, TOOL_REPLY, A, tools=TOOLS),
     "local", "invalid_tool_arguments", "error"),
    (msgs(U, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "launch_rocket", "arguments": "{}"}}]}, TOOL_REPLY, A, tools=TOOLS),
     "local", "unknown_tool", "error"),
    (msgs(U, CALL, dict(TOOL_REPLY, tool_call_id="zz"), A, tools=TOOLS), "local", "unknown_tool_call_id", "error"),
    (msgs(U, CALL, {"role": "tool", "content": "3"}, A, tools=TOOLS), "local", "missing_tool_call_id", "error"),
    (msgs(U), "local", "no_assistant", "error"),
    (msgs(U, dict(A, content="   ")), "local", "empty_turn", "warning"),
    (msgs(U, dict(A, content="Yes.")), "local", "short_answer", "warning"),
    (msgs(U, dict(A, content="Caf\u00c3\u00a9 is the place where the team meets every week.")), "local", "garbled_text", "warning"),
    (msgs(U, dict(A, content="Ask the owner at maria.lopez@acme-corp.com for access to it.")), "local", "pii_email", "warning"),
    (msgs(U, dict(A, content="Call our office on +44 20 7946 0958 during office hours please.")), "local", "pii_phone", "warning"),
    (msgs(U, dict(A, content="Set OPENAI_API_KEY=sk-proj-Abc123Def456Ghi789Jkl012Mno in the shell.")), "local", "secret", "warning"),
    (good_rows(1)[0], "local", "duplicate", "warning"),
]


@pytest.mark.parametrize("bad,target,code,severity", CASES, ids=[f"{c[2]}-{c[1]}" for c in CASES])
def test_rule_fails_with_line(tmp_path, bad, target, code, severity):
    lines = [json.dumps(r) for r in good_rows(10)] + [bad if isinstance(bad, str) else json.dumps(bad)]
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + ("" if isinstance(bad, str) and code == "truncated_json" else "\n"))
    rep = validate_path(p, target=target).as_dict()
    items = rep["errors"] if severity == "error" else rep["warnings"]
    hits = [i for i in items if i["code"] == code]
    assert hits, (code, rep["errors"], rep["warnings"])
    assert hits[0]["line"] == 11 and hits[0]["file"] == "d.jsonl"


@pytest.mark.parametrize("target", ["local", "openai", "together"])
def test_clean_file_passes_every_target(tmp_path, target):
    p = tmp_path / "ok.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in good_rows(12)))
    rep = validate_path(p, target=target).as_dict()
    assert rep["errors"] == [] and rep["examples"] == 12
    assert [w["code"] for w in rep["warnings"]] == (["few_examples"] if target == "openai" else [])


def test_tools_accepted_locally(tmp_path):
    rows = good_rows(10) + [msgs(U, CALL, TOOL_REPLY, A, tools=TOOLS)]
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = validate_path(p, target="local").as_dict()
    assert rep["errors"] == [] and rep["examples"] == 11


def test_code_is_not_personal_data(tmp_path):
    code = ("Use a decorator:\n```python\n@app.route('/users')\n@login_required\ndef users():\n    return render()\n```\n"
            "Docs at user@example.com; version pkg@1.2.3; OPENAI_API_KEY=your_openai_key_here; listen on 127.0.0.1:8000.")
    rows = good_rows(10) + [msgs(U, dict(A, content=code))]
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = validate_path(p).as_dict()
    assert not [w for w in rep["warnings"] if w["code"] in ("pii_email", "pii_phone", "secret")], rep["warnings"]


def test_every_error_reported_not_just_the_first(tmp_path):
    rows = ['{"messages": [}'] * 3 + [json.dumps(msgs(U))] * 2 + [json.dumps(r) for r in good_rows(10)]
    p = tmp_path / "many.jsonl"
    p.write_text("\n".join(rows) + "\n")
    rep = validate_path(p).as_dict()
    assert [(e["code"], e["line"]) for e in rep["errors"]] == [
        ("invalid_json", 1), ("invalid_json", 2), ("invalid_json", 3), ("no_assistant", 4), ("no_assistant", 5)]


def test_too_few_examples_is_an_error_for_openai_only(tmp_path):
    p = tmp_path / "few.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in good_rows(3)))
    assert any(e["code"] == "too_few_examples" for e in validate_path(p, target="openai").as_dict()["errors"])
    local = validate_path(p, target="local").as_dict()
    assert not local["errors"] and any(w["code"] == "too_few_examples" for w in local["warnings"])


def test_text_rows_rejected_for_openai(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps({"text": f"Paragraph number {i} about testing."}) + "\n" for i in range(12)))
    assert validate_path(p, target="openai").as_dict()["errors"][0]["code"] == "format_not_supported"
    assert validate_path(p, target="together").as_dict()["errors"] == []


def test_near_duplicates_and_split_leakage(tmp_path):
    base = ("To reverse a list in Python you can call the reverse method on it, which works in place, or you can "
            "use slicing with a negative step to get a reversed copy of the original list.")
    rows = good_rows(10) + [chat("How can I reverse a Python list?", base),
                            chat("How can I reverse a Python list?", base.replace("original list", "original list."))]
    p = tmp_path / "n.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    warns = validate_path(p, split_ratio=0.0).as_dict()["warnings"]
    near = [w for w in warns if w["code"] == "near_duplicate"]
    assert near and near[0]["line"] == 12
    warns = validate_path(p, split_ratio=0.5).as_dict()["warnings"]
    assert any(w["code"] in ("near_duplicate", "split_leakage") and w["line"] == 12 for w in warns)
    # leakage: force the two into different splits by using a ratio that splits these hashes
    from apps.datasets.validation import content_hash, split_of
    from apps.datasets.formats.base import make_example
    h1 = content_hash(make_example(rows[10]["messages"]))
    h2 = content_hash(make_example(rows[11]["messages"]))
    r = (int(h1[:8], 16) + int(h2[:8], 16)) / 2 / 0x100000000
    assert split_of(h1, r) != split_of(h2, r)
    warns = validate_path(p, split_ratio=r).as_dict()["warnings"]
    assert any(w["code"] == "split_leakage" and w["line"] == 12 for w in warns)


def test_too_long_counted_with_the_models_template(tmp_path, tiny_model_dir):
    from apps.datasets.validation.tokens import TokenCounter

    counter = TokenCounter(tiny_model_dir, context_length=256)
    long = chat("Tell me a long story.", " ".join(["The dragon roars and the goblin attacks."] * 60))
    rows = good_rows(10) + [long]
    p = tmp_path / "l.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = validate_path(p, counter=counter)
    w = [i for i in res.as_dict()["warnings"] if i["code"] == "too_long"]
    assert len(w) == 1 and w[0]["line"] == 11
    assert res.stats["tokens"]["too_long"] == 1 and res.stats["tokens"]["total"] > 256
    # the fast count equals rendering the whole chat template and encoding it
    from apps.datasets.formats.base import make_example
    for r in rows + [chat("hi there", "hello again friend", system="be nice")]:
        ex = make_example(r["messages"])
        assert counter.count([ex])[0][0] == counter.count_exact(ex)


def test_together_parity_every_file_together_rejects_we_reject(tmp_path):
    """Cross-check with Together's own client-side checker (a benchmark-only install; skipped without it)."""
    pytest.importorskip("together")
    import os

    os.environ.setdefault("TOGETHER_NO_BANNER", "1")
    from together.utils.files import check_file

    for n, (bad, _target, code, _sev) in enumerate(CASES):
        p = tmp_path / f"{n}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in good_rows(10))
                     + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n")
        if not check_file(p)["is_check_passed"]:
            assert validate_path(p, target="together").as_dict()["errors"], code
