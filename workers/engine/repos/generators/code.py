"""Generators over one source file: docstring → implementation, masked function completion (FIM), and
configuration files → file creation. The answer is always the file exactly as it is at the commit."""
from __future__ import annotations

import json
import re

from workers.engine.repos.generators.base import (Context, Produced, Unit, blockable, branch_summary, called_names,
                                                  describe_function, fence, first_sentence, lines_of, rate_complexity,
                                                  signature_text)
from workers.engine.repos.symbols import BRACE_LANGS

CODE_LANGS = BRACE_LANGS | {"Python"}
FILL = "<FILL>"


def answerable(ctx: Context, f) -> bool:
    o = ctx.options
    return f.lines <= o.max_answer_lines and len(f.text) <= o.max_answer_chars and blockable(f.path, f.text)


def code_units(ctx: Context, generator: str, *, tests: bool) -> list[Unit]:
    out = []
    for f in ctx.files.values():
        if f.language not in CODE_LANGS:
            continue
        if f.kind == "code" or (tests and f.kind == "test" and ctx.options.include_tests):
            out.append(Unit(generator, f.path, {f.path: f.blob}))
    return sorted(out, key=lambda u: u.key)


def _without(lines: list[str], a: int, b: int) -> str:
    """The file without lines a..b (1-based, inclusive), leaving at most one blank line at the seam."""
    before, after = lines[: a - 1], lines[b:]
    while before and after and not before[-1].strip() and not after[0].strip():
        after = after[1:]
    return "".join(before + after)


class DocstringGenerator:
    """A documented function is removed from its file; the request is its documentation and signature, the
    answer the complete file with it."""
    name = "docstring"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        return code_units(ctx, self.name, tests=False)

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        f = ctx.files[unit.key]
        if not answerable(ctx, f):
            out.skip("file_too_long")
            return out
        lines = lines_of(f.text)
        fns = [fn for fn in ctx.functions(f.path) if fn.doc and len(fn.doc) >= 20
               and fn.body_end - fn.body_start >= 1 and fn.body_start > (fn.doc_end or fn.def_line)]
        if not fns:
            return out
        picks = sorted(rng.sample(fns, min(len(fns), ctx.options.per_file)), key=lambda fn: fn.start_line)
        all_fns = ctx.functions(f.path)
        for i, fn in enumerate(picks):
            a = min(fn.start_line, fn.doc_start or fn.start_line)
            b = fn.end_line
            complexity = rate_complexity(ccn=fn.ccn, lines=b - a + 1)
            if complexity == "complex" and ctx.options.exclude_complex:
                continue
            sig = signature_text(lines, fn)
            before = [g for g in all_fns if g.end_line < a and g.class_name == fn.class_name]
            after = [g for g in all_fns if g.start_line > b and g.class_name == fn.class_name]
            where = (f"after `{before[-1].qualname}`" if before else
                     f"before `{after[0].qualname}`" if after else "at the end of the file" if not fn.class_name
                     else f"in the body of `{fn.class_name}`")
            what = describe_function(fn)
            calls = called_names("".join(lines[fn.body_start - 1: fn.body_end]), f.language)
            doc = fn.doc.strip()
            intro = rng.choice([
                f"Add {what} to `{f.path}`.",
                f"`{f.path}` needs {what}.",
                f"Please implement {what} in `{f.path}`.",
            ])
            request = f"{intro} What it should do:\n\n" + "\n".join("> " + ln if ln else ">" for ln in doc.splitlines())
            query = (request + f"\n\nSignature:\n{fence(f.language, sig)}\n\n{ctx.context_line(f.path)}\n\n"
                     f"The current `{f.path}`:\n{fence(f.language, _without(lines, a, b))}")
            plan = "\n".join([
                f"- The change is in `{f.path}`: {what} is missing and has to be added.",
                f"- It goes {where}, so the rest of the file keeps its order; in the finished file it spans lines {a}–{b}.",
                f"- Signature: `{sig.splitlines()[0].strip()}`.",
                f"- Behaviour, from the description: {first_sentence(doc)}",
                f"- The body has {branch_summary(fn)}" + (f"; it calls {', '.join(f'`{c}`' for c in calls)}." if calls else "."),
                "- I keep the documentation with the function and change nothing else in the file.",
            ])
            out.examples.append(ctx.example(unit, index=i, category="feature", query=query, plan=plan,
                                            files=[(f.path, f.text)], focus=(f.path, a, b), complexity=complexity,
                                            language=f.language, generator_version=self.version,
                                            meta={"function": fn.qualname}, request=request))
        return out


class FimGenerator:
    """Fill in the middle: a function's body is replaced by ``<FILL>``; the answer is the complete file."""
    name = "fim"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        return code_units(ctx, self.name, tests=True)

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        f = ctx.files[unit.key]
        if not answerable(ctx, f):
            out.skip("file_too_long")
            return out
        lines = lines_of(f.text)
        fns = [fn for fn in ctx.functions(f.path)
               if fn.body_start > (fn.doc_end or fn.def_line) and 1 <= fn.body_end - fn.body_start + 1 <= 80
               and fn.body_end >= fn.body_start]
        if not fns:
            return out
        picks = sorted(rng.sample(fns, min(len(fns), ctx.options.per_file)), key=lambda fn: fn.start_line)
        for i, fn in enumerate(picks):
            a, b = fn.body_start, fn.body_end
            complexity = rate_complexity(ccn=fn.ccn, lines=b - a + 1)
            if complexity == "complex" and ctx.options.exclude_complex:
                continue
            first = lines[a - 1]
            indent = first[: len(first) - len(first.lstrip())]
            masked = "".join(lines[: a - 1]) + f"{indent}{FILL}\n" + "".join(lines[b:])
            body = "".join(lines[a - 1: b])
            calls = called_names(body, f.language)
            returns = "return" in body
            what = describe_function(fn)
            request = (rng.choice([f"Complete {what} in `{f.path}`: its body is missing and marked `{FILL}`.",
                                   f"Fill in the `{FILL}` placeholder in `{f.path}` — it is the body of {what}.",
                                   f"Write the body of {what} where `{f.path}` says `{FILL}`."])
                       + " Give the whole file back.")
            query = request + f"\n\n{ctx.context_line(f.path)}\n\n{fence(f.language, masked)}"
            spec = (f"its documentation says: {first_sentence(fn.doc)}" if fn.doc
                    else "it has no documentation, so the name, the parameters and the callers define it")
            plan = "\n".join([
                f"- The placeholder is the body of {what} in `{f.path}` (lines {a}–{b} of the finished file).",
                f"- Signature: `{signature_text(lines, fn).splitlines()[0].strip()}`; {spec}",
                f"- The body takes {b - a + 1} line{'s' if b > a else ''} with {branch_summary(fn)}"
                + (f"; it calls {', '.join(f'`{c}`' for c in calls)}" if calls else "")
                + ("; it returns a value." if returns else "."),
                "- Everything outside the placeholder stays exactly as it is.",
            ])
            out.examples.append(ctx.example(unit, index=i, category="feature", query=query, plan=plan,
                                            files=[(f.path, f.text)], focus=(f.path, a, b), complexity=complexity,
                                            language=f.language, generator_version=self.version,
                                            meta={"function": fn.qualname}, request=request))
        return out


def config_summary(path: str, text: str, language: str | None) -> str | None:
    """What a configuration file sets, in a few words (None when it says nothing useful)."""
    items: list[str] = []
    if language == "JSON":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict):
            items = [f"`{k}`" for k in list(data)[:12]]
    elif language == "YAML":
        items = [f"`{k}`" for k in re.findall(r"^([A-Za-z_][\w.-]*):", text, re.M)[:12]]
    elif language in ("TOML", "INI"):
        items = [f"`[{k}]`" for k in re.findall(r"^\[([^\]\n]+)\]", text, re.M)[:12]]
    elif language == "Dockerfile":
        base = re.findall(r"^FROM\s+(\S+)", text, re.M | re.I)
        runs = len(re.findall(r"^RUN\s", text, re.M | re.I))
        ports = re.findall(r"^EXPOSE\s+(.+)$", text, re.M | re.I)
        if base:
            return (f"an image built from `{base[-1]}` with {runs} RUN step{'s' if runs != 1 else ''}"
                    + (f", exposing {', '.join(ports)}" if ports else ""))
        return None
    elif language == "Makefile":
        targets = [t for t in re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M) if not t.startswith(".")]
        items = [f"`{t}`" for t in dict.fromkeys(targets)][:12]
        return f"the targets {', '.join(items)}" if items else None
    if not items:
        return None
    return "the keys " + ", ".join(items) if language in ("JSON", "YAML") else "the sections " + ", ".join(items)


class ConfigGenerator:
    """Configuration files as file-creation requests (only with ``include_config``)."""
    name = "config"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        if not ctx.options.include_config:
            return []
        return sorted((Unit(self.name, f.path, {f.path: f.blob}) for f in ctx.files.values() if f.kind == "config"),
                      key=lambda u: u.key)

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        f = ctx.files[unit.key]
        if f.lines > 200 or not answerable(ctx, f) or not f.text.strip():
            out.skip("file_too_long")
            return out
        summary = config_summary(f.path, f.text, f.language)
        if not summary:
            return out
        query = (rng.choice([f"Create `{f.path}` for {ctx.repo_name}.", f"Write the `{f.path}` file of {ctx.repo_name}."])
                 + f" It should define {summary}.\n\n{ctx.context_line(f.path)}")
        plan = "\n".join([f"- One new file: `{f.path}` ({f.language or 'configuration'}, {f.lines} lines).",
                          f"- It defines {summary}, following the conventions of the files around it.",
                          "- No other file changes."])
        complexity = rate_complexity(lines=f.lines)
        if complexity == "complex" and ctx.options.exclude_complex:
            return out
        out.examples.append(ctx.example(unit, index=0, category="file_creation", query=query, plan=plan,
                                        files=[(f.path, f.text)], focus=(f.path, 1, max(1, f.lines)),
                                        complexity=complexity, language=f.language, generator_version=self.version))
        return out
