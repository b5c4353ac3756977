"""The offline generators: determinism for a seed, exact provenance, each generator's shape."""
from __future__ import annotations

import json
import re

import pytest

from tests.engine_repos.checks import assert_exact, show
from tests.engine_repos.conftest import Repo, git
from workers.engine.repos import GENERATORS, GenerateOptions, RepoError, generate, parse_file_blocks


def by_gen(result, name):
    return [e for e in result.examples if e["meta"]["generator"] == name]


@pytest.fixture
def full(sample):
    return generate(sample.path, seed=7, options=GenerateOptions(include_config=True))


def test_every_generator_produces_examples_with_exact_provenance(sample, full):
    assert full.commit == git(sample.path, "rev-parse", "HEAD").strip()
    gens = {e["meta"]["generator"] for e in full.examples}
    assert gens == set(GENERATORS), set(GENERATORS) - gens
    for ex in full.examples:
        assert_exact(sample.path, ex)
        json.dumps(ex)
    assert full.stats["examples"] == len(full.examples) == len(full.diff["added"])
    assert full.stats["license"] == "MIT"
    assert all(e["meta"]["provenance"]["license"] == "MIT" for e in full.examples)
    ids = [e["meta"]["example_id"] for e in full.examples]
    assert len(ids) == len(set(ids))


def test_same_seed_same_output_other_seed_other_choices(sample, full):
    again = generate(sample.path, seed=7, options=GenerateOptions(include_config=True))
    assert json.dumps(again.examples, sort_keys=True) == json.dumps(full.examples, sort_keys=True)
    assert again.manifest == full.manifest and again.tasks == full.tasks
    other = generate(sample.path, seed=8, options=GenerateOptions(include_config=True))
    assert {e["meta"]["example_id"] for e in other.examples}.isdisjoint({e["meta"]["example_id"] for e in full.examples})
    texts = lambda r: sorted(e["messages"][1]["content"] for e in r.examples)  # noqa: E731
    assert texts(other) != texts(full)
    assert all(e["meta"]["provenance"]["seed"] == 8 for e in other.examples)


def test_docstring_and_fim_hide_exactly_the_function(sample, full):
    head = full.commit
    docs = by_gen(full, "docstring")
    assert {e["meta"]["provenance"]["path"] for e in docs} == {"calc.py", "web/util.js"}
    for ex in docs:
        p = ex["meta"]["provenance"]
        lines = show(sample.path, head, p["path"]).splitlines(keepends=True)
        removed = "".join(lines[p["start_line"] - 1: p["end_line"]])
        assert removed.lstrip().startswith(("def ", "/**", "//"))
        user = ex["messages"][1]["content"]
        shown = user.rsplit("Signature:", 1)[1]
        assert removed not in shown and ex["category"] == "feature"
        assert re.search(r"(def|function) \w+\(", user)  # the signature is given
    fims = by_gen(full, "fim")
    assert fims
    for ex in fims:
        p = ex["meta"]["provenance"]
        path = p["path"]
        text = show(sample.path, head, path)
        tl = text.splitlines(keepends=True)
        masked = ex["messages"][1]["content"]
        indent = re.match(r"\s*", tl[p["start_line"] - 1]).group(0)
        expected = "".join(tl[: p["start_line"] - 1]) + f"{indent}<FILL>\n" + "".join(tl[p["end_line"]:])
        assert expected in masked


def test_commit_examples_use_request_like_messages_and_the_new_file_content(sample, full):
    commits = by_gen(full, "commit")
    subjects = {e["meta"]["commit_subject"]: e for e in commits}
    assert "Initial import" not in subjects  # a root commit and not a request
    fix = subjects["Fix clamp so values above the range return the upper bound"]
    assert fix["category"] == "bug_fix"
    feat = subjects["feat: add price formatting helpers for the shop"]
    assert feat["category"] == "file_creation"  # every file is new
    assert feat["messages"][1]["content"].startswith("Add price formatting helpers for the shop")
    assert [p for p, _ in parse_file_blocks(feat["messages"][2]["content"])] == ["config/app.json", "web/util.js"]
    # the old content of modified files is in the request, the new one in the answer
    parent = git(sample.path, "rev-parse", fix["meta"]["provenance"]["commit"] + "^").strip()
    assert show(sample.path, parent, "calc.py") in fix["messages"][1]["content"]
    assert "`clamp`" in fix["messages"][2]["content"]  # the plan names the function touched


def test_tests_pairs_mutation_docs_tasks_and_config(sample, full):
    (t2i,) = by_gen(full, "tests_to_impl")
    assert [p for p, _ in parse_file_blocks(t2i["messages"][2]["content"])] == ["calc.py"]
    assert show(sample.path, full.commit, "tests/test_calc.py") in t2i["messages"][1]["content"]
    (i2t,) = by_gen(full, "impl_to_tests")
    assert i2t["category"] == "tests" and "pytest" in i2t["messages"][1]["content"]
    for ex in by_gen(full, "mutation"):
        assert ex["category"] == "bug_fix"
        buggy = ex["messages"][1]["content"].split("```python\n", 1)[1].rsplit("```", 1)[0]
        original = show(sample.path, full.commit, "calc.py")
        assert buggy != original and len(buggy.splitlines()) <= len(original.splitlines())
        diff = [(a, b) for a, b in zip(buggy.splitlines(), original.splitlines()) if a != b]
        assert len(diff) == 1  # one small edit
        assert f"Line {ex['meta']['mutation']['line']}" in ex["messages"][2]["content"]
    docs = by_gen(full, "docs_qa")
    questions = {e["messages"][1]["content"] for e in docs}
    assert "How do I install calc?" in questions and "What is calc?" in questions
    assert not any("Table of contents" in q for q in questions)
    cats = {t["category"] for t in full.tasks}
    assert {"docs", "tests", "bug_fix"} <= cats
    for t in full.tasks:
        assert t["difficulty"] in ("easy", "medium", "hard") and t["acceptance_criteria"] and t["files"]
    tests_task = next(t for t in full.tasks if t["category"] == "tests")
    assert tests_task["verify_command"] == "python -m pytest tests/test_calc.py -q"
    (cfg,) = by_gen(full, "config")
    assert cfg["category"] == "file_creation" and "`name`, `debug`" in cfg["messages"][1]["content"]


def test_options_max_generators_exclusions(sample, full):
    few = generate(sample.path, seed=7, max_examples=5, options=GenerateOptions(include_config=True))
    assert len(few.examples) == 5 and few.stats["examples"] == 5
    ids = [e["meta"]["example_id"] for e in full.examples]
    assert set(e["meta"]["example_id"] for e in few.examples) <= set(ids)
    one_each = generate(sample.path, seed=7, max_examples=5, options=GenerateOptions(per_file=1))
    assert [e["meta"]["generator"] for e in one_each.examples] == list(GENERATORS[:5])  # generators take turns
    only = generate(sample.path, seed=7, generators=["docs_qa", "commit"])
    assert {e["meta"]["generator"] for e in only.examples} == {"docs_qa", "commit"}
    simple = generate(sample.path, seed=7, options=GenerateOptions(exclude_complex=True, include_tests=False))
    assert all(e["meta"]["complexity"] != "complex" for e in simple.examples)
    assert not by_gen(simple, "tests_to_impl") and not by_gen(simple, "impl_to_tests")
    assert not any(e["meta"]["provenance"]["path"].startswith("tests/") for e in by_gen(simple, "fim"))
    assert not by_gen(generate(sample.path, seed=7), "config")  # config only when asked for
    for bad in ({"generators": ["nope"]}, {"max_examples": 0}):
        with pytest.raises(RepoError) as exc:
            generate(sample.path, **bad)
        assert exc.value.code in ("invalid_generator", "invalid_option")


def test_a_typescript_only_repository(tmp_path):
    repo = Repo(tmp_path / "ts")
    repo.commit("Add the string helpers and their tests", {
        "src/strings.ts": "/**\n * Capitalise the first letter of a word.\n */\nexport function capitalise(word: string): string {\n"
                          "  if (word.length === 0) {\n    return word;\n  }\n  return word[0].toUpperCase() + word.slice(1);\n}\n",
        "src/strings.test.ts": "import { capitalise } from './strings';\n\ntest('capitalises', () => {\n"
                               "  expect(capitalise('abc')).toBe('Abc');\n});\n",
        "package.json": '{"name": "strings", "scripts": {"test": "jest"}}\n'})
    repo.commit("Handle words with leading spaces in capitalise", {
        "src/strings.ts": "/**\n * Capitalise the first letter of a word.\n */\nexport function capitalise(word: string): string {\n"
                          "  const w = word.trimStart();\n  if (w.length === 0) {\n    return w;\n  }\n"
                          "  return w[0].toUpperCase() + w.slice(1);\n}\n"})
    r = generate(repo.path, seed=1)
    gens = {e["meta"]["generator"] for e in r.examples}
    assert {"docstring", "fim", "tests_to_impl", "impl_to_tests", "commit"} <= gens
    for ex in r.examples:
        assert_exact(repo.path, ex)
    doc = by_gen(r, "docstring")[0]
    assert "Capitalise the first letter" in doc["messages"][1]["content"] and doc["meta"]["language"] == "TypeScript"


def test_tasks_from_a_performance_commit_and_from_code(tmp_path):
    from tests.engine_repos.conftest import CALC, build_sample

    repo = build_sample(tmp_path / "calc")
    slow = CALC + "\n\ndef pairs(xs, ys):\n    out = []\n" + "".join(
        f"    # step {k}\n" for k in range(3)) + ("    for x in xs:\n        for y in ys:\n            if x == y:\n"
                                               "                out.append(x)\n    return out\n") + "# TODO: support generators as input\n"
    repo.commit("Add a pairs helper", {"calc.py": slow})
    fast = slow.replace("    for x in xs:\n        for y in ys:\n            if x == y:\n                out.append(x)\n",
                        "    seen = set(ys)\n    out = [x for x in xs if x in seen]\n")
    head = repo.commit("Speed up pairs with a set lookup", {"calc.py": fast})
    repo.commit("Speed up the CI cache", {".github/ci.yml": "cache: true\n"})
    r = generate(repo.path, seed=1, generators=["tasks"], options=GenerateOptions(max_history=10))
    perf = [t for t in r.tasks if t["category"] == "performance" and t["has_solution"]]
    assert [t["title"] for t in perf] == ["Speed up pairs with a set lookup"]  # not the CI one
    assert perf[0]["provenance"]["commit"] == head and perf[0]["files"] == ["calc.py"]
    ex = next(e for e in r.examples if e["meta"]["task"]["id"] == perf[0]["id"])
    assert ex["category"] == "refactor" and ex["meta"]["provenance"]["commit"] == head
    assert_exact(repo.path, ex)
    todo = [t for t in r.tasks if t["title"].startswith("TODO")]
    assert todo and todo[0]["category"] == "feature" and not todo[0]["has_solution"]
    assert todo[0]["acceptance_criteria"] and todo[0]["verify_command"] == "python -m pytest tests/test_calc.py -q"
    assert r.skipped.get("perf_commit_without_code") == 1
