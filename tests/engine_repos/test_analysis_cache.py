"""The analysis' per-blob cache (workers/engine/repos/analysis_cache.py): the same result as without it, only the
files whose blobs changed are read and analysed again, a corrupt entry is recomputed, concurrent writers never
leave a torn entry, the folder stays bounded, and a cache that cannot be written never fails an analysis."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter

import pytest

from tests.engine_repos.conftest import CALC, git
from workers.engine.repos import analyze
from workers.engine.repos import analysis_cache as ac
from workers.engine.repos import files as files_mod
from workers.engine.repos import symbols

RULES = [{"name": "helpers", "glob": "web/**"}, {"name": "functions_named_is", "regex": r"^def is_\w+"},
         {"name": "stack_classes", "glob": "*.py", "regex": r"^class \w+"}]


def _plain(a: dict) -> dict:
    return {k: v for k, v in a.items() if k not in ("duration_s", "cache")}


def _files(a: dict) -> dict:
    """What the cache did for the files (its history counts left out)."""
    return {k: a["cache"][k] for k in ("hits", "misses", "corrupt", "written")}


@pytest.fixture
def spies(monkeypatch):
    """Counts lizard runs per path and the blobs read through `git cat-file --batch`, in this process."""
    lizard_calls: Counter = Counter()
    read: list[str] = []
    real_lizard, real_objects = symbols.lizard_functions, files_mod.iter_objects

    def lizard_spy(path, text):
        lizard_calls[path] += 1
        return real_lizard(path, text)

    def objects_spy(repo_path, names):
        read.extend(names)
        yield from real_objects(repo_path, names)

    monkeypatch.setattr(symbols, "lizard_functions", lizard_spy)
    monkeypatch.setattr(files_mod, "iter_objects", objects_spy)

    class Spies:
        def reset(self):
            lizard_calls.clear()
            read.clear()

    s = Spies()
    s.lizard, s.read = lizard_calls, read
    return s


def _blob(repo, path: str) -> str:
    return git(repo.path, "rev-parse", f"HEAD:{path}").strip()


def test_cached_analysis_equals_uncached_and_a_one_file_commit_reanalyses_only_that_file(sample, tmp_path, spies):
    cache = tmp_path / "cache"
    plain = analyze(sample.path, rules=RULES, workers=1)
    assert "cache" not in plain
    assert set(spies.lizard) == {"calc.py", "tests/test_calc.py", "web/util.js"}

    spies.reset()
    cold = analyze(sample.path, rules=RULES, workers=1, cache_dir=cache)
    assert _plain(cold) == _plain(plain)
    n = cold["files_total"]
    assert _files(cold) == {"hits": 0, "misses": n, "corrupt": 0, "written": n}
    assert (cold["cache"]["commits_read"], cold["cache"]["commits_cached"]) == (4, 0)
    assert len(list((cache / ac.VERSION).glob("*/*-????????.json"))) == n

    spies.reset()
    warm = analyze(sample.path, workers=1, cache_dir=cache)  # no regex rule: only the licence is read
    assert _plain(warm) == _plain(analyze(sample.path, workers=1))
    assert _files(warm) == {"hits": n, "misses": 0, "corrupt": 0, "written": 0}
    assert (warm["cache"]["commits_read"], warm["cache"]["commits_cached"]) == (0, 4)
    spies.reset()
    warm = analyze(sample.path, workers=1, cache_dir=cache)
    assert not spies.lizard  # nothing analysed again
    assert spies.read == [] and warm["license"]["spdx"] == "MIT"  # the licence: read lazily, one blob at a time

    sample.commit("Clamp below the range too", {"calc.py": CALC + "\n\ndef double(x):\n    return 2 * x\n"})
    spies.reset()
    after = analyze(sample.path, rules=RULES, workers=1, cache_dir=cache)
    assert dict(spies.lizard) == {"calc.py": 1}  # only the changed file went through lizard
    assert spies.read == [_blob(sample, "calc.py")]  # and only its blob was read up front
    assert _files(after) == {"hits": n - 1, "misses": 1, "corrupt": 0, "written": 1}
    assert (after["cache"]["commits_read"], after["cache"]["commits_cached"]) == (1, 4)  # only the new commit
    spies.reset()
    fresh = analyze(sample.path, rules=RULES, workers=1)
    assert _plain(after) == _plain(fresh) and after["commit"] == sample.head()
    assert after["complexity"]["functions"] == plain["complexity"]["functions"] + 1


def test_cached_analysis_in_worker_processes_matches(tmp_path):
    from tests.engine_repos.conftest import Repo

    repo = Repo(tmp_path / "many")
    repo.commit("Add modules", {f"pkg/m{i}.py": f"def f{i}(x):\n    if x > {i}:\n        return x\n    return {i}\n"
                                for i in range(60)})
    one = analyze(repo.path, workers=1, history=False)
    cold = analyze(repo.path, workers=2, history=False, cache_dir=tmp_path / "c")
    warm = analyze(repo.path, workers=2, history=False, cache_dir=tmp_path / "c")
    assert _plain(cold) == _plain(one) == _plain(warm) and warm["cache"]["hits"] == 60


def test_the_same_blob_under_another_extension_is_its_own_entry(tmp_path, spies):
    from tests.engine_repos.conftest import Repo

    code = "def f(x):\n    if x:\n        return x\n    return 0\n"  # a function to lizard's Python reader only
    repo = Repo(tmp_path / "twins")
    repo.commit("Same text four times", {"same.py": code, "same.js": code, "same.txt": code, "Makefile": code})
    plain = analyze(repo.path, workers=1)
    assert plain["complexity"]["functions"] == 1
    cache = tmp_path / "cache"
    first = analyze(repo.path, workers=1, cache_dir=cache)
    assert first["cache"]["written"] == 4 and len(list(cache.rglob("*-????????.json"))) == 4
    spies.reset()
    again = analyze(repo.path, workers=1, cache_dir=cache)
    assert _plain(again) == _plain(first) == _plain(plain) and again["cache"]["hits"] == 4 and not spies.lizard
    assert ac.flavor_of("x/Makefile") == "Makefile" and ac.flavor_of("a.R") == ".R" and ac.flavor_of(".env") == ""


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other_blob", "bad_row", "empty"])
def test_a_corrupt_entry_is_recomputed_and_rewritten(sample, tmp_path, spies, damage):
    cache = tmp_path / "cache"
    first = analyze(sample.path, workers=1, cache_dir=cache)
    entry = ac.AnalysisCache(cache).path_for(_blob(sample, "calc.py"), ".py")
    raw = entry.read_bytes()
    entry.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"\xff\x00not json",
                       "other_blob": raw.replace(_blob(sample, "calc.py").encode(), b"0" * 40),
                       "bad_row": raw.replace(b'"funcs":[[', b'"funcs":[["x"],['), "empty": b""}[damage])
    spies.reset()
    second = analyze(sample.path, workers=1, cache_dir=cache)
    assert _plain(second) == _plain(first)
    assert second["cache"]["corrupt"] == 1 and second["cache"]["written"] == 1
    assert dict(spies.lizard) == {"calc.py": 1}
    assert entry.read_bytes() == raw  # rewritten whole
    third = analyze(sample.path, workers=1, cache_dir=cache)
    assert third["cache"]["corrupt"] == 0 and third["cache"]["misses"] == 0


def _hammer(root: str, blobs: list[str], rounds: int) -> int:
    """Write and read the same entries over and over; return how many reads saw a torn or wrong entry."""
    cache = ac.AnalysisCache(root)
    for _ in range(rounds):
        for i, b in enumerate(blobs):
            cache.put(b, ".py", lines=i, loc=i, classes=0, funcs=[("f", "f(x)", 1, i + 1, 1, i, 1)] * 40)
            got = cache.get(b, ".py")
            if got is None or got["lines"] != i or len(got["funcs"]) != 40:
                return cache.corrupt + 1
    return cache.corrupt


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path):
    root = str(tmp_path / "cache")
    blobs = [f"{i:040x}" for i in range(30)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        procs = pool.starmap_async(_hammer, [(root, blobs, 15)] * 3)
        errors: list[int] = []
        threads = [threading.Thread(target=lambda: errors.append(_hammer(root, blobs, 15))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert procs.get(120) == [0, 0, 0] and errors == [0, 0, 0]
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []
    assert len(list((tmp_path / "cache" / ac.VERSION).glob("*/*.json"))) == 30


def test_prune_keeps_the_most_recently_used_entries_within_bounds(tmp_path):
    root = tmp_path / "cache"
    cache = ac.AnalysisCache(root, max_entries=10, prune_every_s=3600)
    blobs = [f"{i:040x}" for i in range(20)]
    now = time.time()
    for i, b in enumerate(blobs):
        cache.put(b, ".py", lines=1, loc=1, classes=0, funcs=[])
        os.utime(cache.path_for(b, ".py"), (now - 10 * 86400 + i, now - 10 * 86400 + i))  # older first
    cache.get(blobs[0], ".py")  # used now: the oldest entry becomes the most recent
    old_version = root / "v0-lizard-0.0" / "ab"
    old_version.mkdir(parents=True)
    (old_version / "x.json").write_text("{}")
    stale = cache.path_for(blobs[1], ".py").parent / ".x.json.1.2.tmp"
    stale.write_text("{")
    os.utime(stale, (now - 7200, now - 7200))
    removed = cache.prune()
    left = {p.name.split("-")[0] for p in (root / ac.VERSION).glob("*/*.json")}
    assert len(left) == 8 and removed["entries"] == 12 and removed["versions"] == 1 and removed["tmp"] == 1
    assert {b[2:] for b in [blobs[0]] + blobs[13:]} == left  # the least recently used went first
    assert not old_version.exists() and not stale.exists()
    # maybe_prune: not again within the hour, unless this run alone wrote more than a tenth of the bound
    assert ac.AnalysisCache(root, max_entries=10).maybe_prune() is None
    busy = ac.AnalysisCache(root, max_entries=10)
    for i in range(2):
        busy.put(f"ff{i:038x}", ".py", lines=1, loc=1, classes=0, funcs=[])
    assert busy.maybe_prune() is not None


def test_an_unwritable_cache_never_fails_the_analysis(sample, tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    a = analyze(sample.path, workers=1, cache_dir=blocked)
    assert _plain(a) == _plain(analyze(sample.path, workers=1))
    assert a["cache"]["written"] == 0 and a["cache"]["misses"] == a["files_total"]
    assert "could not write" in caplog.text
