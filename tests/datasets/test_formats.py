"""Parsing fixtures for each format, and the encoding / zip attacks."""
import json
import zipfile

import pytest

from apps.datasets.formats import detect_format
from apps.datasets.validation import validate_path

from .conftest import good_rows


def collect(path, **kw):
    got = []
    res = validate_path(path, on_batch=lambda b: got.extend(a.example for a in b), **kw)
    return res, got


def test_qa_text(tmp_path):
    p = tmp_path / "qa.txt"
    p.write_text("Q: What is Python?\nA: Python is a high-level programming language.\n\n"
                 "Q: How do I create a list?\nA: Use square brackets:\nmy_list = [1, 2, 3]\n")
    res, ex = collect(p)
    assert res.format == "qa-text" and len(ex) == 2
    assert ex[1]["messages"] == [{"role": "user", "content": "How do I create a list?"},
                                 {"role": "assistant", "content": "Use square brackets:\nmy_list = [1, 2, 3]"}]
    assert ex[1]["source_line"] == 4


def test_dialogue_text_and_mixed_formats(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("User: Tell me about machine learning\nAssistant: It lets systems learn patterns from data.\n\n"
                 "User: What are neural networks?\nAssistant: Layers of weighted sums with non-linearities.\n\n"
                 "Q: Mixed in?\nA: This block uses the other format.\n")
    res, ex = collect(p)
    assert res.format == "dialogue-text" and len(ex) == 3
    mixed = [e for e in res.as_dict()["errors"] if e["code"] == "mixed_formats"]
    assert [m["line"] for m in mixed] == [7, 8]


def test_plain_text_paragraphs(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("The hub is a flexible framework.\nIt trains models.\n\nEach size has different needs.\n")
    res, ex = collect(p)
    assert res.format == "plain-text" and len(ex) == 2 and ex[0]["meta"]["kind"] == "text"
    assert ex[1]["source_line"] == 4


SCENARIO = """# SYSTEM
You are the Dungeon Master.

# USER
I attack the goblin with my sword!

# DM
The goblin snarls. [roll: d20+5] Let's see if you hit.

# TOOLCALL
17

# DM
You hit! [health: goblin, -7] The goblin staggers. [inventory: Sara, add, goblin ear]

# TOOLCALL
goblin hp 0

# TOOLCALL
added

# DM
Sara pockets the ear. [teleport: Sara, town] [roll: banana] [save: dexterity, player]
"""


def test_markdown_scenario_with_tool_calls(tmp_path):
    p = tmp_path / "fight.md"
    p.write_text(SCENARIO)
    res, ex = collect(p)
    assert res.format == "markdown-scenario" and len(ex) == 1
    m = ex[0]["messages"]
    assert [x["role"] for x in m] == ["system", "user", "assistant", "tool", "assistant", "tool", "tool", "assistant"]
    call = m[2]["tool_calls"][0]
    assert call["function"]["name"] == "roll" and json.loads(call["function"]["arguments"]) == {"dice": "d20+5"}
    assert m[3]["tool_call_id"] == call["id"] and "[roll" not in m[2]["content"]
    assert json.loads(m[4]["tool_calls"][1]["function"]["arguments"]) == {"character": "Sara", "action": "add",
                                                                          "item": "goblin ear"}
    rep = res.as_dict()
    assert {(w["code"], w["line"]) for w in rep["warnings"]} >= {("new_tool", 23)}
    bad = {(e["code"], e["line"]) for e in rep["errors"]}
    assert ("malformed_tool_call", 23) in bad  # [roll: banana] and [save: ...] with 2 of 3 arguments
    assert {t["function"]["name"] for t in ex[0]["tools"]} == {"roll", "health", "inventory", "teleport"}


def test_unmatched_tool_result(tmp_path):
    p = tmp_path / "x.md"
    p.write_text("# USER\nhello there\n\n# TOOLCALL\n42\n\n# DM\nWelcome, traveller, to the town of Greyhaven.\n")
    res, _ = collect(p)
    assert ("unmatched_tool_result", 4) in {(e["code"], e["line"]) for e in res.as_dict()["errors"]}


def _scenario(n):
    return f"# USER\nI open door number {n}.\n\n# DM\nBehind door {n} you find a dusty corridor and a faint light.\n"


def test_folder_and_zip_of_scenarios_with_categories(tmp_path):
    root = tmp_path / "scenarios"
    for cat in ("combat", "roleplay", "exploration"):
        (root / cat).mkdir(parents=True)
        for i in range(2):
            (root / cat / f"s{i}.md").write_text(_scenario(f"{cat}-{i}"))
    res, ex = collect(root)
    assert res.format == "folder" and len(ex) == 6
    assert {e["category"] for e in ex} == {"combat", "roleplay", "exploration"}
    assert ex[0]["source_file"].startswith("scenarios/")
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in root.rglob("*.md"):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    res, ex2 = collect(z)
    assert res.format == "zip" and len(ex2) == 6 and {e["category"] for e in ex2} == {"combat", "roleplay", "exploration"}


def test_zip_path_traversal_is_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../etc/evil.md", _scenario(1))
        zf.writestr("/abs/evil.md", _scenario(2))
        zf.writestr("ok/fine.md", _scenario(3))
    res, ex = collect(z)
    codes = [e["code"] for e in res.as_dict()["errors"]]
    assert codes.count("zip_path_traversal") == 2 and len(ex) == 1
    assert not (tmp_path.parent / "etc" / "evil.md").exists()


def test_zip_bomb_is_refused(tmp_path, settings):
    settings.HUB_MAX_UPLOAD_MB = 1
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", b"Q: x\nA: " + b"y" * (30 * 1024 * 1024))
    res, ex = collect(z)
    errs = res.as_dict()["errors"]
    assert errs[0]["code"] == "zip_bomb" and errs[0]["file"] == "bomb.zip" and not ex


def test_empty_binary_and_non_utf8(tmp_path):
    e = tmp_path / "empty.jsonl"
    e.write_bytes(b"")
    assert validate_path(e).as_dict()["errors"][0]["code"] == "empty_file"
    b = tmp_path / "blob.jsonl"
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    assert validate_path(b).as_dict()["errors"][0]["code"] == "binary_file"
    n = tmp_path / "latin1.jsonl"
    lines = [json.dumps(r).encode() for r in good_rows(10)]
    lines.insert(4, '{"messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1"))
    n.write_bytes(b"\n".join(lines) + b"\n")
    errs = validate_path(n).as_dict()["errors"]
    assert (errs[0]["code"], errs[0]["line"]) == ("encoding_error", 5)
    t = tmp_path / "latin1.txt"
    t.write_bytes("Q: Where?\nA: At the caf\u00e9 on the corner of the street.\n".encode("latin-1"))
    errs = validate_path(t).as_dict()["errors"]
    assert (errs[0]["code"], errs[0]["line"]) == ("encoding_error", 2)


def test_deeply_nested_json(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text("\n".join([json.dumps(r) for r in good_rows(10)] + ['{"messages": ' + "[" * 5000 + "]" * 5000 + "}"]) + "\n")
    errs = validate_path(p).as_dict()["errors"]
    assert (errs[0]["code"], errs[0]["line"]) == ("too_deep", 11)


def test_together_formats(tmp_path):
    pc = tmp_path / "pc.jsonl"
    pc.write_text("".join(json.dumps({"prompt": f"Say {i}", "completion": f"The number {i} is here now."}) + "\n"
                          for i in range(3)))
    res, ex = collect(pc)
    assert ex[0]["messages"][1] == {"role": "assistant", "content": "The number 0 is here now."}
    assert ex[0]["meta"]["kind"] == "prompt_completion"
    pref = tmp_path / "pref.jsonl"
    pref.write_text(json.dumps({"input": {"messages": [{"role": "user", "content": "Hi?"}]},
                                "preferred_output": [{"role": "assistant", "content": "Hello, how can I help you?"}],
                                "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}) + "\n")
    res, ex = collect(pref)
    assert ex[0]["meta"]["non_preferred_output"][0]["content"] == "Go away."


def test_csv_and_parquet_and_hf_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = tmp_path / "d.csv"
    c.write_text('question,answer\n"What is 2+2?","It is four, as basic arithmetic says."\n"Capital of France?","Paris is the capital of France."\n')
    res, ex = collect(c)
    assert res.format == "csv" and len(ex) == 2 and ex[1]["source_line"] == 3
    res, ex = collect(c, columns={"prompt": "answer", "completion": "question"})
    assert ex[0]["messages"][0]["content"].startswith("It is four")
    res = validate_path(c, columns={"prompt": "nope", "completion": "answer"})
    assert res.as_dict()["errors"][0]["code"] == "unknown_column"
    rows = [{"messages": r["messages"]} for r in good_rows(5)]
    t = pa.Table.from_pylist(rows)
    pq.write_table(t, tmp_path / "d.parquet")
    res, ex = collect(tmp_path / "d.parquet")
    assert res.format == "parquet" and len(ex) == 5 and ex[4]["messages"] == rows[4]["messages"]
    hf = tmp_path / "hf" / "train"
    hf.mkdir(parents=True)
    (tmp_path / "hf" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (tmp_path / "hf" / "dataset_info.json").write_text("{}")
    with pa.OSFile(str(hf / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
    res, ex = collect(tmp_path / "hf")
    assert res.format == "hf-datasets" and len(ex) == 5 and ex[0]["category"] == "train"


def test_detect_formats(tmp_path):
    cases = {"a.jsonl": '{"messages": []}\n', "b.txt": "Q: a\nA: b\n", "c.txt": "User: a\nAssistant: b\n",
             "d.md": "# USER\nhi\n# DM\nhello\n", "e.txt": "Just prose.\n", "f.json": '[{"text": "x"}]'}
    got = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        got[name] = detect_format(tmp_path / name)
    assert got == {"a.jsonl": "jsonl", "b.txt": "qa-text", "c.txt": "dialogue-text", "d.md": "markdown-scenario",
                   "e.txt": "plain-text", "f.json": "json"}


@pytest.mark.parametrize("row", [
    '{"messages": [{"role": ["user"], "content": "x"}, {"role": "assistant", "content": "y"}]}',
    '{"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y", "tool_call_id": ["a"]}]}',
    '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": [{"id": ["x"], "function": {"name": ["f"]}}]}]}',
    '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": [1]}]}',
    '{"input": 5, "preferred_output": 1}', '{"prompt": 1, "completion": null}', '{"text": ["a"]}',
    '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": 5}}]}], "tools": [1, 2]}',
])
@pytest.mark.parametrize("target", ["local", "openai", "together"])
def test_odd_json_types_are_errors_not_crashes(tmp_path, row, target):
    p = tmp_path / "odd.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in good_rows(10)) + row + "\n")
    rep = validate_path(p, target=target).as_dict()
    assert any(e["line"] == 11 for e in rep["errors"]), rep["errors"]
