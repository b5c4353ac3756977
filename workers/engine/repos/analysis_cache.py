"""What the analysis computes per file, cached on disk by git blob, so a new commit re-analyses only the files
whose blobs changed.

A file's figures — physical lines, lines of code, classes, and lizard's row per function ``(name, long_name,
start_line, end_line, ccn, nloc, params)`` — depend only on its content (the blob) and on what its name tells
the analysers (the *flavor*: the extension, or the whole name for ``Dockerfile``, ``Makefile``…; lizard picks its
reader by extension and the language follows from it). An entry is keyed by ``(blob, flavor)`` under a folder
named for :data:`VERSION` (this module's schema and the installed lizard's version), so an upgrade of either
starts a fresh folder and the old one is pruned.

Layout: ``<root>/<VERSION>/<blob[:2]>/<blob[2:]>-<flavor hash>.json``, one small JSON file per entry; and
``<root>/<VERSION>/<sha[:2]>/<sha[2:]>-history.json``, the *history pack* of an analysed commit: each commit's
author, date and lines changed per file (what ``git log --numstat`` said; a commit's figures never change), so
the next analysis reads only the commits on top (workers/engine/repos/history.py, ``_cached_commits``). A pack
records the mailmap it was read under; under another one it is not used.

- Concurrent writers (the worker's jobs, the CLI) are safe: an entry is written to a temporary file in its
  folder and renamed over its name (atomic on POSIX); two writers of one entry write the same content.
- A corrupt entry or pack (cut, garbled, or not the one its name says) is a miss: recomputed and rewritten.
- Bounded: :meth:`AnalysisCache.prune` drops the least recently used entries (a hit refreshes an entry's mtime
  at most once a day) beyond ``max_entries`` / ``max_bytes``, other versions' folders and stale temporary
  files. :meth:`AnalysisCache.maybe_prune` runs it at most every ``prune_every_s`` (a marker file's mtime), or
  at once when a run wrote many entries.
- The cache never fails an analysis: an unreadable or unwritable folder only means misses.

The engine knows nothing of Django: the app passes the folder (ARTIFACT_ROOT/cache/repo-analysis).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from workers.engine.repos.files import NAMED_LANGUAGES

try:
    import orjson

    def _dumps(obj) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency of the hub
    import json

    def _dumps(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

    _loads = json.loads

log = logging.getLogger(__name__)

SCHEMA = 1  # bump when what is computed per file (lines, loc, classes, lizard rows) changes


def _lizard_version() -> str:
    try:
        from lizard_ext.version import version
    except Exception:  # pragma: no cover - lizard is a dependency of the hub
        return "unknown"
    return str(version)


VERSION = f"v{SCHEMA}-lizard-{_lizard_version()}"
_REFRESH_S = 86400  # a hit moves an entry's mtime forward at most once a day
_STALE_TMP_S = 3600


def flavor_of(path: str) -> str:
    """What a file's name tells the analysers: the whole name for the named files (Dockerfile, Gemfile…),
    else its last extension (``.py``; case kept: ``.R`` and ``.r``), else ``""``."""
    name = path.rpartition("/")[2]
    if name in NAMED_LANGUAGES:
        return name
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _valid(entry, blob: str, flavor: str) -> bool:
    if not isinstance(entry, dict) or entry.get("blob") != blob or entry.get("flavor") != flavor:
        return False
    for k in ("lines", "loc"):
        if type(entry.get(k)) is not int or entry[k] < 0:
            return False
    classes, funcs = entry.get("classes"), entry.get("funcs")
    if classes is not None and (type(classes) is not int or classes < 0):
        return False
    if funcs is not None:
        if not isinstance(funcs, list):
            return False
        for row in funcs:
            if (not isinstance(row, list) or len(row) != 7 or not isinstance(row[0], str)
                    or not isinstance(row[1], str) or any(type(v) is not int for v in row[2:])):
                return False
    return True


class AnalysisCache:
    """Per-file analysis figures on disk, keyed by ``(blob, flavor)``, and history packs keyed by commit; see the
    module's docstring. Its counters say what one analysis found (hits, misses, corrupt, written, commits)."""

    def __init__(self, root, *, max_entries: int = 200_000, max_bytes: int = 512 * 1024 * 1024,
                 prune_every_s: float = 3600.0):
        self.root = Path(root)
        self.dir = self.root / VERSION
        self.max_entries, self.max_bytes, self.prune_every_s = max_entries, max_bytes, prune_every_s
        self.hits = self.misses = self.corrupt = self.written = 0
        self.commits_cached = self.commits_read = 0  # history: commits from a pack / read with git log
        self.written_bytes = 0
        self._made: set[str] = set()
        self._warned = False

    # -- entries -----------------------------------------------------------------------------------------------
    def path_for(self, blob: str, flavor: str) -> Path:
        tag = hashlib.blake2s(flavor.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
        return self.dir / blob[:2] / f"{blob[2:]}-{tag}.json"

    def get(self, blob: str, flavor: str) -> dict | None:
        """The entry, with ``funcs`` as tuples (as lizard's rows are), or None (missing or corrupt: a miss)."""
        path = self.path_for(blob, flavor)
        try:
            with open(path, "rb") as fh:
                mtime = os.fstat(fh.fileno()).st_mtime
                raw = fh.read()
        except OSError:
            self.misses += 1
            return None
        try:
            entry = _loads(raw)
        except ValueError:
            entry = None
        if not _valid(entry, blob, flavor):
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        if time.time() - mtime > _REFRESH_S:  # least recently *used* goes first when pruning
            try:
                os.utime(path)
            except OSError:
                pass
        if entry["funcs"] is not None:
            entry["funcs"] = [tuple(row) for row in entry["funcs"]]
        return entry

    def put(self, blob: str, flavor: str, *, lines: int, loc: int, classes: int | None,
            funcs: list | None) -> None:
        """Write one entry; errors are logged (once), never raised."""
        if self._write(self.path_for(blob, flavor), {
                "blob": blob, "flavor": flavor, "lines": lines, "loc": loc, "classes": classes,
                "funcs": [list(row) for row in funcs] if funcs is not None else None}):
            self.written += 1

    def _write(self, path: Path, data: dict) -> bool:
        """A temporary file renamed over ``path`` (atomic on POSIX): readers see the old entry or the new one."""
        folder = str(path.parent)
        # unique among live writers (pid, thread); a leftover of a dead process with the same pid is overwritten
        tmp = os.path.join(folder, f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            raw = _dumps(data)
            with open(tmp, "wb") as fh:
                fh.write(raw)
            self.written_bytes += len(raw)
            os.replace(tmp, path)
            return True
        except OSError as exc:
            if not self._warned:  # once per analysis: a full or read-only disk would say it for every file
                self._warned = True
                log.warning("analysis cache: could not write %s: %s", path, exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False

    def put_many_in_background(self, entries: list[dict]) -> threading.Thread:
        """Write ``entries`` (the keyword arguments of :meth:`put`, with ``blob`` and ``flavor``) on a thread —
        the analysis goes on with the commit history meanwhile; join it before relying on the entries."""
        def run():
            for e in entries:
                self.put(**e)

        thread = threading.Thread(target=run, name="analysis-cache-writer", daemon=True)
        thread.start()
        return thread

    # -- history packs -----------------------------------------------------------------------------------------
    def history_path(self, tip: str) -> Path:
        return self.dir / tip[:2] / f"{tip[2:]}-history.json"

    def history_get(self, tip: str, mailmap: str) -> dict[str, tuple] | None:
        """The figures of the commits an analysis of ``tip`` read (sha -> ``(author, author_key, date,
        numstat)``), or None: no pack, a corrupt one, or one read under another mailmap."""
        path = self.history_path(tip)
        try:
            with open(path, "rb") as fh:
                mtime = os.fstat(fh.fileno()).st_mtime
                raw = fh.read()
        except OSError:
            return None
        try:
            pack = _loads(raw)
            if not isinstance(pack, dict) or pack.get("tip") != tip:
                raise ValueError("not this pack")
            if pack.get("mailmap") != mailmap:
                return None
            out = {}
            for sha, author, key, date, numstat in pack["commits"]:
                if not all(isinstance(v, str) for v in (sha, author, key, date)):
                    raise ValueError("bad commit")
                rows = [(p, a, r) for p, a, r in numstat]
                if not all(isinstance(p, str) and type(a) is int and type(r) is int for p, a, r in rows):
                    raise ValueError("bad numstat")
                out[sha] = (author, key, date, rows)
        except (ValueError, TypeError, KeyError):
            self.corrupt += 1
            return None
        if time.time() - mtime > _REFRESH_S:
            try:
                os.utime(path)
            except OSError:
                pass
        return out

    def history_put(self, tip: str, mailmap: str, commits: list[tuple]) -> None:
        """Write the pack of ``tip``: ``(sha, author, author_key, date, numstat)`` per commit, newest first."""
        self._write(self.history_path(tip), {"tip": tip, "mailmap": mailmap,
                                             "commits": [[c[0], c[1], c[2], c[3], [list(n) for n in c[4]]]
                                                         for c in commits]})

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt, "written": self.written,
                "commits_cached": self.commits_cached, "commits_read": self.commits_read}

    # -- bounds ------------------------------------------------------------------------------------------------
    def maybe_prune(self) -> dict | None:
        """Prune when the last prune is older than ``prune_every_s``, or when this run alone wrote more than a
        tenth of ``max_entries`` or of ``max_bytes``; else nothing."""
        marker = self.root / ".pruned"
        try:
            due = time.time() - marker.stat().st_mtime >= self.prune_every_s
        except OSError:
            due = True
        if due or self.written > self.max_entries // 10 or self.written_bytes > self.max_bytes // 10:
            return self.prune()
        return None

    def prune(self) -> dict:
        """Drop other versions' folders, temporary files older than an hour, and the least recently used entries
        until at most 80 % of ``max_entries`` and ``max_bytes`` remain when either bound is exceeded."""
        removed = {"entries": 0, "bytes": 0, "versions": 0, "tmp": 0}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".pruned").touch()
            others = [e for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False) and e.name != VERSION]
        except OSError as exc:
            log.warning("analysis cache: could not prune %s: %s", self.root, exc)
            return removed
        for e in others:
            shutil.rmtree(e.path, ignore_errors=True)
            removed["versions"] += 1
        entries: list[tuple[float, int, str]] = []
        now = time.time()
        try:
            shards = [s.path for s in os.scandir(self.dir) if s.is_dir(follow_symlinks=False)]
        except OSError:
            shards = []
        for shard in shards:
            try:
                listing = list(os.scandir(shard))
            except OSError:
                continue
            for e in listing:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if e.name.endswith(".tmp"):
                    if now - st.st_mtime > _STALE_TMP_S:
                        self._unlink(e.path)
                        removed["tmp"] += 1
                    continue
                entries.append((st.st_mtime, st.st_size, e.path))
        total = sum(size for _, size, _ in entries)
        if len(entries) <= self.max_entries and total <= self.max_bytes:
            return removed
        keep_n, keep_bytes = int(self.max_entries * 0.8), int(self.max_bytes * 0.8)
        entries.sort()
        n = len(entries)
        for mtime, size, path in entries:
            if n <= keep_n and total <= keep_bytes:
                break
            if self._unlink(path):
                removed["entries"] += 1
                removed["bytes"] += size
            n -= 1
            total -= size
        return removed

    @staticmethod
    def _unlink(path: str) -> bool:
        try:
            os.unlink(path)
            return True
        except OSError:  # another process pruned it first
            return False
