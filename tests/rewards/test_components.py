"""Each reward component on known inputs; score() weighting; validate_weights; plugins that raise or hang."""
from __future__ import annotations

import math
import time

import pytest

from workers.engine import rewards as R
from workers.engine.rewards.builtin import node_binary


def one(name, completion, task=None, **kw):
    return R.score(completion, task or {"prompt": "p"}, {name: 1.0}, **kw)["components"][name]


GOOD_PY = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "def test_small():\n    assert add(1, 2) == 3\n\ndef test_neg():\n    assert add(-1, -1) == -2\n"


def test_code_parses_per_language():
    assert one("code_parses", GOOD_PY)["score"] == 1.0
    bad = one("code_parses", "```python\ndef add(a, b)\n    return a + b\n```")
    assert bad["score"] == 0.0 and "does not parse" in bad["detail"]
    assert one("code_parses", '```json\n{"a": 1}\n```')["score"] == 1.0
    assert one("code_parses", '```json\n{"a": 1,}\n```')["score"] == 0.0
    assert one("code_parses", "echo hi && ls", {"prompt": "p", "language": "shell"})["score"] == 1.0
    assert one("code_parses", "```bash\nif then fi\n```")["score"] == 0.0
    assert one("code_parses", "```toml\na = 1\n```")["score"] == 1.0
    go = one("code_parses", "```go\npackage main\n```")
    assert go["score"] == 0.0 and "no parser for 'go'" in go["error"]


@pytest.mark.skipif(node_binary() is None, reason="node is not installed")
def test_code_parses_javascript_with_node():
    assert one("code_parses", "```js\nconst f = (a) => a + 1;\n```")["score"] == 1.0
    bad = one("code_parses", "```javascript\nfunction f( {\n```")
    assert bad["score"] == 0.0 and "SyntaxError" in bad["detail"]


def test_javascript_without_node_is_an_error(monkeypatch):
    from workers.engine.rewards import builtin

    monkeypatch.setattr(builtin, "node_binary", lambda: None)
    r = one("code_parses", "```js\nconst a = 1;\n```")
    assert r["score"] == 0.0 and "not available" in r["error"] and not r["skipped"]


def test_lint_counts_findings_per_line():
    clean = one("lint", GOOD_PY)
    assert clean["score"] == 1.0 and clean["detail"].startswith("0 finding")
    dirty = one("lint", "```python\nimport os\nimport sys\ndef f(x):\n    y = 1\n    return x == None\n```")
    assert 0.0 < dirty["score"] < 0.5
    assert "F401" in dirty["detail"] and "E711" in dirty["detail"]
    assert one("lint", "```python\ndef f(:\n```")["score"] == 0.0
    assert one("lint", "```bash\nls\n```")["skipped"]


def test_complexity_maps_mean_ccn():
    assert one("complexity", GOOD_PY)["score"] == 1.0
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(20))
    tangled = one("complexity", f"```python\ndef f(x):\n{branches}\n    return -1\n```")
    assert tangled["score"] == 0.0 and "21" in tangled["detail"]
    mid = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(8))
    r = one("complexity", f"```python\ndef g(x):\n{mid}\n    return -1\n```")
    assert 0.0 < r["score"] < 1.0 and math.isclose(r["score"], (15 - 9) / 11)


def test_tests_pass_fail_and_hang():
    task = {"prompt": "write add", "tests": TESTS}
    assert one("tests_pass", GOOD_PY, task)["score"] == 1.0
    half = one("tests_pass", "```python\ndef add(a, b):\n    return abs(a) + abs(b)\n```", task)
    assert half["score"] == 0.5 and "1/2 tests passed" in half["detail"] and "test_neg" in half["detail"]
    broken = one("tests_pass", "```python\ndef add(a, b) return\n```", task)
    assert broken["score"] == 0.0 and "importing the answer" in broken["detail"]
    # module-level asserts (no test functions): all or nothing
    assert one("tests_pass", GOOD_PY, {"prompt": "p", "tests": "assert add(2, 2) == 4"})["score"] == 1.0
    # a fake result line does not pass: the runner's line carries a nonce
    fake = one("tests_pass", '```python\nprint(\'@@hub-result-@@{"passed": 9, "failed": 0, "failures": []}\')\n'
                             'def add(a, b):\n    return 0\n```', task)
    assert fake["score"] == 0.0
    t0 = time.monotonic()
    hang = one("tests_pass", "```python\ndef add(a, b):\n    while True:\n        pass\n```", task, timeout_s=1.5)
    assert time.monotonic() - t0 < 4
    assert hang["score"] == 0.0 and hang["error"]
    assert one("tests_pass", GOOD_PY, {"prompt": "p"})["skipped"]  # no tests: not applicable


def test_answer_match_numbers_and_strings():
    task = {"prompt": "What is 7 * 6?", "answer": "42"}
    assert one("answer_match", "7 * 6 = 42", task)["score"] == 1.0
    assert one("answer_match", "Let me think: 7*6... #### 42.0", task)["score"] == 1.0
    assert one("answer_match", "The answer is \\boxed{42}", task)["score"] == 1.0
    assert one("answer_match", "It is 41", task)["score"] == 0.0
    assert one("answer_match", "no idea", task)["score"] == 0.0
    assert one("answer_match", "Answer: 1,000", {"prompt": "p", "answer": "1000"})["score"] == 1.0
    assert one("answer_match", "so 3/4", {"prompt": "p", "answer": "0.75"})["score"] == 1.0
    assert one("answer_match", "Answer: Paris.", {"prompt": "p", "answer": "paris"})["score"] == 1.0
    assert one("answer_match", "Answer: Lyon", {"prompt": "p", "answer": "paris"})["score"] == 0.0


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_tool_calls_form_and_schema():
    task = {"prompt": "weather?", "tools": TOOLS}
    ok = one("tool_calls", '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', task)
    assert ok["score"] == 1.0
    wrong_type = one("tool_calls", '<tool_call>{"name": "get_weather", "arguments": {"city": 3}}</tool_call>', task)
    assert wrong_type["score"] == 0.0 and "is not of type 'string'" in wrong_type["detail"]
    missing = one("tool_calls", '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>', task)
    assert missing["score"] == 0.0 and "required" in missing["detail"]
    unknown = one("tool_calls", '<tool_call>{"name": "send_mail", "arguments": {}}</tool_call>', task)
    assert unknown["score"] == 0.0 and "not one of the tools" in unknown["detail"]
    malformed = one("tool_calls", '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>', task)
    assert malformed["score"] == 0.0 and "malformed" in malformed["detail"]
    assert one("tool_calls", "It is sunny.", task)["skipped"]
    expected = {**task, "metadata": {"expected_tool": "get_weather"}}
    assert one("tool_calls", "It is sunny.", expected)["score"] == 0.0
    # the registry's schemas, given as data in metadata.tool_schemas
    reg = {"prompt": "p", "metadata": {"tool_schemas": {"add": {"type": "object", "properties": {
        "a": {"type": "integer"}}, "required": ["a"]}}}}
    assert one("tool_calls", '{"name": "add", "arguments": {"a": 1}}', reg)["score"] == 1.0
    assert one("tool_calls", '{"name": "add", "arguments": {"a": "x"}}', reg)["score"] == 0.0


def test_file_blocks():
    good = '<file path="src/a.py">\nx = 1\n</file>\n<file path="b.py">\ny = 2\n</file>'
    assert one("file_blocks", good)["score"] == 1.0
    r = one("file_blocks", '<file path="../etc/passwd">\nx\n</file>\n<file path="ok.py">\nx\n</file>')
    assert r["score"] == 0.5 and "climbs out" in r["detail"]
    unclosed = one("file_blocks", '<file path="a.py">\nx = 1\n')
    assert unclosed["score"] == 0.0 and "malformed" in unclosed["detail"]
    assert one("file_blocks", "plain text")["skipped"]
    assert one("file_blocks", "plain text", {"prompt": "p", "metadata": {"expects_files": True}})["score"] == 0.0


def test_length_and_repetition():
    assert one("length", "x" * 100, {"prompt": "p", "metadata": {"target_chars": 200}})["score"] == 1.0
    assert one("length", "x" * 400, {"prompt": "p", "metadata": {"target_chars": 200}})["score"] == 0.5
    assert one("length", "   ")["score"] == 0.0
    assert one("distinct_ngrams", "the quick brown fox jumps over the lazy dog")["score"] == 1.0
    assert one("distinct_ngrams", "go go go go go go go go go go")["score"] < 0.2


def test_score_weights_and_skips():
    task = {"prompt": "add", "tests": TESTS}
    bad_code = "```python\ndef add(a, b):\n    return a - b\n```"
    r = R.score(bad_code, task, {"tests_pass": 3, "code_parses": 1, "tool_calls": 5})
    assert r["components"]["tests_pass"]["score"] == 0.0
    assert r["components"]["tool_calls"]["skipped"]            # no call: left out of the total
    assert math.isclose(r["total"], (3 * 0.0 + 1 * 1.0) / 4)
    assert "lint" not in r["components"]                       # weight 0 / absent: not run
    many = R.score_many([GOOD_PY, bad_code], [task, task], {"tests_pass": 1})
    assert [m["total"] for m in many] == [1.0, 0.0]
    with pytest.raises(ValueError):
        R.score("x", task, {"nope": 1})


def test_verifiable_and_validate_weights():
    assert R.verifiable({"prompt": "p", "answer": "3"}, {"answer_match": 1})
    assert not R.verifiable({"prompt": "p", "answer": "3"}, {"answer_match": 0, "length": 1})
    assert not R.verifiable({"prompt": "p"}, {"answer_match": 1, "tests_pass": 1})
    assert R.verifiable({"prompt": "p", "tests": "assert True"}, R.PRESETS["autonomous-agent"])
    assert R.validate_weights({"lint": 1}) == []
    bad = {"nope": 1, "lint": -1, "length": float("nan"), "complexity": "a"}
    fields = {p["field"] for p in R.validate_weights(bad)}
    assert fields == {"weights.nope", "weights.lint", "weights.length", "weights.complexity"}
    assert R.validate_weights({"lint": 0})[0]["field"] == "weights"
    assert R.validate_weights([1])[0]["field"] == "weights"
    for name, weights in R.PRESETS.items():
        assert R.validate_weights(weights) == [], name
    agent = R.PRESETS["autonomous-agent"]
    # the seed's percentages, as given, add up to 105 %; the total is a weighted mean, so they act as shares of 1.05
    assert math.isclose(sum(agent.values()), 1.05)
    assert math.isclose(agent["lint"] + agent["code_parses"], 0.25) and agent["complexity"] == 0.20


@pytest.fixture
def plugins():
    before = dict(R.COMPONENTS)
    yield R.load_plugins(["tests.rewards.plugin_fixtures"])
    R.COMPONENTS.clear()
    R.COMPONENTS.update(before)


def test_plugins_that_raise_or_hang_score_zero(plugins):
    assert set(plugins) == {"polite", "raises", "hangs"}
    t0 = time.monotonic()
    r = R.score("Please add.", {"prompt": "p"}, {"polite": 1, "raises": 1, "hangs": 1, "length": 1})
    assert time.monotonic() - t0 < 3
    c = r["components"]
    assert c["polite"]["score"] == 1.0 and c["polite"]["detail"] == "polite"
    assert c["raises"]["score"] == 0.0 and "plugin exploded" in c["raises"]["error"]
    assert c["hangs"]["score"] == 0.0 and "timed out" in c["hangs"]["error"]
    assert math.isclose(r["total"], 2 / 4)
    with pytest.raises(ImportError, match="no_such_plugin"):
        R.load_plugins(["tests.rewards.no_such_plugin"])
