"""The commit history through the analysis cache (workers/engine/repos/history.py `_cached_commits`): the same
statistics as one `git log` — merges, renames, the root commit, a window of max_commits — while a later analysis
reads only the commits no earlier one read; a mailmap change or a corrupt pack makes it read them all again."""
from __future__ import annotations

import pytest

from tests.engine_repos.conftest import Repo, git
from workers.engine.repos import analysis_cache as ac
from workers.engine.repos.history import history_stats


def _merge_date(n: int) -> dict:
    d = f"2024-05-{n:02d}T10:00:00+0000"
    return {"GIT_AUTHOR_DATE": d, "GIT_COMMITTER_DATE": d}


@pytest.fixture
def branchy(tmp_path) -> Repo:
    """Root commit, a rename on a branch, work on main, a merge of the branch, two authors."""
    repo = Repo(tmp_path / "branchy")
    repo.commit("Initial import", {"a.py": "def a():\n    return 1\n", "notes.md": "# Notes\n"})
    repo.commit("Grow a", {"a.py": "def a():\n    return 1\n\n\ndef b():\n    return 2\n"}, author="Bob")
    git(repo.path, "checkout", "-q", "-b", "feature")
    git(repo.path, "mv", "notes.md", "docs.md")
    repo.commit("Rename the notes", {"docs.md": "# Notes\n\nMore.\n"})
    git(repo.path, "checkout", "-q", "main")
    repo.commit("Work on main", {"c.py": "X = 1\n"}, author="Bob")
    git(repo.path, "merge", "-q", "--no-ff", "-m", "Merge the feature", "feature", env=_merge_date(1))
    return repo


def test_cached_history_equals_git_log_and_reads_only_new_commits(branchy, tmp_path):
    cache = ac.AnalysisCache(tmp_path / "cache")
    plain = history_stats(branchy.path, "HEAD")
    assert plain["commits"] == 4 and any(c["path"] == "docs.md" for c in plain["churn"])
    assert history_stats(branchy.path, "HEAD", cache=cache) == plain
    assert (cache.commits_read, cache.commits_cached) == (4, 0)

    cache = ac.AnalysisCache(tmp_path / "cache")
    assert history_stats(branchy.path, "HEAD", cache=cache) == plain
    assert (cache.commits_read, cache.commits_cached) == (0, 4)

    branchy.commit("One more", {"c.py": "X = 2\n"}, author="Carol")
    cache = ac.AnalysisCache(tmp_path / "cache")
    assert history_stats(branchy.path, "HEAD", cache=cache) == history_stats(branchy.path, "HEAD")
    assert (cache.commits_read, cache.commits_cached) == (1, 4)
    # an older commit, and a window smaller than the history: still one git log's answer
    for commit, window in (("HEAD~2", 5000), ("HEAD", 2), ("feature", 5000)):
        cache = ac.AnalysisCache(tmp_path / "cache")
        assert (history_stats(branchy.path, commit, max_commits=window, cache=cache)
                == history_stats(branchy.path, commit, max_commits=window))
    assert history_stats(branchy.path, "HEAD", max_commits=2)["truncated"] is True


def test_a_mailmap_change_reads_every_commit_again(branchy, tmp_path):
    history_stats(branchy.path, "HEAD", cache=ac.AnalysisCache(tmp_path / "cache"))
    branchy.commit("Map Bob to his full name", {".mailmap": "Robert Bobson <bob@example.com>\n"})
    cache = ac.AnalysisCache(tmp_path / "cache")
    got = history_stats(branchy.path, "HEAD", cache=cache)
    assert got == history_stats(branchy.path, "HEAD")
    assert "Robert Bobson" in {a["name"] for a in got["top_authors"]}
    assert cache.commits_read == 5  # the packs were read under another mailmap


def test_a_corrupt_history_pack_is_read_again(branchy, tmp_path):
    history_stats(branchy.path, "HEAD", cache=ac.AnalysisCache(tmp_path / "cache"))
    tip = git(branchy.path, "rev-list", "--no-merges", "-n1", "HEAD").strip()
    pack = ac.AnalysisCache(tmp_path / "cache").history_path(tip)
    raw = pack.read_bytes()
    for damage in (raw[:40], raw.replace(b'"numstat', b'"x').replace(b',[["', b',[[1'), b"{}"):
        pack.write_bytes(damage)
        cache = ac.AnalysisCache(tmp_path / "cache")
        assert history_stats(branchy.path, "HEAD", cache=cache) == history_stats(branchy.path, "HEAD")
        assert cache.commits_read == 4 and cache.corrupt == 1
        assert pack.read_bytes() == raw  # rewritten whole
