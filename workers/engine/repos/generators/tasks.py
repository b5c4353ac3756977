"""Development tasks (the third seed): bug fix, feature, refactoring, testing, documentation, architecture,
performance — each with a difficulty, the files involved, acceptance criteria and, where tests exist, a
verifying command.

Tasks come from what the repository shows: a documented function (→ document it again after the docs
are stripped), a function with a paired test file (→ write the tests), a mutation (→ fix the bug),
very complex functions (→ refactor), very long modules (→ split them), nested loops (→ performance),
TODO / FIXME comments (→ feature / bug fix), and commits about speed (→ performance). Tasks whose
solution is in the repository (the stripped docs, the real tests, the unmutated file, the commit) also
become SFT examples; the rest are returned as tasks only, for evaluation and reward-based training.
"""
from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

from workers.engine.repos.files import kind_of, language_of
from workers.engine.repos.generators.base import (Context, Produced, Unit, blockable, fence, first_sentence, lines_of,
                                                  rate_complexity, sha)
from workers.engine.repos.generators.code import answerable
from workers.engine.repos.generators.commits import PERF_RE, load_change, repo_commits, request_like
from workers.engine.repos.generators.mutation import EXPLAIN, plan_mutations
from workers.engine.repos.generators.pairs import framework, pair_tests

TASK_CATEGORIES = ("bug_fix", "feature", "refactor", "tests", "docs", "architecture", "performance")
EXAMPLE_CATEGORY = {"architecture": "refactor", "performance": "refactor"}
DIFFICULTY = {"simple": "easy", "medium": "medium", "complex": "hard"}
TODO_RE = re.compile(r"(?:#|//|/\*|\*)\s*(TODO|FIXME|XXX|HACK)\b[:(\s]\s*(.{8,160})")


def verify_command(ctx: Context, test_path: str | None) -> str | None:
    """The command that checks a task, where tests exist."""
    if ctx.options.test_command:
        return ctx.options.test_command
    if not test_path:
        return None
    f = ctx.files.get(test_path)
    lang = f.language if f else None
    if lang == "Python":
        if framework(f.text, lang) == "unittest":
            return f"python -m unittest {test_path[:-3].replace('/', '.')}"
        return f"python -m pytest {test_path} -q"
    if lang in ("TypeScript", "JavaScript"):
        return f"npm test -- {test_path}"
    if lang == "Go":
        return f"go test ./{PurePosixPath(test_path).parent}"
    if lang == "Rust":
        return "cargo test"
    if lang in ("Java", "Kotlin"):
        return "./gradlew test" if any(p.startswith("build.gradle") for p in ctx.files) else "mvn test"
    return None


def _loop_depth(node) -> int:
    best = 0
    for child in ast.iter_child_nodes(node):
        d = _loop_depth(child)
        if isinstance(child, (ast.For, ast.While, ast.AsyncFor)):
            d += 1
        best = max(best, d)
    return best


class TaskGenerator:
    name = "tasks"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        pairs = {i: t for t, i in sorted(pair_tests(ctx).items(), reverse=True)}
        out = []
        for f in ctx.files.values():
            if f.kind != "code" or f.language is None:
                continue
            deps = {f.path: f.blob}
            test = pairs.get(f.path)
            if test:
                deps[test] = ctx.files[test].blob
            out.append(Unit(self.name, f.path, deps, payload=test))
        for c in repo_commits(ctx):
            ok, _cat, subject = request_like(c.subject)
            if ok and len(c.parents) == 1 and PERF_RE.search(subject):
                out.append(Unit(self.name, f"commit:{c.sha}", {"commit": c.sha}, payload=c))
        return sorted(out, key=lambda u: u.key)

    # ------------------------------------------------------------------------------------------------
    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        if unit.key.startswith("commit:"):
            self._perf_commit(ctx, unit, out)
            return out
        f = ctx.files[unit.key]
        test = unit.payload
        fns = ctx.functions(f.path) if f.language else []
        verify = verify_command(ctx, test)
        ukey = ctx.unit_key(unit)
        counter = [0]

        def task(category, complexity, title, description, files, criteria, focus, solution=None, plan=None,
                 query_context=None, commit=None):
            k = counter[0]
            counter[0] += 1
            path, start, end = focus
            t = {"id": f"task-{sha(f'{ukey}#{k}')[:16]}", "category": category,
                 "difficulty": DIFFICULTY[complexity], "title": title, "description": description, "files": files,
                 "acceptance_criteria": criteria, "verify_command": verify,
                 "provenance": {"repo": ctx.repo_name, "commit": commit or ctx.info.commit, "path": path,
                                "start_line": start, "end_line": end, "generator": self.name,
                                "generator_version": self.version, "seed": ctx.seed, "license": ctx.license},
                 "has_solution": solution is not None}
            out.tasks.append(t)
            if solution is not None and not (complexity == "complex" and ctx.options.exclude_complex):
                query = f"**{title}**\n\n{description}\n\nAcceptance criteria:\n" + "\n".join(f"- {c}" for c in criteria)
                if verify:
                    query += f"\n\nCheck with `{verify}`."
                request = query
                if query_context:
                    query += "\n\n" + query_context
                out.examples.append(ctx.example(
                    unit, index=k, category=EXAMPLE_CATEGORY.get(category, category), query=query, plan=plan,
                    files=solution, focus=focus, complexity=complexity, language=f.language,
                    generator_version=self.version, meta={"task": {x: t[x] for x in t if x != "provenance"}},
                    request=request))

        lines = lines_of(f.text)
        can_answer = answerable(ctx, f)
        # documentation: strip one docstring, ask for it back
        if f.language == "Python" and can_answer:
            documented = [fn for fn in fns if fn.doc and len(fn.doc) >= 30 and fn.doc_start and fn.doc_end
                          and fn.body_start > fn.doc_end]
            if documented:
                fn = rng.choice(documented)
                stripped = "".join(lines[: fn.doc_start - 1] + lines[fn.doc_end:])
                cx = rate_complexity(ccn=fn.ccn, lines=fn.end_line - fn.start_line + 1)
                task("docs", cx, f"Document `{fn.qualname}` in `{f.path}`",
                     f"`{fn.qualname}` has no docstring. Write one that says what it does, its parameters and what it "
                     "returns or raises, in the style of the rest of the module.",
                     [f.path], [f"`{fn.qualname}` has a docstring describing its behaviour, parameters and result.",
                                "No code outside the docstring changes."],
                     (f.path, fn.doc_start, fn.doc_end), solution=[(f.path, f.text)],
                     plan="\n".join([f"- The docstring goes right after the signature of `{fn.qualname}` "
                                     f"(lines {fn.doc_start}–{fn.doc_end} of `{f.path}`).",
                                     f"- What the code does: {first_sentence(fn.doc)}",
                                     "- Only the docstring is added; the code is unchanged."]),
                     query_context=f"The current `{f.path}`:\n{fence(f.language, stripped)}")
        # tests: write the paired test file
        if test:
            tf = ctx.files[test]
            if answerable(ctx, tf) and blockable(test, tf.text) and len(f.text) <= ctx.options.max_answer_chars:
                cx = rate_complexity(ccn=max([1] + [fn.ccn for fn in fns]), lines=tf.lines)
                fw = framework(tf.text, tf.language)
                task("tests", cx, f"Add tests for `{f.path}`",
                     f"`{f.path}` has no tests. Write `{test}` with {fw}, covering its public behaviour and edge cases.",
                     [test, f.path], [f"`{test}` exists and uses {fw}.", "Every public function of the module is exercised.",
                                      "The tests pass on the current code."] ,
                     (test, 1, max(1, tf.lines)), solution=[(test, tf.text)],
                     plan="\n".join([f"- New file `{test}` ({fw}) testing `{f.path}`.",
                                     f"- The module has {len(fns)} function{'s' if len(fns) != 1 else ''}; each gets "
                                     "tests for normal input, edge cases and errors.",
                                     "- The module itself does not change."]),
                     query_context=f"`{f.path}`:\n{fence(f.language, f.text)}")
        # bug fix: one mutation (not test-checked here; the verifying command says how to check it)
        if f.language == "Python" and can_answer:
            for fn, m, mutated in plan_mutations(ctx, f.path, rng, 1):
                cx = rate_complexity(ccn=fn.ccn, lines=fn.end_line - fn.start_line + 1)
                task("bug_fix", cx, f"Fix the bug in `{fn.qualname}`",
                     f"`{fn.qualname}` in `{f.path}` misbehaves: {EXPLAIN[m.operator].replace('is wrong', 'looks wrong')}"
                     " somewhere in it. Find and fix the bug without changing anything else.",
                     [f.path], ["The function behaves as its name, documentation and callers expect.",
                                "Only the faulty expression changes."] + (["The verifying command passes."] if verify else []),
                     (f.path, fn.start_line, fn.end_line), solution=[(f.path, f.text)],
                     plan="\n".join([f"- The bug is in `{fn.qualname}` (lines {fn.start_line}–{fn.end_line}).",
                                     f"- Line {m.line}: {EXPLAIN[m.operator]}; it should read "
                                     f"`{f.text.splitlines()[m.line - 1].strip()}`.",
                                     "- The rest of the file is unchanged."]),
                     query_context=f"The current `{f.path}`:\n{fence(f.language, mutated)}")
        # refactoring: very complex functions (no solution in the repository)
        for fn in sorted((fn for fn in fns if fn.ccn >= 15), key=lambda fn: -fn.ccn)[:2]:
            task("refactor", "complex" if fn.ccn >= 25 else "medium", f"Simplify `{fn.qualname}`",
                 f"`{fn.qualname}` in `{f.path}` (lines {fn.start_line}–{fn.end_line}) has cyclomatic complexity "
                 f"{fn.ccn}. Split it into smaller functions with one concern each, without changing behaviour.",
                 [f.path], [f"No function that replaces `{fn.qualname}` has cyclomatic complexity above 10.",
                            "Behaviour is unchanged" + (": the verifying command passes." if verify else ".")],
                 (f.path, fn.start_line, fn.end_line))
        # architecture: very long modules
        if f.lines > 500 and len(fns) >= 15:
            task("architecture", "complex", f"Split `{f.path}` by concern",
                 f"`{f.path}` has {f.lines} lines and {len(fns)} functions. Turn it into a package of modules by concern, "
                 "keeping the public names importable from the old path.",
                 [f.path], ["No module of the new package is longer than 400 lines.",
                            "Every name importable before is importable from the same path.",
                            "Behaviour is unchanged" + (": the verifying command passes." if verify else ".")],
                 (f.path, 1, f.lines))
        # performance: nested loops in Python
        if f.language == "Python":
            try:
                tree = ast.parse(f.text)
            except (SyntaxError, ValueError, RecursionError):
                tree = None
            nodes = {n.lineno: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} if tree else {}
            for fn in fns:
                node = nodes.get(fn.def_line)
                if node is not None and fn.nloc >= 12 and _loop_depth(node) >= 2:
                    task("performance", "medium", f"Speed up `{fn.qualname}`",
                         f"`{fn.qualname}` in `{f.path}` runs nested loops (lines {fn.start_line}–{fn.end_line}). Reduce "
                         "its time complexity, for example with a lookup table or by hoisting invariant work.",
                         [f.path], ["Results are identical to the current implementation.",
                                    "A benchmark on a large input shows a clear speed-up."],
                         (f.path, fn.start_line, fn.end_line))
                    break
        # TODO / FIXME comments
        for n, line in enumerate(lines, 1):
            m = TODO_RE.search(line)
            if not m:
                continue
            kind, text = m.group(1).upper(), m.group(2).strip().rstrip("*/ ").strip()
            category = "bug_fix" if kind in ("FIXME", "XXX") else "feature"
            task(category, "medium", f"{kind} in `{f.path}` line {n}: {text[:80]}",
                 f"`{f.path}` line {n} says: “{text}”. Do it, and remove the comment.",
                 [f.path], [f"The {kind} at `{f.path}` line {n} is resolved and the comment removed.",
                            "Existing behaviour elsewhere is unchanged."], (f.path, n, n))
            if counter[0] > 12:
                break
        return out

    def _perf_commit(self, ctx: Context, unit: Unit, out: Produced) -> None:
        c = unit.payload
        change = load_change(ctx, c)
        if "skip" in change:
            out.skip(change["skip"])
            return
        files = [f for f in change["files"] if f["new"] is not None]
        if not any(kind_of(f["path"], language_of(f["path"])) == "code" for f in files):
            out.skip("perf_commit_without_code")  # CI caches and the like
            return
        _ok, _cat, subject = request_like(c.subject)
        total = sum(f["added"] + f["removed"] for f in change["files"])
        cx = rate_complexity(lines=total, files=len(change["files"]))
        ukey = ctx.unit_key(unit)
        first = files[0]
        prov = {"repo": ctx.repo_name, "commit": c.sha, "path": first["path"], "start_line": 1,
                "end_line": max(1, len(lines_of(first["new"]))), "generator": self.name,
                "generator_version": self.version, "seed": ctx.seed, "license": ctx.license}
        t = {"id": f"task-{sha(f'{ukey}#0')[:16]}", "category": "performance", "difficulty": DIFFICULTY[cx],
             "title": subject, "description": (c.body or subject).strip()[:1500],
             "files": [f["path"] for f in change["files"]],
             "acceptance_criteria": ["Results are unchanged.", "The change makes the described path measurably faster."],
             "verify_command": ctx.options.test_command, "provenance": prov, "has_solution": True}
        out.tasks.append(t)
        if cx == "complex" and ctx.options.exclude_complex:
            return
        shown = [f for f in change["files"] if f["old"] is not None]
        query = (f"**{subject}**\n\n{t['description']}\n\nAcceptance criteria:\n"
                 + "\n".join(f"- {x}" for x in t["acceptance_criteria"]))
        request = query
        if shown:
            query += "\n\nThe files as they are now:\n\n" + "\n\n".join(
                f"`{f['path']}`:\n{fence(None, f['old'])}" for f in shown)
        plan = "\n".join([f"- Performance task: {first_sentence(subject)}",
                          "- Files: " + ", ".join(f"`{f['path']}`" for f in change["files"]) + ".",
                          "- Results must stay identical; every touched file is given in full."])
        out.examples.append(ctx.example(
            unit, index=0, category="refactor", query=query, plan=plan,
            files=[(f["path"], f["new"]) for f in files], focus=(first["path"], 1, prov["end_line"]), complexity=cx,
            language=None, commit=c.sha, generator_version=self.version,
            extra_files=[{"path": f["path"], "blob": f["blob"], "start_line": 1, "end_line": max(1, len(lines_of(f["new"])))}
                         for f in files],
            meta={"task": {x: t[x] for x in t if x != "provenance"}}, request=request))
