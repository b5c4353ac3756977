"""Bug → fix by AST mutation of Python functions (as SWE-smith does procedurally).

A mutation operator finds a node in a function (``ast``) and rewrites only that node's characters in the
source, so the buggy file differs from the real one by one small edit (comments and formatting kept).
The request shows the buggy file (and, when the repository's tests confirmed the bug, the failing test
output); the answer is the file as it really is at the commit.

With a test command (opt-in), only mutations that make the command fail are kept; each run happens in a
temporary copy with a timeout and resource limits (``sandbox.py``).
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass

from workers.engine.repos.generators.base import (Context, Produced, Unit, describe_function, fence, lines_of,
                                                  rate_complexity)
from workers.engine.repos.generators.code import answerable

COMPARE_FLIP = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
                ast.Eq: ("==", "!="), ast.NotEq: ("!=", "==")}
BINOP_FLIP = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
              ast.FloorDiv: ("//", "/"), ast.Mod: ("%", "//")}
OPERATORS = ("flip_comparison", "flip_arithmetic", "flip_boolean", "swap_arguments", "off_by_one",
             "drop_condition", "negate_condition", "flip_return")
EXPLAIN = {
    "flip_comparison": "the comparison operator is wrong",
    "flip_arithmetic": "the arithmetic operator is wrong",
    "flip_boolean": "`and` and `or` are mixed up",
    "swap_arguments": "two arguments are passed in the wrong order",
    "off_by_one": "a constant is off by one",
    "drop_condition": "part of the condition is missing",
    "negate_condition": "the condition is inverted",
    "flip_return": "the function returns the opposite boolean",
}
SYMPTOM = {
    "flip_comparison": "gives wrong results at boundary values",
    "flip_arithmetic": "computes a wrong value",
    "flip_boolean": "takes the wrong branch for some inputs",
    "swap_arguments": "produces wrong results",
    "off_by_one": "is off by one for some inputs",
    "drop_condition": "runs code it should skip for some inputs",
    "negate_condition": "does the opposite of what it should in one case",
    "flip_return": "returns the wrong answer",
}


@dataclass
class Mutation:
    operator: str
    start: int          # character offsets in the file text
    end: int
    replacement: str
    line: int           # 1-based line of the edit

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end:]


class _Offsets:
    """(line, UTF-8 byte column) -> character offset in the text."""

    def __init__(self, text: str):
        self.lines = lines_of(text)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def at(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node) -> tuple[int, int]:
        return self.at(node.lineno, node.col_offset), self.at(node.end_lineno, node.end_col_offset)


def _between(text: str, off: _Offsets, left, right, token: str) -> tuple[int, int] | None:
    """The offsets of ``token`` in the gap between two nodes (skipping parentheses and whitespace)."""
    a = off.at(left.end_lineno, left.end_col_offset)
    b = off.at(right.lineno, right.col_offset)
    gap = text[a:b]
    if "#" in gap:
        return None
    i = gap.find(token)
    while i >= 0:
        before = gap[i - 1] if i > 0 else " "
        after = gap[i + len(token)] if i + len(token) < len(gap) else " "
        if before in " ()\t\n\\" and after in " ()\t\n\\":
            return a + i, a + i + len(token)
        i = gap.find(token, i + 1)
    return None


def candidates(text: str, fn_node) -> list[Mutation]:
    """Every mutation of one function, in source order."""
    off = _Offsets(text)
    out: list[Mutation] = []
    for node in ast.walk(fn_node):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE_FLIP:
            tok, rep = COMPARE_FLIP[type(node.ops[0])]
            at = _between(text, off, node.left, node.comparators[0], tok)
            if at:
                out.append(Mutation("flip_comparison", at[0], at[1], rep, node.lineno))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_FLIP:
            if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
                continue  # string formatting / concatenation
            tok, rep = BINOP_FLIP[type(node.op)]
            at = _between(text, off, node.left, node.right, tok)
            if at:
                out.append(Mutation("flip_arithmetic", at[0], at[1], rep, node.lineno))
        elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
            tok, rep = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            at = _between(text, off, node.values[0], node.values[1], tok)
            if at:
                out.append(Mutation("flip_boolean", at[0], at[1], rep, node.lineno))
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):
            a0, a1 = node.args[0], node.args[1]
            s0, e0 = off.span(a0)
            s1, e1 = off.span(a1)
            t0, t1 = text[s0:e0], text[s1:e1]
            if t0 != t1 and "\n" not in text[s0:e1]:
                out.append(Mutation("swap_arguments", s0, e1, t1 + text[e0:s1] + t0, node.lineno))
        if isinstance(node, (ast.Compare, ast.Subscript, ast.Slice)) or (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
            for child in ast.iter_child_nodes(node):
                if (isinstance(child, ast.Constant) and type(child.value) is int and 0 <= child.value <= 1000
                        and child.end_lineno == child.lineno):
                    s, e = off.span(child)
                    if text[s:e].isdigit():
                        out.append(Mutation("off_by_one", s, e, str(child.value + 1), child.lineno))
        if isinstance(node, (ast.If, ast.While)) and isinstance(node.test, ast.BoolOp) and len(node.test.values) >= 2:
            values = node.test.values
            s = off.at(values[-2].end_lineno, values[-2].end_col_offset)
            e = off.at(values[-1].end_lineno, values[-1].end_col_offset)
            if "#" not in text[s:e]:
                out.append(Mutation("drop_condition", s, e, "", node.lineno))
        if isinstance(node, ast.If) and node.test.lineno == node.test.end_lineno:
            s, e = off.span(node.test)
            seg = text[s:e]
            if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
                inner_s, inner_e = off.span(node.test.operand)
                out.append(Mutation("negate_condition", s, e, text[inner_s:inner_e], node.lineno))
            elif "\n" not in seg:
                out.append(Mutation("negate_condition", s, e, f"not ({seg})", node.lineno))
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            s, e = off.span(node.value)
            out.append(Mutation("flip_return", s, e, "False" if node.value.value else "True", node.lineno))
    out.sort(key=lambda m: (m.start, m.operator))
    return out


_DUMPS: dict[str, str] = {}


def valid(text: str, mutated: str) -> bool:
    """The mutated file parses and means something else than the original."""
    if mutated == text:
        return False
    try:
        key = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        if key not in _DUMPS:
            if len(_DUMPS) > 256:
                _DUMPS.clear()
            _DUMPS[key] = ast.dump(ast.parse(text))
        return ast.dump(ast.parse(mutated)) != _DUMPS[key]
    except (SyntaxError, ValueError, RecursionError):
        return False


def _function_nodes(tree) -> dict[int, ast.AST]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[sub.lineno] = sub
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.lineno] = node
    return out


def plan_mutations(ctx: Context, path: str, rng, limit: int) -> list[tuple]:
    """Up to ``limit`` (function, mutation, mutated text) for one file, chosen with ``rng``."""
    f = ctx.files[path]
    try:
        tree = ast.parse(f.text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    nodes = _function_nodes(tree)
    fns = [fn for fn in ctx.functions(path) if fn.def_line in nodes and fn.end_line - fn.def_line >= 2]
    rng.shuffle(fns)
    picked = []
    for fn in fns:
        cands = candidates(f.text, nodes[fn.def_line])
        rng.shuffle(cands)
        for m in cands:
            mutated = m.apply(f.text)
            if valid(f.text, mutated):
                picked.append((fn, m, mutated))
                break
        if len(picked) >= limit:
            break
    return sorted(picked, key=lambda t: t[0].start_line)


def _line(text: str, n: int) -> str:
    lines = text.splitlines()
    return lines[n - 1].strip() if 0 < n <= len(lines) else ""


class MutationGenerator:
    name = "mutation"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        out = []
        tests_dep = {}
        if ctx.options.test_command:  # a test-confirmed bug also depends on the tests that caught it
            tests_dep = {p: f.blob for p, f in ctx.files.items() if f.kind == "test"}
        for f in ctx.files.values():
            if f.language == "Python" and f.kind == "code":
                out.append(Unit(self.name, f.path, {f.path: f.blob, **tests_dep}))
        return sorted(out, key=lambda u: u.key)

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        f = ctx.files[unit.key]
        if not answerable(ctx, f):
            out.skip("file_too_long")
            return out
        planned = plan_mutations(ctx, f.path, rng, ctx.options.per_file)
        index = 0
        for fn, m, mutated in planned:
            complexity = rate_complexity(ccn=fn.ccn, lines=fn.end_line - fn.start_line + 1)
            if complexity == "complex" and ctx.options.exclude_complex:
                continue
            failing = None
            if ctx.options.test_command:
                sandbox = ctx.sandbox()
                if sandbox is None:  # baseline failed or no budget left
                    out.skip("mutation_untested")
                    continue
                res = sandbox.run_with(f.path, mutated, label=f"{f.path}:{m.line} {m.operator}")
                ctx.test_runs_left -= 1
                if res.status != "failed":
                    out.skip("mutation_survived" if res.status == "passed" else f"mutation_{res.status}")
                    continue
                failing = res.output_tail[-1500:]
            what = describe_function(fn)
            symptom = SYMPTOM[m.operator]
            request = query = rng.choice([f"There is a bug in {what} in `{f.path}`: it {symptom}. Find it and fix it.",
                                f"{what[0].upper() + what[1:]} in `{f.path}` {symptom}. Please fix the bug.",
                                f"Fix the bug in `{f.path}`: {what} {symptom}."])
            if failing is not None:
                query += f"\n\nRunning `{ctx.options.test_command}` fails:\n{fence(None, failing)}"
            query += f"\n\nThe current `{f.path}`:\n{fence(f.language, mutated)}"
            buggy_line = _line(mutated, m.line)
            fixed_line = _line(f.text, m.line)
            plan = "\n".join([
                f"- The bug is in {what} (lines {fn.start_line}–{fn.end_line} of `{f.path}`).",
                f"- Line {m.line} reads `{buggy_line}`: {EXPLAIN[m.operator]}.",
                f"- It should read `{fixed_line}`." if fixed_line and fixed_line != buggy_line else
                "- Restoring the original expression fixes it.",
                "- Nothing else in the file changes" + ("; the failing tests pass again." if failing else "."),
            ])
            out.examples.append(ctx.example(
                unit, index=index, category="bug_fix", query=query, plan=plan, files=[(f.path, f.text)],
                focus=(f.path, fn.start_line, fn.end_line), complexity=complexity, language=f.language,
                generator_version=self.version, request=request,
                meta={"function": fn.qualname, "mutation": {"operator": m.operator, "line": m.line,
                                                             "test_confirmed": failing is not None}}))
            index += 1
        return out
