"""Files at a commit (binary / huge / symlinks skipped and counted) and the analysis dict."""
from __future__ import annotations

import json
import os

import pytest

from tests.engine_repos.conftest import CALC, Repo, git
from workers.engine.repos import RepoError, analyze, list_files, load_snapshot
from workers.engine.repos import files as files_mod


@pytest.fixture
def messy(tmp_path):
    repo = Repo(tmp_path / "messy")
    repo.write({"src/ok.py": "def f(x):\n    return x\n", "data/blob.dat2": b"abc\0def" * 10,
                "big.txt": "y" * 5000 + "\n", "latin.txt": "caf\xe9\n".encode("latin-1"),
                "node_modules/lib/index.js": "module.exports = 1;\n", "web/app.min.js": "var a=1;\n",
                "img/logo.png": b"\x89PNG....", "docs/guide.md": "# Guide\n\nText.\n"})
    os.symlink("/etc/passwd", repo.path / "passwd_link")
    os.symlink("../../outside.txt", repo.path / "src" / "up_link")
    os.symlink("ok.py", repo.path / "src" / "inside_link")
    repo.commit("Add everything")
    return repo


def test_binary_huge_symlinks_are_skipped_and_counted_and_huge_files_are_never_read(messy, monkeypatch):
    requested: list[str] = []
    real = files_mod.iter_objects

    def spy(repo_path, names):
        requested.extend(names)
        yield from real(repo_path, names)

    monkeypatch.setattr(files_mod, "iter_objects", spy)
    head = git(messy.path, "rev-parse", "HEAD").strip()
    snap = load_snapshot(messy.path, head, max_file_bytes=1000)
    assert sorted(snap.files) == ["docs/guide.md", "src/ok.py"]
    assert snap.skipped == {"binary": 3, "huge": 1, "symlink_outside": 2, "symlink": 1, "vendored": 2}
    assert "big.txt" in snap.skipped_paths["huge"]
    assert set(snap.skipped_paths["binary"]) == {"data/blob.dat2", "latin.txt", "img/logo.png"}
    # the huge blob's content was never asked of git; the PNG neither (known binary extension)
    huge_blob = git(messy.path, "rev-parse", f"{head}:big.txt").strip()
    png_blob = git(messy.path, "rev-parse", f"{head}:img/logo.png").strip()
    assert huge_blob not in requested and png_blob not in requested
    listing = list_files(messy.path, head, max_file_bytes=1000)
    ok = next(f for f in listing.files if f.path == "src/ok.py")
    assert ok.blob == git(messy.path, "rev-parse", f"{head}:src/ok.py").strip()
    assert ok.language == "Python" and ok.kind == "code"


def test_analysis_of_a_small_repository(sample):
    seen = []
    rules = [{"name": "helpers", "glob": "web/**"}, {"name": "functions_named_is", "regex": r"^def is_\w+"},
             {"name": "stack_classes", "glob": "*.py", "regex": r"^class \w+"}]
    a = analyze(sample.path, rules=rules, workers=1, progress=lambda phase, done, total: seen.append(phase))
    json.dumps(a)  # plain data
    assert a["commit"] == git(sample.path, "rev-parse", "HEAD").strip()
    assert a["languages"]["Python"]["files"] == 2 and a["languages"]["JavaScript"]["files"] == 1
    assert a["languages"]["Markdown"]["files"] == 1
    assert a["loc_total"] == sum(v["loc"] for v in a["languages"].values())
    calc_loc = sum(1 for line in open(sample.path / "calc.py").read().splitlines() if line.strip())
    assert a["languages"]["Python"]["loc"] == calc_loc + sum(
        1 for line in open(sample.path / "tests/test_calc.py").read().splitlines() if line.strip())
    comp = a["components"]
    assert comp["classes"] == 1 and comp["tests"] == 1 and comp["docs"] == 2 and comp["config"] == 1
    assert comp["helpers"] == 1 and comp["functions_named_is"] == 1 and comp["stack_classes"] == 1
    assert a["component_files"]["helpers"] == ["web/util.js"]
    # lizard complexity: clamp has two ifs -> 3; maxOf has if + for + if -> 4
    top = {t["name"]: t["ccn"] for t in a["complexity"]["top"]}
    assert top["clamp"] == 3 and top["maxOf"] == 4 and top["is_adult"] == 3
    assert sum(b["count"] for b in a["complexity"]["histogram"]) == a["complexity"]["functions"] == comp["functions"]
    h = a["history"]
    assert h["commits"] == 4 and h["authors"] == 2
    assert {r["name"] for r in h["top_authors"]} == {"Ada", "Bob"}
    assert "example.com" not in json.dumps(h)  # no e-mail addresses
    churn = {c["path"]: c for c in h["churn"]}
    assert churn["calc.py"]["commits"] == 2 and churn["calc.py"]["added"] == len(CALC.splitlines())
    assert sum(m["commits"] for m in h["by_month"]) == 4
    assert a["license"] == {"path": "LICENSE", "spdx": "MIT", "name": "MIT License"}
    assert {"files", "complexity", "history"} <= set(seen)


def test_analysis_in_worker_processes_matches_one_process(tmp_path):
    repo = Repo(tmp_path / "many")
    repo.commit("Add modules", {f"pkg/m{i}.py": f"def f{i}(x):\n    if x > {i}:\n        return x\n    return {i}\n"
                                for i in range(60)})
    one = analyze(repo.path, workers=1, history=False)
    two = analyze(repo.path, workers=2, history=False)
    for a in (one, two):
        a.pop("duration_s")
    assert one == two and one["complexity"]["functions"] == 60 and one["history"] is None
    # from a worker thread while another thread runs (a Dramatiq worker): a forkserver, same result
    import threading

    box, stop = {}, threading.Event()
    idle = threading.Thread(target=stop.wait)
    idle.start()
    try:
        th = threading.Thread(target=lambda: box.update(a=analyze(repo.path, workers=2, history=False)))
        th.start()
        th.join(120)
    finally:
        stop.set()
        idle.join()
    box["a"].pop("duration_s")
    assert box["a"] == one


def test_analysis_errors_and_cancel(sample, tmp_path):
    with pytest.raises(RepoError) as exc:
        analyze(sample.path, rules=[{"name": "bad", "regex": "("}])
    assert exc.value.code == "invalid_rule"
    with pytest.raises(RepoError) as exc:
        analyze(sample.path, rules=[{"name": "nothing"}])
    assert exc.value.code == "invalid_rule"
    with pytest.raises(RepoError) as exc:
        analyze(tmp_path)
    assert exc.value.code == "not_a_git_repo"
    with pytest.raises(RepoError) as exc:
        analyze(sample.path, should_stop=lambda: True)
    assert exc.value.code == "cancelled"
