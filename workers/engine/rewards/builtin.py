"""The builtin reward components. Each is ``fn(completion, task) -> score | (score, detail)`` and may raise
``NotApplicable``; the registry (``__init__``) runs them with timeouts and turns errors into 0."""
from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from functools import lru_cache
from pathlib import PurePosixPath

from workers.engine.rewards.base import Component, NotApplicable, time_left
from workers.engine.rewards.extract import (
    FILE_RE, extract_code, final_number, final_segment, normalize_text, parse_number, strip_thinking,
)


def _code(completion: str, task: dict) -> tuple[str, str]:
    code, lang = extract_code(completion, task.get("language"))
    if not code.strip():
        raise NotApplicable("the answer holds no code")
    return code, lang


# -- code parses -------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def node_binary() -> str | None:
    return shutil.which("node")


@lru_cache(maxsize=1)
def node_major() -> int:
    node = node_binary()
    if not node:
        return 0
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def _node_check(code: str, lang: str) -> tuple[float, str]:
    node = node_binary()
    if node is None:
        raise RuntimeError(f"{lang} parsing not available: no `node` on this machine")
    flags = []
    if lang == "typescript":
        if node_major() < 22:
            raise RuntimeError(f"typescript parsing not available: node {node_major()} cannot strip types "
                               "(needs node 22.6+)")
        flags = ["--experimental-strip-types"]
    suffix = ".ts" if lang == "typescript" else ".js"
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8") as fh:
        fh.write(code)
        path = fh.name
    try:
        res = subprocess.run([node, *flags, "--check", path], capture_output=True, text=True,
                             timeout=max(0.5, time_left() - 0.1), stdin=subprocess.DEVNULL)
    finally:
        os.unlink(path)
    if res.returncode == 0:
        return 1.0, f"{lang} parses (node --check)"
    err = next((ln for ln in res.stderr.splitlines() if "Error" in ln), res.stderr.strip()[:200])
    return 0.0, f"{lang} does not parse: {err.strip()[:200]}"


def code_parses(completion: str, task: dict):
    code, lang = _code(completion, task)
    if lang == "python":
        try:
            ast.parse(code)
        except SyntaxError as exc:
            return 0.0, f"python does not parse: {exc.msg} (line {exc.lineno})"
        return 1.0, "python parses"
    if lang == "json":
        try:
            json.loads(code)
        except ValueError as exc:
            return 0.0, f"json does not parse: {exc}"
        return 1.0, "json parses"
    if lang == "toml":
        try:
            tomllib.loads(code)
        except tomllib.TOMLDecodeError as exc:
            return 0.0, f"toml does not parse: {exc}"
        return 1.0, "toml parses"
    if lang in ("javascript", "typescript"):
        return _node_check(code, lang)
    if lang == "shell":
        bash = shutil.which("bash")
        if bash is None:
            raise RuntimeError("shell parsing not available: no `bash` on this machine")
        res = subprocess.run([bash, "-n"], input=code, capture_output=True, text=True,
                             timeout=max(0.5, time_left() - 0.1))
        if res.returncode == 0:
            return 1.0, "shell parses (bash -n)"
        return 0.0, f"shell does not parse: {res.stderr.strip()[:200]}"
    raise RuntimeError(f"no parser for {lang!r} (python, json, toml, javascript, typescript, shell)")


# -- lint (ruff) --------------------------------------------------------------------------------------------------

LINT_RULES = "E,F,W,B"


@lru_cache(maxsize=1)
def ruff_binary() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin

        return find_ruff_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("ruff")


def lint(completion: str, task: dict):
    code, lang = _code(completion, task)
    if lang != "python":
        raise NotApplicable(f"ruff lints python, not {lang}")
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return 0.0, f"the code does not parse ({exc.msg}, line {exc.lineno}): nothing to lint"
    ruff = ruff_binary()
    if ruff is None:
        raise RuntimeError("lint not available: ruff is not installed")
    res = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--select", LINT_RULES, "--line-length", "120",
                          "--output-format", "json", "--stdin-filename", "answer.py", "-"],
                         input=code, capture_output=True, text=True, timeout=max(0.5, time_left() - 0.1))
    if res.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed: {res.stderr.strip()[:200]}")
    findings = json.loads(res.stdout or "[]")
    lines = max(1, sum(1 for ln in code.splitlines() if ln.strip()))
    if any((f.get("code") or "") in ("", "E999", "invalid-syntax") for f in findings):
        return 0.0, "the code does not parse (ruff reports a syntax error)"
    score = 1.0 / (1.0 + 5.0 * len(findings) / lines)
    codes: dict[str, int] = {}
    for f in findings:
        codes[f["code"]] = codes.get(f["code"], 0) + 1
    listed = ", ".join(f"{c}×{n}" for c, n in sorted(codes.items(), key=lambda kv: -kv[1])[:6])
    return score, f"{len(findings)} finding(s) in {lines} line(s)" + (f": {listed}" if listed else "")


# -- complexity (lizard) ------------------------------------------------------------------------------------------

LIZARD_EXT = {"python": "py", "javascript": "js", "typescript": "ts", "java": "java", "go": "go", "rust": "rs",
              "c": "c", "cpp": "cpp", "csharp": "cs", "ruby": "rb", "php": "php", "kotlin": "kt", "swift": "swift",
              "scala": "scala", "lua": "lua"}
CCN_GOOD, CCN_BAD = 4.0, 15.0   # mean cyclomatic complexity: ≤4 scores 1, ≥15 (lizard's warning level) scores 0


def complexity(completion: str, task: dict):
    import lizard

    code, lang = _code(completion, task)
    ext = LIZARD_EXT.get(lang)
    if ext is None:
        raise NotApplicable(f"lizard does not read {lang}")
    info = lizard.analyze_file.analyze_source_code(f"answer.{ext}", code)
    fns = info.function_list
    if not fns:
        return 1.0, "no functions: straight-line code"
    mean = sum(f.cyclomatic_complexity for f in fns) / len(fns)
    worst = max(fns, key=lambda f: f.cyclomatic_complexity)
    score = min(1.0, max(0.0, (CCN_BAD - mean) / (CCN_BAD - CCN_GOOD)))
    return score, (f"mean cyclomatic complexity {mean:.1f} over {len(fns)} function(s); highest "
                   f"{worst.cyclomatic_complexity} ({worst.name})")


# -- tests pass ----------------------------------------------------------------------------------------------------

def tests_pass(completion: str, task: dict):
    from workers.engine.rewards.testrun import run_tests

    lang = (task.get("language") or "python").lower()
    if lang not in ("python", "py"):
        raise NotApplicable(f"tests run for python answers, not {lang}")
    code, _ = extract_code(completion, "python")
    return run_tests(code, task["tests"], timeout=max(0.5, time_left() - 0.3))


# -- answer match -------------------------------------------------------------------------------------------------

def answer_match(completion: str, task: dict):
    expected = str(task["answer"]).strip()
    want = parse_number(expected)
    if want is not None:
        got, raw = final_number(completion)
        if got is None:
            return 0.0, f"no number in the answer (expected {expected})"
        ok = math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
        return (1.0 if ok else 0.0), f"answered {raw.strip()}, expected {expected}"
    got = final_segment(completion)
    ok = normalize_text(got) == normalize_text(expected) or normalize_text(got).endswith(" " + normalize_text(expected))
    return (1.0 if ok else 0.0), f"answered {got[:80]!r}, expected {expected[:80]!r}"


# -- length / efficiency ----------------------------------------------------------------------------------------

DEFAULT_TARGET_CHARS = 2000


def target_chars(task: dict) -> int:
    meta = task.get("metadata") or {}
    if isinstance(meta.get("target_chars"), (int, float)) and meta["target_chars"] > 0:
        return int(meta["target_chars"])
    if task.get("answer") not in (None, ""):
        return 2 * len(str(task["answer"])) + 200
    return DEFAULT_TARGET_CHARS


def length(completion: str, task: dict):
    text = completion.strip()
    if not text:
        return 0.0, "empty answer"
    target = target_chars(task)
    n = len(text)
    if n <= target:
        return 1.0, f"{n} chars, within the target of {target}"
    return target / n, f"{n} chars, {n / target:.1f}× the target of {target}"


# -- distinct n-grams (repetition) ------------------------------------------------------------------------------

def distinct_ngrams(completion: str, task: dict):
    words = re.findall(r"\S+", strip_thinking(completion))
    if len(words) < 4:
        raise NotApplicable("fewer than 4 words")
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    ratio = len(set(grams)) / len(grams)
    return ratio, f"{len(set(grams))} distinct of {len(grams)} word 3-grams"


# -- <file> blocks -------------------------------------------------------------------------------------------------

def _path_problem(path: str) -> str | None:
    p = PurePosixPath(path)
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return f"{path}: absolute path"
    if ".." in p.parts:
        return f"{path}: climbs out with .."
    if not path.strip() or path != path.strip() or path.endswith("/"):
        return f"{path!r}: not a file path"
    return None


def file_blocks(completion: str, task: dict):
    text = strip_thinking(completion)
    opened = len(re.findall(r"<file\b", text))
    meta = task.get("metadata") or {}
    if opened == 0:
        if meta.get("expects_files"):
            return 0.0, "no <file> block, the task asks for files"
        raise NotApplicable("the answer has no <file> blocks")
    blocks = FILE_RE.findall(text)
    problems, seen = [], set()
    good = 0
    for path, content in blocks:
        why = _path_problem(path)
        if why is None and path in seen:
            why = f"{path}: written twice"
        if why is None and "<file" in content:
            why = f"{path}: a <file> block inside another"
        if why:
            problems.append(why)
        else:
            good += 1
        seen.add(path)
    closed = len(re.findall(r"</file>", text))
    if opened > len(blocks):
        problems.append(f"{opened - len(blocks)} malformed block(s) (want <file path=\"…\"> then a newline, "
                        f"closed by </file>; {closed} closing tag(s) for {opened} opening)")
    total = max(opened, len(blocks))
    return good / total, f"{good}/{total} well-formed block(s)" + (": " + "; ".join(problems[:4]) if problems else "")


# -- tool calls ---------------------------------------------------------------------------------------------------

def _tool_schemas(task: dict) -> dict[str, dict]:
    """name → parameters schema, from the task's OpenAI tool definitions and ``metadata.tool_schemas`` (the tool
    registry's schemas, put there by the caller)."""
    out: dict[str, dict] = {}
    for name, schema in ((task.get("metadata") or {}).get("tool_schemas") or {}).items():
        out[name] = schema if isinstance(schema, dict) else {}
    for tool in task.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function", tool)
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or fn.get("input_schema") or {}
    return out


def _argument_problems(schema: dict, arguments) -> list[str]:
    import jsonschema

    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in validator.iter_errors(arguments)][:3]


def tool_calls(completion: str, task: dict):
    from workers.engine.evaluate import _TOOL_RE, parse_tool_calls

    meta = task.get("metadata") or {}
    expected = meta.get("expected_tool")
    text = strip_thinking(completion).strip()
    attempted = bool(re.search(r"<tool_call>", text)) or (text.startswith("{") and '"name"' in text)
    if not attempted:
        if expected or meta.get("expect_tool_call"):
            return 0.0, f"no tool call; expected a call of {expected}" if expected else "no tool call; one was expected"
        raise NotApplicable("the answer makes no tool call")
    calls = parse_tool_calls(text)
    if calls is None:
        opened = len(re.findall(r"<tool_call>", text))
        return 0.0, f"malformed tool call ({opened} <tool_call> tag(s), {len(_TOOL_RE.findall(text))} closed with JSON)"
    schemas = _tool_schemas(task)
    good, problems = 0, []
    for call in calls:
        name, args = call.get("name"), call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                problems.append(f"{name}: arguments are not JSON")
                continue
        if not isinstance(args, dict):
            problems.append(f"{name}: arguments are not an object")
            continue
        if schemas and name not in schemas:
            problems.append(f"{name}: not one of the tools ({', '.join(sorted(schemas)[:6])})")
            continue
        errs = _argument_problems(schemas.get(name) or {}, args)
        if errs:
            problems.append(f"{name}: " + "; ".join(errs))
            continue
        good += 1
    score = good / len(calls)
    names = [c.get("name") for c in calls]
    if expected and expected not in names:
        problems.append(f"expected a call of {expected}, got {', '.join(map(str, names))}")
        score = 0.0
    checked = "against the tools' schemas" if schemas else "(no schemas given: form only)"
    return score, f"{good}/{len(calls)} valid call(s) {checked}" + (": " + "; ".join(problems[:4]) if problems else "")


BUILTINS = [
    Component("code_parses", "Code parses",
              "The answer's code (fenced blocks, <file> blocks or the whole answer) parses in its language: python "
              "(ast), json, toml, javascript / typescript (`node --check`; typescript needs node 22.6+), shell "
              "(`bash -n`). A language without a parser here is an error scoring 0.",
              "code_quality", code_parses, timeout_s=10.0, in_process=True, builtin=True),
    Component("lint", "Lint findings (ruff)",
              f"`ruff check --select {LINT_RULES}` on the Python code: 1 / (1 + 5 · findings per non-empty line); 0 "
              "when the code does not parse. Not applicable to other languages.",
              "code_quality", lint, timeout_s=15.0, in_process=True, builtin=True),
    Component("complexity", "Complexity (lizard)",
              f"Mean cyclomatic complexity of the code's functions (lizard): ≤{CCN_GOOD:g} scores 1, ≥{CCN_BAD:g} "
              "scores 0, linear between; straight-line code scores 1.",
              "architecture", complexity, timeout_s=10.0, in_process=True, builtin=True),
    Component("tests_pass", "Tests pass",
              "The task's Python tests run against the answer's code in a sandboxed subprocess (time, CPU, memory, "
              "process limits; an unprivileged uid when run as root): the fraction of test functions that pass.",
              "functionality", tests_pass, timeout_s=20.0, needs=("tests",), verifier=True, in_process=True,
              builtin=True),
    Component("answer_match", "Answer matches",
              "The answer's final number (compared numerically) or final string (normalised) equals the task's "
              "answer: 1 or 0. Reads \\boxed{}, '#### x', 'Answer: x', else the last line.",
              "functionality", answer_match, timeout_s=2.0, needs=("answer",), verifier=True, in_process=True,
              builtin=True),
    Component("tool_calls", "Tool calls valid",
              "Tool calls (<tool_call>{json}</tool_call> or a bare JSON call) are well-formed, name a known tool and "
              "have arguments valid against its JSON schema (the task's tools and the tool registry's schemas): the "
              "fraction of valid calls; 0 when the expected tool is not called. Not applicable when no call is "
              "made or expected.",
              "autonomy", tool_calls, timeout_s=5.0, in_process=True, builtin=True),
    Component("file_blocks", "<file> blocks well-formed",
              "<file path=\"…\"> blocks open on their own line, close with </file>, name a relative path inside the "
              "project, once each: the fraction of well-formed blocks. Not applicable when the answer has none "
              "and the task does not ask for files (metadata.expects_files).",
              "autonomy", file_blocks, timeout_s=2.0, in_process=True, builtin=True),
    Component("length", "Length within target",
              "1 up to a target length (metadata.target_chars; else twice the reference answer plus 200 chars; else "
              f"{DEFAULT_TARGET_CHARS} chars), then target / length; an empty answer scores 0.",
              "efficiency", length, timeout_s=2.0, in_process=True, builtin=True),
    Component("distinct_ngrams", "No repetition",
              "Distinct word 3-grams over all word 3-grams: 1 for text that never repeats itself, near 0 for a loop. "
              "It measures the absence of degenerate repetition, not novelty.",
              "innovation", distinct_ngrams, timeout_s=2.0, in_process=True, builtin=True),
]
