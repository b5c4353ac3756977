"""Commit → change (as in CommitPackFT): the commit message is the request, the answer the complete new
content of every touched file at that commit. Only messages that read like requests are used (an
imperative verb first, optionally after a conventional-commit prefix), and only small text-only commits."""
from __future__ import annotations

import difflib
import re

from workers.engine.repos.files import decode_text, is_vendored, iter_objects, language_of, object_sizes
from workers.engine.repos.generators.base import (Context, Produced, Unit, blockable, fence, first_sentence, lines_of,
                                                  rate_complexity)
from workers.engine.repos.history import commit_numstat, iter_commits
from workers.engine.repos.symbols import functions_of

VERBS = set("""accept add adjust allow apply avoid build cache catch change check clarify clean clean-up cleanup
collapse combine compute configure convert copy correct create default defer define delete deprecate describe
detect disable display document drop emit enable enforce ensure escape expand explain expose extend extract filter fix
flatten forbid format generate guard handle hide ignore implement import improve include increase inline introduce
isolate keep let limit load lock log lower make mark migrate move normalize normalise optimize optimise override
parallelize parse pass persist pin prefer prepare preserve prevent print propagate protect provide prune raise read
record reduce refactor refresh register reject rename render reorder reorganize reorganise replace report require
rescue reset resolve respect restore restrict retry return reuse rewrite run sanitize save scope send serve set show
simplify skip sort speed split start stop store strip support switch tighten track treat trim tweak unify update
upgrade use validate verify warn wrap write""".split())
PREFIX_RE = re.compile(r"^(?P<type>[a-z]+)(\([^)]*\))?!?:\s*", re.I)
PREFIX_CATEGORY = {"feat": "feature", "feature": "feature", "fix": "bug_fix", "bugfix": "bug_fix", "hotfix": "bug_fix",
                   "docs": "docs", "doc": "docs", "test": "tests", "tests": "tests", "refactor": "refactor",
                   "perf": "refactor", "style": "refactor"}
SKIP_PREFIX = {"chore", "ci", "build", "release", "revert", "merge", "wip"}
SKIP_WORDS = re.compile(r"\b(wip|bump(ed)? (the )?version|release v?\d|merge (branch|pull)|revert)\b", re.I)
PERF_RE = re.compile(r"\b(speed(s|ed)? up|faster|perf|performance|optimi[sz](e|es|ed|ation)|latency|throughput|"
                     r"memory (usage|use|footprint)|quadratic|slow)\b", re.I)


def request_like(subject: str) -> tuple[bool, str | None, str]:
    """(is it a request?, category from a conventional prefix, the subject without the prefix)."""
    s = subject.strip()
    category = None
    m = PREFIX_RE.match(s)
    if m:
        kind = m.group("type").lower()
        if kind in SKIP_PREFIX:
            return False, None, s
        category = PREFIX_CATEGORY.get(kind)
        s = s[m.end():].strip()
    if SKIP_WORDS.search(subject) or len(s) < 12 or len(s.split()) < 3 or len(s) > 200:
        return False, category, s
    first = re.sub(r"[^a-z-]", "", s.split()[0].lower())
    return first in VERBS, category, s[0].upper() + s[1:]


def category_of(subject: str, prefix_category: str | None, statuses: list[str], paths: list[str]) -> str:
    all_new = bool(statuses) and all(s == "A" for s in statuses)
    if prefix_category and not (prefix_category == "feature" and all_new):
        return prefix_category
    low = subject.lower()
    if re.search(r"\b(fix|fixes|fixed|bug|crash|error|correct|repair|resolve|regression|broken|wrong)\b", low):
        return "bug_fix"
    if all(p for p in paths) and all(re.search(r"(^|/)(tests?|__tests__|spec)/|test_|_test\.|\.test\.|\.spec\.", p)
                                      for p in paths):
        return "tests"
    if re.search(r"\b(docs?|documentation|readme|docstrings?|comments?|typos?)\b", low) or \
            all(language_of(p) in ("Markdown", "reStructuredText", "Text") for p in paths):
        return "docs"
    if re.search(r"\b(refactor|rename|move|extract|simplify|clean|cleanup|tidy|split|reorgani[sz]e|inline|"
                 r"restructure|deduplicate)\b", low):
        return "refactor"
    if all_new:
        return "file_creation"
    return "feature"


def repo_commits(ctx: Context) -> list:
    """The commits the generators look at (cached on the context): newest first, no merges."""
    if "commits" not in ctx.cache:
        ctx.cache["commits"] = list(iter_commits(ctx.info.path, ctx.info.commit, numstat=False,
                                                         max_commits=ctx.options.max_history))
    return ctx.cache["commits"]


def changed_ranges(old: str, new: str) -> list[tuple[int, int]]:
    """1-based inclusive line ranges of ``new`` that differ from ``old``."""
    sm = difflib.SequenceMatcher(a=old.splitlines(), b=new.splitlines(), autojunk=False)
    out = []
    for tag, _i1, _i2, j1, j2 in sm.get_opcodes():
        if tag in ("replace", "insert") and j2 > j1:
            out.append((j1 + 1, j2))
    return out


def load_change(ctx: Context, commit) -> dict | None:
    """Old and new content of a commit's files, or None when the commit is unusable (reason in ``skip``)."""
    o = ctx.options
    files = [(p, a, r) for p, a, r in (commit.numstat or commit_numstat(ctx.info.path, commit.sha))]
    if not files or len(files) > o.commit_max_files:
        return {"skip": "commit_too_many_files" if files else "commit_empty"}
    if any(a < 0 or r < 0 for _p, a, r in files):
        return {"skip": "commit_binary"}
    if any(is_vendored(p) for p, _a, _r in files):
        return {"skip": "commit_vendored"}
    parent = commit.parents[0]
    names = [f"{commit.sha}:{p}" for p, _a, _r in files] + [f"{parent}:{p}" for p, _a, _r in files]
    sizes = object_sizes(ctx.info.path, names)
    if sum(s[2] for s in sizes.values() if s) > 2 * o.max_answer_chars:
        return {"skip": "commit_too_large"}
    blobs = {n: (sha, data) for n, sha, data in iter_objects(ctx.info.path, [n for n in names if sizes.get(n)])}
    out = []
    for p, a, r in files:
        new_sha, new_raw = blobs.get(f"{commit.sha}:{p}", (None, None))
        _old_sha, old_raw = blobs.get(f"{parent}:{p}", (None, None))
        new = decode_text(new_raw) if new_raw is not None else None
        old = decode_text(old_raw) if old_raw is not None else None
        if (new_raw is not None and new is None) or (old_raw is not None and old is None):
            return {"skip": "commit_binary"}
        if new is not None and not blockable(p, new):
            return {"skip": "commit_unblockable"}
        status = "A" if old is None else "D" if new is None else "M"
        out.append({"path": p, "added": a, "removed": r, "old": old, "new": new, "blob": new_sha, "status": status})
    if all(f["status"] == "D" for f in out):
        return {"skip": "commit_only_deletes"}
    if sum(len(f["new"] or "") for f in out) > o.max_answer_chars:
        return {"skip": "commit_too_large"}
    return {"files": out}


class CommitGenerator:
    name = "commit"
    version = "1"

    def units(self, ctx: Context) -> list[Unit]:
        out = []
        for c in repo_commits(ctx):
            if len(c.parents) != 1:
                continue
            ok, _cat, _s = request_like(c.subject)
            if ok:
                out.append(Unit(self.name, c.sha, {"commit": c.sha}, payload=c))
        return out

    def produce(self, ctx: Context, unit: Unit, rng) -> Produced:
        out = Produced()
        c = unit.payload
        change = load_change(ctx, c)
        if "skip" in change:
            out.skip(change["skip"])
            return out
        files = change["files"]
        _ok, prefix_cat, subject = request_like(c.subject)
        statuses = [f["status"] for f in files]
        category = category_of(subject, prefix_cat, statuses, [f["path"] for f in files])
        body = c.body.strip()
        request = subject + (f"\n\n{body}" if body and len(body) < 1500 else "")
        shown = [f for f in files if f["status"] != "A" and f["old"] is not None]
        query = request + f"\n\nRepository: {ctx.repo_name}."
        if shown:
            query += " The files as they are now:\n\n" + "\n\n".join(
                f"`{f['path']}`:\n{fence(language_of(f['path']), f['old'])}" for f in shown)
        # Plan: the files and, for code, the functions whose lines change.
        lines = [f"- The request: {first_sentence(subject)}"]
        verbs = {"A": "create", "M": "modify", "D": "delete"}
        lines.append("- Files: " + "; ".join(
            f"{verbs[f['status']]} `{f['path']}`" + (f" (+{f['added']} −{f['removed']})" if f["status"] == "M" else "")
            for f in files) + ".")
        max_ccn = 1
        focus = None
        for f in files:
            if f["new"] is None:
                continue
            ranges = changed_ranges(f["old"] or "", f["new"])
            if focus is None and ranges:
                focus = (f["path"], ranges[0][0], ranges[-1][1])
            fns = functions_of(f["path"], f["new"], language_of(f["path"]))
            touched = [fn for fn in fns if any(a <= fn.end_line and b >= fn.start_line for a, b in ranges)]
            max_ccn = max([max_ccn] + [fn.ccn for fn in touched])
            if touched:
                names = ", ".join(f"`{fn.qualname}`" for fn in touched[:6]) + (" and more" if len(touched) > 6 else "")
                lines.append(f"- In `{f['path']}` the change touches {names}.")
            elif f["status"] == "A":
                lines.append(f"- `{f['path']}` is new ({len(lines_of(f['new']))} lines).")
        why = first_sentence(body) if body else ""
        if why:
            lines.append(f"- Why: {why}")
        if any(f["status"] == "D" for f in files):
            lines.append("- The deleted file gets no block; every other touched file is given in full.")
        else:
            lines.append("- Every touched file is given in full below.")
        kept = [f for f in files if f["new"] is not None]
        if focus is None:
            focus = (kept[0]["path"], 1, max(1, len(lines_of(kept[0]["new"]))))
        total = sum(max(f["added"], 0) + max(f["removed"], 0) for f in files)
        complexity = rate_complexity(ccn=max_ccn, lines=total, files=len(files))
        if complexity == "complex" and ctx.options.exclude_complex:
            return out
        prov_files = [{"path": f["path"], "blob": f["blob"], "start_line": 1, "end_line": max(1, len(lines_of(f["new"])))}
                      for f in kept]
        out.examples.append(ctx.example(
            unit, index=0, category=category, query=query, plan="\n".join(lines),
            files=[(f["path"], f["new"]) for f in kept], focus=focus, complexity=complexity,
            language=language_of(kept[0]["path"]), commit=c.sha, generator_version=self.version,
            extra_files=prov_files, request=request,
            meta={"commit_subject": c.subject, "deleted": [f["path"] for f in files if f["status"] == "D"]}))
        return out
