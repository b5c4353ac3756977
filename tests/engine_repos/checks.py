"""Provenance exactness, checked against git itself (``git show commit:path``)."""
from __future__ import annotations

from tests.engine_repos.conftest import git
from workers.engine.repos import CATEGORIES, COMPLEXITIES, parse_file_blocks

_cache: dict = {}


def show(repo, commit: str, path: str) -> str:
    key = (str(repo), commit, path)
    if key not in _cache:
        _cache[key] = git(repo, "show", f"{commit}:{path}")
    return _cache[key]


def assert_exact(repo, ex: dict) -> None:
    """Every <file> block equals the file at the provenance commit; every line range exists."""
    meta = ex["meta"]
    prov = meta["provenance"]
    assert set(prov) >= {"repo", "commit", "path", "start_line", "end_line", "generator", "generator_version",
                         "seed", "license"}
    assert prov["generator"] == meta["generator"] and ex["category"] in CATEGORIES
    assert meta["complexity"] in COMPLEXITIES
    commit = prov["commit"]
    roles = [m["role"] for m in ex["messages"]]
    assert roles == ["system", "user", "assistant"]
    answer = ex["messages"][2]["content"]
    assert answer.startswith("<thinking>\n") and "\n</thinking>\n\n" in answer
    text = show(repo, commit, prov["path"])
    n_lines = len(text.splitlines())
    assert 1 <= prov["start_line"] <= prov["end_line"] <= max(1, n_lines), (prov, n_lines)
    blocks = parse_file_blocks(answer)
    for path, content in blocks:
        assert content == show(repo, commit, path), (meta["example_id"], path)
    for f in prov.get("files") or []:
        t = show(repo, commit, f["path"])
        assert 1 <= f["start_line"] <= f["end_line"] <= max(1, len(t.splitlines()))
        if f.get("blob"):
            assert f["blob"] == git(repo, "rev-parse", f"{commit}:{f['path']}").strip()
    if meta["generator"] == "docs_qa":
        f = prov["files"][0]
        body = "\n".join(text.splitlines()[f["start_line"] - 1: f["end_line"]]).strip("\n")
        assert answer.split("\n</thinking>\n\n", 1)[1] == body
    else:
        assert blocks, meta["example_id"]
    user = ex["messages"][1]["content"]
    assert 0 < meta["request_chars"] <= len(user)
