"""Questions and answers from README and documentation sections (Markdown and reStructuredText).

Each section with enough prose becomes a question about its heading; the answer quotes the section's
lines exactly (the provenance line range is that section)."""
from __future__ import annotations

import re

from workers.engine.repos.generators.base import Context, Produced, Unit, rate_complexity

ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
RST_UNDER = re.compile(r"^([=\-~^\"'*+#`:.])\1{2,}\s*$")
SKIP_HEADINGS = re.compile(r"^(table of contents|contents|toc|badges?|screenshots?|links?|changelog|authors?|"
                           r"acknowledge?ments?|sponsors?|star history)$", re.I)
CANNED = {
    "installation": "How do I install {repo}?", "install": "How do I install {repo}?",
    "installing": "How do I install {repo}?", "setup": "How do I set up {repo}?", "set up": "How do I set up {repo}?",
    "getting started": "How do I get started with {repo}?", "quick start": "How do I get started with {repo}?",
    "quickstart": "How do I get started with {repo}?", "usage": "How do I use {repo}?",
    "configuration": "How is {repo} configured?", "testing": "How do I run the tests of {repo}?",
    "running tests": "How do I run the tests of {repo}?", "tests": "How do I run the tests of {repo}?",
    "contributing": "How can I contribute to {repo}?", "license": "Under which license is {repo} distributed?",
    "deployment": "How do I deploy {repo}?", "requirements": "What does {repo} require?",
    "features": "What are the features of {repo}?", "overview": "What is {repo}?", "introduction": "What is {repo}?",
    "architecture": "How is {repo} structured?", "development": "How do I work on {repo} locally?",
}


def sections(text: str, language: str | None) -> list[dict]:
    """``[{"heading", "level", "start", "body_start", "end"}]`` with 1-based inclusive line numbers."""
    lines = text.splitlines()
    heads = []  # (line index of heading text, level, title, body start index)
    in_fence = False
    rst = language == "reStructuredText"
    rst_levels: list[str] = []
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = ATX.match(line)
        if m and not rst:
            heads.append((i, len(m.group(1)), m.group(2).strip(), i + 1))
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and not line.startswith((" ", "\t", "-", "*", ">", "|")) and RST_UNDER.match(nxt) \
                and len(nxt.strip()) >= len(line.strip()) - 1:
            ch = nxt.strip()[0]
            if rst:
                if ch not in rst_levels:
                    rst_levels.append(ch)
                level = rst_levels.index(ch) + 1
            elif ch in "=-":
                level = 1 if ch == "=" else 2
            else:
                continue
            heads.append((i, level, line.strip(), i + 2))
    out = []
    for k, (i, level, title, body) in enumerate(heads):
        stop = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        end = stop - 1
        while end >= body and not lines[end].strip():
            end -= 1
        if end < body:
            continue
        parent = next((h[2] for h in reversed(heads[:k]) if h[1] < level), None)
        out.append({"heading": re.sub(r"[`*_]", "", title), "level": level, "start": i + 1, "body_start": body + 1,
                    "end": end + 1, "parent": parent})
    return out


def question(heading: str, repo: str, rng, *, first: bool) -> str:
    key = heading.lower().strip(" :")
    if first:
        return f"What is {repo}?"
    if key in CANNED:
        return CANNED[key].format(repo=repo)
    if heading.endswith("?"):
        return heading
    if key.startswith("how to "):
        return f"How do I {heading[7:].rstrip('.')} in {repo}?"
    return rng.choice([f"What does the {repo} documentation say about “{heading}”?",
                       f"Explain “{heading}” in {repo}.",
                       f"Where is “{heading}” described for {repo}, and what does it say?"])


class DocsQAGenerator:
    name = "docs_qa"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        return sorted((Unit(self.name, f.path, {f.path: f.blob}) for f in ctx.files.values()
                       if f.language in ("Markdown", "reStructuredText") and f.kind == "doc"), key=lambda u: u.key)

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        f = ctx.files[unit.key]
        lines = f.text.splitlines()
        usable = []
        for n, s in enumerate(sections(f.text, f.language)):
            if SKIP_HEADINGS.match(s["heading"].strip()):
                continue
            body = lines[s["body_start"] - 1: s["end"]]
            prose = [ln for ln in body if ln.strip()]
            links = sum(1 for ln in prose if re.match(r"^\s*[-*]\s*\[.*\]\(.*\)\s*$", ln))
            words = len(re.findall(r"[A-Za-z]{2,}", "\n".join(body)))
            if words < 15 or links > len(prose) / 2 or len(body) > 200:
                continue
            usable.append((n, s, body))
        if not usable:
            return out
        picks = sorted(rng.sample(usable, min(len(usable), ctx.options.docs_per_file)), key=lambda t: t[1]["start"])
        for index, (n, s, body) in enumerate(picks):
            first = n == 0 and s["level"] == 1 and f.path.lower().startswith("readme")
            q = question(s["heading"], ctx.repo_name, rng, first=first)
            text = "\n".join(body).strip("\n")
            has_code = any(FENCE.match(ln) for ln in body)
            items = sum(1 for ln in body if re.match(r"^\s*([-*+]|\d+\.)\s", ln))
            shape = []
            if has_code:
                shape.append("a code example")
            if items:
                shape.append(f"{items} list item{'s' if items != 1 else ''}")
            plan = "\n".join([
                f"- The question is answered by the section “{s['heading']}” of `{f.path}` (lines {s['start']}–{s['end']})"
                + (f", under “{s['parent']}”." if s.get("parent") else "."),
                "- It holds " + (" and ".join(shape) if shape else "prose") + "; I keep its commands, names and code exactly.",
                "- No file changes: the answer is documentation.",
            ])
            complexity = rate_complexity(lines=len(body))
            if complexity == "complex" and ctx.options.exclude_complex:
                continue
            out.examples.append(ctx.example(unit, index=index, category="docs", query=q, plan=plan, answer_text=text,
                                            focus=(f.path, s["start"], s["end"]), complexity=complexity,
                                            language=f.language, generator_version=self.version,
                                            extra_files=[{"path": f.path, "blob": f.blob,
                                                          "start_line": s["body_start"], "end_line": s["end"]}],
                                            meta={"section": s["heading"]}))
        return out
