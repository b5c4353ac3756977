"""Repository analysis as plain JSON: languages, lines of code, complexity per function (lizard),
components (built-in kinds plus user rules), commit history and the license. The sources app stores the
dict as it is and draws its plots from it (see /work/notes/repos-engine.md for the shape).

With ``cache_dir`` the figures of each file (lines, lines of code, classes, lizard's functions) come from an
:class:`~workers.engine.repos.analysis_cache.AnalysisCache` keyed by git blob: a file whose blob was analysed
before is neither read nor analysed again, so a new commit costs only its changed files. The result is the
same as without the cache (plus ``cache``: hits, misses, corrupt entries, entries written). The commit history
goes through the same cache: only commits no earlier analysis read are read again (history._cached_commits)."""
from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
from collections import Counter

from workers.engine.repos.analysis_cache import AnalysisCache, flavor_of
from workers.engine.repos.errors import RepoError, check_stop
from workers.engine.repos.files import CONFIG_LANGS, MARKUP, PROSE, Snapshot, list_files, load_snapshot
from workers.engine.repos.history import history_stats
from workers.engine.repos.license import detect_license
from workers.engine.repos.sources import open_repo
from workers.engine.repos.symbols import LIZARD_LANGS, count_classes, lizard_many

BUCKETS = [(1, 5, "1-5"), (6, 10, "6-10"), (11, 20, "11-20"), (21, 50, "21-50"), (51, None, "51+")]


class Rule:
    """A user-defined component: ``{"name", "glob"?, "regex"?}`` (both given: both must match)."""

    def __init__(self, spec: dict):
        if not isinstance(spec, dict) or not str(spec.get("name", "")).strip():
            raise RepoError("invalid_rule", "Each component rule needs a name and a glob or a regex.", rule=spec)
        self.name = str(spec["name"]).strip()
        self.glob = (spec.get("glob") or "").strip() or None
        regex = (spec.get("regex") or "").strip() or None
        if not self.glob and not regex:
            raise RepoError("invalid_rule", f"The component rule `{self.name}` needs a glob or a regex.", rule=spec)
        try:
            self.regex = re.compile(regex, re.M) if regex else None
        except re.error as exc:
            raise RepoError("invalid_rule", f"The regex of component rule `{self.name}` is invalid: {exc}.", rule=spec)

    def _glob_match(self, path: str) -> bool:
        g = self.glob
        if fnmatch.fnmatchcase(path, g):
            return True
        if g.endswith("/**"):
            return path.startswith(g[:-3] + "/") or fnmatch.fnmatchcase(path, g[:-3] + "/*")
        if "/" not in g:
            return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], g)
        return fnmatch.fnmatchcase(path, g.replace("**/", "*/")) if "**/" in g else False

    def matches(self, path: str, text) -> int:
        """How many components this file holds: regex hits (or 1 per matching file for a glob-only rule).
        ``text``: the file's text, or a function returning it (called only when the regex must run)."""
        if self.glob and not self._glob_match(path):
            return 0
        if self.regex is None:
            return 1
        return len(self.regex.findall(text() if callable(text) else text))


def parse_rules(rules) -> list[Rule]:
    return [Rule(r) for r in (rules or [])]


def _bucket(ccn: int) -> str:
    for lo, hi, label in BUCKETS:
        if ccn >= lo and (hi is None or ccn <= hi):
            return label
    return BUCKETS[0][2]


def _may_be_code(language: str | None) -> bool:
    """Whether a file of this language is code or a test unless its path says otherwise (files.kind_of)."""
    return language is not None and language not in PROSE and language not in CONFIG_LANGS and language not in MARKUP


def _file_figures(snap: Snapshot, cache: AnalysisCache | None, cached: dict[str, dict], *, workers: int,
                  progress, should_stop) -> tuple[dict[str, tuple], threading.Thread | None]:
    """path -> ``(lines, loc, classes | None, lizard rows | None)`` for every file of the snapshot: from the
    cache where an entry exists, else computed (lizard in ``workers`` processes); and the thread writing the
    computed ones to the cache (None without one)."""
    figures: dict[str, tuple] = {}
    todo = []
    for f in snap.files.values():
        entry = cached.get(f.path)
        if entry is not None:
            figures[f.path] = (entry["lines"], entry["loc"], entry["classes"], entry["funcs"])
        else:
            todo.append(f)
    code_items = [(f.path, f.text) for f in todo if f.language in LIZARD_LANGS]
    if progress:
        progress("complexity", 0, len(code_items))

    def tick(done):
        if progress:
            progress("complexity", done, len(code_items))
        check_stop(should_stop)

    funcs = lizard_many(code_items, workers=workers, progress=tick)
    fresh = []
    for f in todo:
        classes = count_classes(f.text, f.language) if _may_be_code(f.language) else None
        rows = funcs.get(f.path) if f.language in LIZARD_LANGS else None
        figures[f.path] = (f.lines, f.loc, classes, rows)
        fresh.append({"blob": f.blob, "flavor": flavor_of(f.path), "lines": f.lines, "loc": f.loc,
                      "classes": classes, "funcs": rows})
    writer = cache.put_many_in_background(fresh) if cache is not None and fresh else None
    return figures, writer


def analyze(repo_path, *, commit: str = "HEAD", rules=(), max_file_bytes: int = 1_000_000, history: bool = True,
            max_commits: int = 5000, workers: int | None = None, progress=None, should_stop=None,
            snapshot: Snapshot | None = None, cache_dir=None) -> dict:
    started = time.monotonic()
    parsed_rules = parse_rules(rules)
    info = open_repo(repo_path, commit=commit)
    cache = AnalysisCache(cache_dir) if cache_dir is not None else None
    cached: dict[str, dict] = {}
    if snapshot is not None:
        snap = snapshot
        if cache is not None:
            for f in snap.files.values():
                entry = cache.get(f.blob, flavor_of(f.path))
                if entry is not None:
                    cached[f.path] = entry
    else:
        listing = list_files(info.path, info.commit, max_file_bytes=max_file_bytes)
        if cache is not None:  # a cached blob is known to be text: it is read only if a rule or the licence asks
            for e in listing.files:
                entry = cache.get(e.blob, flavor_of(e.path))
                if entry is not None:
                    cached[e.path] = entry
        snap = load_snapshot(info.path, info.commit, max_file_bytes=max_file_bytes, progress=progress,
                             should_stop=should_stop, listing=listing,
                             known_text={p: e["blob"] for p, e in cached.items()})
    check_stop(should_stop)
    workers = workers or min(os.cpu_count() or 1, 8)
    figures, writer = _file_figures(snap, cache, cached, workers=workers, progress=progress,
                                    should_stop=should_stop)
    try:
        out = _summarise(info, snap, figures, parsed_rules, history=history, max_commits=max_commits,
                         progress=progress, should_stop=should_stop, cache=cache)
    finally:
        if writer is not None:  # the new entries were written while the history was read
            writer.join()
    if cache is not None:
        out["cache"] = cache.stats()
        cache.maybe_prune()
    out["duration_s"] = round(time.monotonic() - started, 3)
    return out


def _summarise(info, snap: Snapshot, figures: dict[str, tuple], parsed_rules: list[Rule], *, history: bool,
               max_commits: int, progress, should_stop, cache: AnalysisCache | None) -> dict:
    languages: dict[str, dict] = {}
    components: Counter = Counter()
    component_files: dict[str, list[str]] = {r.name: [] for r in parsed_rules}
    for r in parsed_rules:
        components[r.name] = 0
    funcs: dict[str, list] = {}
    loc_total = lines_total = 0
    for f in snap.files.values():
        lines, loc, classes, rows = figures[f.path]
        loc_total += loc
        lines_total += lines
        lang = f.language or "Other"
        slot = languages.setdefault(lang, {"files": 0, "loc": 0})
        slot["files"] += 1
        slot["loc"] += loc
        if f.kind == "test":
            components["tests"] += 1
        elif f.kind == "doc":
            components["docs"] += 1
        elif f.kind == "config":
            components["config"] += 1
        if f.kind in ("code", "test"):
            components["classes"] += classes or 0
        if f.language in LIZARD_LANGS and f.kind in ("code", "test"):
            funcs[f.path] = rows or []
        for r in parsed_rules:
            n = r.matches(f.path, lambda f=f: f.text)
            if n:
                components[r.name] += n
                if len(component_files[r.name]) < 500:
                    component_files[r.name].append(f.path)
    hist = Counter()
    ccns = []
    top = []
    for path, rows in funcs.items():
        for name, long_name, start, end, ccn, nloc, _params in rows:
            ccns.append(ccn)
            hist[_bucket(ccn)] += 1
            top.append((ccn, path, name, start, end, nloc))
    top.sort(key=lambda t: (-t[0], t[1], t[3]))
    components["functions"] = len(ccns)
    history_data = None
    if history:
        if progress:
            progress("history", 0, None)
        history_data = history_stats(info.path, info.commit, max_commits=max_commits, should_stop=should_stop,
                                     cache=cache)
        if progress:
            progress("history", history_data["commits"], history_data["commits"])
    ordered = {k: components.get(k, 0) for k in ("functions", "classes", "tests", "docs", "config")}
    ordered.update({r.name: components.get(r.name, 0) for r in parsed_rules})
    return {
        "repo": info.path, "commit": info.commit, "branch": info.branch, "subject": info.subject,
        "files_total": len(snap.files), "loc_total": loc_total, "lines_total": lines_total,
        "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1]["loc"], kv[0]))),
        "skipped": dict(sorted(snap.skipped.items())),
        "skipped_paths": snap.skipped_paths,
        "complexity": {
            "functions": len(ccns), "mean": round(sum(ccns) / len(ccns), 2) if ccns else 0.0,
            "max": max(ccns) if ccns else 0,
            "histogram": [{"bucket": label, "count": hist.get(label, 0)} for _lo, _hi, label in BUCKETS],
            "top": [{"path": p, "name": n, "start_line": s, "end_line": e, "ccn": c, "nloc": nl}
                    for c, p, n, s, e, nl in top[:20]],
        },
        "components": ordered,
        "component_files": component_files,
        "history": history_data,
        "license": detect_license(snap.files),
        "duration_s": None,  # set by analyze, once the cache's writer is done
    }
