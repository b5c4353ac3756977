"""Tests → implementation and implementation → tests, from test files paired with the module they test
(by name: ``test_foo.py``/``foo_test.go``/``foo.test.ts``/``FooTest.java`` ↔ ``foo``; for Python also by
what the test imports)."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from workers.engine.repos.generators.base import (Context, Produced, Unit, blockable, fence, rate_complexity)
from workers.engine.repos.generators.code import CODE_LANGS, answerable

FAMILY = {"TypeScript": "js", "JavaScript": "js"}


def stem_of_test(path: str) -> str | None:
    name = PurePosixPath(path).name
    for pat in (r"^test_(.+)\.py$", r"^(.+)_test\.py$", r"^(.+)_test\.go$", r"^(.+)\.(test|spec)\.[cm]?[jt]sx?$",
                r"^(.+)Tests?\.(java|kt|cs|scala)$", r"^Test(.+)\.(java|kt)$", r"^(.+)_spec\.rb$", r"^(.+)_test\.rs$"):
        m = re.match(pat, name)
        if m:
            return m.group(1)
    return None


def _family(lang: str | None) -> str | None:
    return FAMILY.get(lang or "", lang)


def _python_imports(text: str) -> list[str]:
    mods = re.findall(r"^\s*from\s+([\w.]+)\s+import\s+([\w, ()]+)", text, re.M)
    out = []
    for mod, names in mods:
        out.append(mod)
        out += [f"{mod}.{n.strip()}" for n in re.split(r"[,()\s]+", names) if n.strip()]
    out += re.findall(r"^\s*import\s+([\w.]+)", text, re.M)
    return out


def pair_tests(ctx: Context) -> dict[str, str]:
    """test path -> implementation path (computed once per context)."""
    if "pairs" not in ctx.cache:
        ctx.cache["pairs"] = _pair_tests(ctx)
    return ctx.cache["pairs"]


def _pair_tests(ctx: Context) -> dict[str, str]:
    by_stem: dict[tuple[str, str | None], list[str]] = {}
    by_module: dict[str, str] = {}
    for f in ctx.files.values():
        if f.kind != "code" or f.language not in CODE_LANGS:
            continue
        name = f.path.rpartition("/")[2]
        stem = name.split(".")[0] if f.language in ("TypeScript", "JavaScript") else name.rpartition(".")[0] or name
        by_stem.setdefault((stem, _family(f.language)), []).append(f.path)
        if f.language == "Python":
            mod = f.path[:-3].replace("/", ".")
            if mod.endswith(".__init__"):
                mod = mod[: -len(".__init__")]
            by_module[mod] = f.path
            parts = mod.split(".")
            for k in range(1, len(parts)):  # src/ layouts: src.pkg.mod is imported as pkg.mod
                by_module.setdefault(".".join(parts[k:]), f.path)
    pairs: dict[str, str] = {}
    for f in ctx.files.values():
        if f.kind != "test" or f.language not in CODE_LANGS:
            continue
        if f.language == "Python" and not re.search(r"^\s*(async\s+)?def test|^class Test|unittest", f.text, re.M):
            continue  # named like a test (test_settings.py) but holds none
        stem = stem_of_test(f.path)
        cands: list[str] = []
        if stem:
            cands = list(by_stem.get((stem, _family(f.language)), []))
        if f.language == "Python":
            imported = [by_module[m] for m in _python_imports(f.text) if m in by_module]
            if stem:
                hit = [p for p in imported if p.rpartition("/")[2].rpartition(".")[0] == stem]
                cands = hit or cands
            elif len(set(imported)) == 1:
                cands = imported
        if not cands:
            continue
        test_dir = f.path.split("/")[:-1]

        def score(p: str):
            common = 0
            for a, b in zip(p.split("/")[:-1], test_dir):
                if a != b:
                    break
                common += 1
            return (-common, len(p), p)

        pairs[f.path] = sorted(set(cands), key=score)[0]
    return pairs


def framework(text: str, language: str | None) -> str:
    if language == "Python":
        if "import pytest" in text or "from pytest" in text:
            return "pytest"
        if "unittest" in text:
            return "unittest"
        return "pytest"
    if language in ("TypeScript", "JavaScript"):
        for name in ("vitest", "jest", "mocha", "ava", "node:test", "bun:test"):
            if name in text:
                return {"node:test": "the Node.js test runner", "bun:test": "Bun's test runner"}.get(name, name.capitalize())
        return "the project's test runner"
    return {"Go": "Go's testing package", "Java": "JUnit", "Kotlin": "JUnit", "Rust": "Rust's test harness",
            "C#": "the project's test framework", "Ruby": "RSpec"}.get(language or "", "the project's test framework")


def names_of_tests(text: str, language: str | None) -> list[str]:
    if language == "Python":
        return re.findall(r"^\s*(?:async\s+)?def\s+(test\w*)", text, re.M)
    if language in ("TypeScript", "JavaScript"):
        return [m[1] for m in re.findall(r"\b(it|test)\s*\(\s*['\"`](.+?)['\"`]", text)]
    if language == "Go":
        return re.findall(r"^func\s+(Test\w+)", text, re.M)
    return re.findall(r"(?:@Test[\s\S]{0,80}?)\b(?:void|fun)\s+(\w+)\s*\(", text)


def public_names(ctx: Context, path: str) -> list[str]:
    f = ctx.files[path]
    names = [fn.name for fn in ctx.functions(path) if not fn.class_name]
    names += re.findall(r"^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([A-Za-z_]\w*)", f.text, re.M)
    return list(dict.fromkeys(n for n in names if not n.startswith("_")))


def _max_ccn(ctx: Context, path: str) -> int:
    return max([1] + [fn.ccn for fn in ctx.functions(path)])


class TestsToImplGenerator:
    __test__ = False  # not a pytest class
    name = "tests_to_impl"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        if not ctx.options.include_tests:
            return []
        pairs = pair_tests(ctx)
        return [Unit(self.name, t, {t: ctx.files[t].blob, i: ctx.files[i].blob}, payload=(t, i))
                for t, i in sorted(pairs.items())]

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        t, i = unit.payload
        tf, impl = ctx.files[t], ctx.files[i]
        if not answerable(ctx, impl) or len(tf.text) > ctx.options.max_answer_chars:
            out.skip("file_too_long")
            return out
        used = [n for n in public_names(ctx, i) if re.search(rf"\b{re.escape(n)}\b", tf.text)]
        tests = names_of_tests(tf.text, tf.language)
        complexity = rate_complexity(ccn=_max_ccn(ctx, i), lines=impl.lines)
        if complexity == "complex" and ctx.options.exclude_complex:
            return out
        request = rng.choice([f"Write `{i}` so that the tests in `{t}` pass.",
                              f"Implement `{i}`: the tests in `{t}` describe what it must do.",
                              f"Here are the tests for `{i}`. Write the module so they pass."])
        query = (request + f"\n\n{ctx.context_line(i)}\n\n`{t}`:\n{fence(tf.language, tf.text)}")
        plan = [f"- `{t}` tests `{i}`" + (f": it uses {', '.join(f'`{n}`' for n in used[:10])}." if used else ".")]
        if tests:
            plan.append(f"- {len(tests)} test{'s' if len(tests) != 1 else ''}"
                        f" ({', '.join(f'`{n}`' for n in tests[:6])}{', …' if len(tests) > 6 else ''}) fix the behaviour.")
        fns = [fn for fn in ctx.functions(i)]
        plan.append(f"- `{i}` is a {impl.lines}-line {impl.language} module"
                    + (f" with {len(fns)} function{'s' if len(fns) != 1 else ''}; the most complex has cyclomatic "
                       f"complexity {_max_ccn(ctx, i)}." if fns else "."))
        plan.append("- Every name the tests import or call must exist with the behaviour they assert; "
                    "helpers the tests do not see stay private.")
        plan.append(f"- One file is written: `{i}`.")
        out.examples.append(ctx.example(unit, index=0, category="file_creation", query=query, plan="\n".join(plan),
                                        files=[(i, impl.text)], focus=(i, 1, max(1, impl.lines)),
                                        complexity=complexity, language=impl.language,
                                        generator_version=self.version, meta={"tests": t},
                                        request=request))
        return out


class ImplToTestsGenerator:
    name = "impl_to_tests"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        if not ctx.options.include_tests:
            return []
        by_impl: dict[str, str] = {}
        for t, i in sorted(pair_tests(ctx).items()):
            by_impl.setdefault(i, t)
        return [Unit(self.name, i, {i: ctx.files[i].blob, t: ctx.files[t].blob}, payload=(t, i))
                for i, t in sorted(by_impl.items())]

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        t, i = unit.payload
        tf, impl = ctx.files[t], ctx.files[i]
        if not answerable(ctx, tf) or len(impl.text) > ctx.options.max_answer_chars or not blockable(t, tf.text):
            out.skip("file_too_long")
            return out
        fw = framework(tf.text, tf.language)
        tests = names_of_tests(tf.text, tf.language)
        used = [n for n in public_names(ctx, i) if re.search(rf"\b{re.escape(n)}\b", tf.text)]
        complexity = rate_complexity(ccn=_max_ccn(ctx, i), lines=tf.lines)
        if complexity == "complex" and ctx.options.exclude_complex:
            return out
        request = rng.choice([f"Write tests for `{i}` in `{t}` using {fw}.",
                              f"`{i}` has no tests yet. Add `{t}` ({fw}).",
                              f"Cover `{i}` with {fw} tests in `{t}`."])
        query = (request + f"\n\n{ctx.context_line(t)}\n\n`{i}`:\n{fence(impl.language, impl.text)}")
        plan = [f"- The tests go in `{t}` and use {fw}."]
        if used:
            plan.append(f"- They exercise {', '.join(f'`{n}`' for n in used[:10])} from `{i}`.")
        if tests:
            plan.append(f"- {len(tests)} test{'s' if len(tests) != 1 else ''}: "
                        + ", ".join(f"`{n}`" for n in tests[:8]) + (", …" if len(tests) > 8 else "") + ".")
        plan.append("- Each test checks one behaviour, including edge cases and errors, and imports only what it uses.")
        out.examples.append(ctx.example(unit, index=0, category="tests", query=query, plan="\n".join(plan),
                                        files=[(t, tf.text)], focus=(t, 1, max(1, tf.lines)), complexity=complexity,
                                        language=tf.language, generator_version=self.version, meta={"implementation": i},
                                        request=request))
        return out
