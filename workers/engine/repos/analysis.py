"""Repository analysis as plain JSON: languages, lines of code, complexity per function (lizard),
components (built-in kinds plus user rules), commit history and the license. The sources app stores the
dict as it is and draws its plots from it (see /work/notes/repos-engine.md for the shape)."""
from __future__ import annotations

import fnmatch
import os
import re
import time
from collections import Counter

from workers.engine.repos.errors import RepoError, check_stop
from workers.engine.repos.files import Snapshot, load_snapshot
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

    def matches(self, path: str, text: str) -> int:
        """How many components this file holds: regex hits (or 1 per matching file for a glob-only rule)."""
        if self.glob and not self._glob_match(path):
            return 0
        if self.regex is None:
            return 1
        return len(self.regex.findall(text))


def parse_rules(rules) -> list[Rule]:
    return [Rule(r) for r in (rules or [])]


def _bucket(ccn: int) -> str:
    for lo, hi, label in BUCKETS:
        if ccn >= lo and (hi is None or ccn <= hi):
            return label
    return BUCKETS[0][2]


def analyze(repo_path, *, commit: str = "HEAD", rules=(), max_file_bytes: int = 1_000_000, history: bool = True,
            max_commits: int = 5000, workers: int | None = None, progress=None, should_stop=None,
            snapshot: Snapshot | None = None) -> dict:
    started = time.monotonic()
    parsed_rules = parse_rules(rules)
    info = open_repo(repo_path, commit=commit)
    snap = snapshot or load_snapshot(info.path, info.commit, max_file_bytes=max_file_bytes, progress=progress,
                                     should_stop=should_stop)
    check_stop(should_stop)
    languages: dict[str, dict] = {}
    components: Counter = Counter()
    component_files: dict[str, list[str]] = {r.name: [] for r in parsed_rules}
    for r in parsed_rules:
        components[r.name] = 0
    code_items = []
    for f in snap.files.values():
        lang = f.language or "Other"
        slot = languages.setdefault(lang, {"files": 0, "loc": 0})
        slot["files"] += 1
        slot["loc"] += f.loc
        if f.kind == "test":
            components["tests"] += 1
        elif f.kind == "doc":
            components["docs"] += 1
        elif f.kind == "config":
            components["config"] += 1
        if f.kind in ("code", "test"):
            components["classes"] += count_classes(f.text, f.language)
        if f.language in LIZARD_LANGS and f.kind in ("code", "test"):
            code_items.append((f.path, f.text))
        for r in parsed_rules:
            n = r.matches(f.path, f.text)
            if n:
                components[r.name] += n
                if len(component_files[r.name]) < 500:
                    component_files[r.name].append(f.path)
    workers = workers or min(os.cpu_count() or 1, 8)
    if progress:
        progress("complexity", 0, len(code_items))

    def tick(done):
        if progress:
            progress("complexity", done, len(code_items))
        check_stop(should_stop)

    funcs = lizard_many(code_items, workers=workers, progress=tick)
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
        history_data = history_stats(info.path, info.commit, max_commits=max_commits, should_stop=should_stop)
        if progress:
            progress("history", history_data["commits"], history_data["commits"])
    ordered = {k: components.get(k, 0) for k in ("functions", "classes", "tests", "docs", "config")}
    ordered.update({r.name: components.get(r.name, 0) for r in parsed_rules})
    return {
        "repo": info.path, "commit": info.commit, "branch": info.branch, "subject": info.subject,
        "files_total": len(snap.files), "loc_total": sum(f.loc for f in snap.files.values()),
        "lines_total": sum(f.lines for f in snap.files.values()),
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
        "duration_s": round(time.monotonic() - started, 3),
    }
