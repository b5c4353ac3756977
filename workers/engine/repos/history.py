"""Commit history of a repository: commits, authors, churn per file and per month, and the commits
themselves (for the commit → change generator). One ``git log`` process, parsed as it streams; with the
analysis cache, only the commits that no earlier analysis read (see :func:`_cached_commits`)."""
from __future__ import annotations

import hashlib
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from workers.engine.repos.errors import check_stop
from workers.engine.repos.gitcmd import _SAFE, git, git_binary, git_env

_SEP = "\x1e"
_FORMAT = f"{_SEP}%H%x00%P%x00%aN%x00%aE%x00%aI%x00%s%x00%b%x00"


@dataclass
class Commit:
    sha: str
    parents: list[str]
    author: str
    author_key: str      # e-mail, only to count distinct authors (never returned)
    date: str            # ISO-8601 author date
    subject: str
    body: str
    numstat: list[tuple[str, int, int]] = field(default_factory=list)  # (path, added, removed); binary = -1


def _parse_numstat(rest: list[str]) -> list[tuple[str, int, int]]:
    """``git ... --numstat -z`` records: ``added\tremoved\tpath`` or, for a rename, ``added\tremoved\t``
    followed by the old and the new path as two records."""
    numstat: list[tuple[str, int, int]] = []
    i = 0
    while i < len(rest):
        item = rest[i].lstrip("\n")
        i += 1
        if not item:
            continue
        fields = item.split("\t")
        if len(fields) < 3:
            continue
        added, removed, path = fields[0], fields[1], fields[2]
        if path == "" and i + 1 < len(rest):
            path = rest[i + 1]
            i += 2
        numstat.append((path, int(added) if added.isdigit() else -1, int(removed) if removed.isdigit() else -1))
    return numstat


def iter_commits(repo_path, commit: str = "HEAD", *, max_commits: int = 5000, no_merges: bool = True,
                 numstat: bool = True, should_stop=None):
    """Yield :class:`Commit` newest first; with ``numstat`` (renames followed) unless told not to."""
    args = [git_binary(), *_SAFE, "log", f"--format={_FORMAT}", "-z", f"-n{int(max_commits)}"]
    if numstat:
        args += ["--numstat", "-M"]
    if no_merges:
        args.append("--no-merges")
    args += [commit, "--"]
    proc = subprocess.Popen(args, cwd=str(repo_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=git_env())
    try:
        raw = proc.stdout.read()
    finally:
        proc.stdout.close()
        proc.wait()
    yield from _parse_log(raw, numstat=numstat, should_stop=should_stop)


def _parse_log(raw: bytes, *, numstat: bool, should_stop=None):
    text = raw.decode("utf-8", "replace")
    for n, rec in enumerate(text.split(_SEP)):
        if not rec.strip("\0\n"):
            continue
        if n % 200 == 0:
            check_stop(should_stop)
        parts = rec.split("\0")
        sha, parents, author, email, date, subject, body = parts[:7]
        yield Commit(sha=sha.strip(), parents=parents.split(), author=author, author_key=email.lower(), date=date,
                     subject=subject, body=body.strip(), numstat=_parse_numstat(parts[7:]) if numstat else [])


def commit_numstat(repo_path, sha: str) -> list[tuple[str, int, int]]:
    """The files one commit changed against its first parent, with lines added and removed."""
    out = git(["diff-tree", "-r", "--no-commit-id", "--numstat", "-M", "-z", f"{sha}^", sha], repo_path, timeout=120)
    return _parse_numstat(out.stdout.decode("utf-8", "replace").split("\0"))


def _mailmap_key(repo_path) -> str:
    """What ``%aN`` / ``%aE`` depend on besides the commit: the mailmap (the work tree's .mailmap, HEAD:.mailmap,
    mailmap.file and mailmap.blob and what they name). Cached commits are reused only under the same key."""
    h = hashlib.sha256()
    cfg = git(["config", "--get-regexp", r"^mailmap\."], repo_path, check=False, timeout=30).stdout
    blobs, files = ["HEAD:.mailmap"], [Path(repo_path) / ".mailmap"]
    for line in cfg.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(" ")
        if name.lower() == "mailmap.file" and value:
            files.append(Path(value).expanduser() if Path(value).expanduser().is_absolute()
                         else Path(repo_path) / value)
        elif name.lower() == "mailmap.blob" and value:
            blobs.append(value)
    h.update(cfg + b"\0")
    for ref in blobs:  # the blob each names now (empty when none)
        h.update(git(["rev-parse", "--verify", "--quiet", ref], repo_path, check=False, timeout=30).stdout + b"\0")
    for f in files:
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(b"-")
        h.update(b"\0")
    return h.hexdigest()[:16]


def _cached_commits(repo_path, commit: str, *, max_commits: int, should_stop, cache):
    """The commits :func:`history_stats` reads — ``(author, author_key, date, numstat)`` newest first, as
    ``git log --no-merges -n max_commits`` walks them — with each commit's figures from the cache's newest history
    pack that holds it; only the commits no pack holds go through ``git log`` (``--no-walk``: those alone). A
    commit's figures never change, so the result is the same as without the cache."""
    shas = git(["rev-list", "--no-merges", f"-n{int(max_commits)}", commit, "--"], repo_path,
               timeout=600).stdout.decode().split()
    if not shas:
        return []
    key = _mailmap_key(repo_path)
    records: dict[str, tuple] = {}
    base = None
    for sha in shas:  # the newest commit with a pack: after a commit on top, the second one
        pack = cache.history_get(sha, key)
        if pack is not None:
            records, base = pack, sha
            break
    missing = [s for s in shas if s not in records]
    if missing:
        check_stop(should_stop)
        raw = git(["log", f"--format={_FORMAT}", "-z", "--numstat", "-M", "--no-walk=unsorted", "--stdin", "--"],
                  repo_path, input="".join(s + "\n" for s in missing).encode(), timeout=600).stdout
        for c in _parse_log(raw, numstat=True, should_stop=should_stop):
            records[c.sha] = (c.author, c.author_key, c.date, c.numstat)
    cache.commits_read += len(missing)
    cache.commits_cached += len(shas) - len(missing)
    out = [records[s] for s in shas if s in records]
    if base != shas[0] and len(out) == len(shas):
        cache.history_put(shas[0], key, [(s, *records[s]) for s in shas])
    return out


def history_stats(repo_path, commit: str = "HEAD", *, max_commits: int = 5000, should_stop=None,
                  top_files: int = 50, cache=None) -> dict:
    """Commits, authors, first and last dates, lines per month, churn per file, top authors. With ``cache`` (an
    :class:`~workers.engine.repos.analysis_cache.AnalysisCache`) only the commits it does not hold are read."""
    commits = authors = 0
    author_keys: Counter = Counter()
    names: dict[str, str] = {}
    months: dict[str, dict] = defaultdict(lambda: {"commits": 0, "added": 0, "removed": 0})
    churn: dict[str, dict] = defaultdict(lambda: {"commits": 0, "added": 0, "removed": 0})
    file_months: dict[str, Counter] = defaultdict(Counter)
    first = last = None
    if cache is not None:
        rows = _cached_commits(repo_path, commit, max_commits=max_commits, should_stop=should_stop, cache=cache)
    else:
        rows = ((c.author, c.author_key, c.date, c.numstat)
                for c in iter_commits(repo_path, commit, max_commits=max_commits, should_stop=should_stop))
    for author, author_key, date, numstat in rows:
        commits += 1
        author_keys[author_key] += 1
        names.setdefault(author_key, author)
        month = date[:7]
        months[month]["commits"] += 1
        last = last or date
        first = date
        for path, a, r in numstat:
            a, r = max(a, 0), max(r, 0)
            months[month]["added"] += a
            months[month]["removed"] += r
            ch = churn[path]
            ch["commits"] += 1
            ch["added"] += a
            ch["removed"] += r
            file_months[path][month] += a + r
    authors = len(author_keys)
    top = sorted(churn.items(), key=lambda kv: (-(kv[1]["added"] + kv[1]["removed"]), kv[0]))[:top_files]
    top10 = [p for p, _ in top[:10]]
    return {
        "commits": commits, "authors": authors, "first": first, "last": last, "truncated": commits >= max_commits,
        "by_month": [{"month": m, **v} for m, v in sorted(months.items())],
        "churn": [{"path": p, **v} for p, v in top],
        "churn_by_month": [{"path": p, "month": m, "lines": n} for p in top10 for m, n in sorted(file_months[p].items())],
        "top_authors": [{"name": names[k], "commits": n} for k, n in author_keys.most_common(10)],
    }
