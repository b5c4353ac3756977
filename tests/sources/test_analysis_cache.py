"""The analysis job keeps each file's figures (and the commits' history) in the engine's cache under
ARTIFACT_ROOT: a re-analysis after a one-file commit runs lizard on that file only and reads only the new commit,
and stores the same results as an uncached analysis."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from apps.sources import services
from apps.sources.models import JobStatus
from apps.sources.services.analyses import analysis_cache_dir
from tests.sources.conftest import TEXT
from workers.engine import repos as engine
from workers.engine.repos import symbols

pytestmark = pytest.mark.django_db(transaction=True)


def _plain(a: dict) -> dict:
    return {k: v for k, v in a.items() if k not in ("duration_s", "cache", "name", "role")}


def test_a_reanalysis_after_a_one_file_commit_analyses_only_that_file(repo, admin_user, monkeypatch):
    calls: Counter = Counter()
    real = symbols.lizard_functions

    def spy(path, text):
        calls[path] += 1
        return real(path, text)

    monkeypatch.setattr(symbols, "lizard_functions", spy)
    src = services.source_create(user=admin_user, kind="path", location=str(repo.path))
    first = services.analysis_start(user=admin_user, source_id=src.pk, inline=True)
    assert first.status == JobStatus.SUCCEEDED
    assert set(calls) == {"calc.py", "textutil.py", "test_calc.py"}
    one = first.results["repos"][0]
    assert one["cache"]["written"] == one["files_total"] == 5
    assert analysis_cache_dir() == Path(settings.ARTIFACT_ROOT) / "cache" / "repo-analysis"
    assert len(list(analysis_cache_dir().rglob("*-????????.json"))) == 5  # and one history pack
    assert len(list(analysis_cache_dir().rglob("*-history.json"))) == 1

    head = repo.commit("Count consonants too", {"textutil.py": TEXT + "\n\ndef consonants(text):\n"
                                                "    return sum(1 for ch in text if ch.isalpha() and ch not in 'aeiou')\n"})
    calls.clear()
    second = services.analysis_start(user=admin_user, source_id=src.pk, inline=True)
    assert second.status == JobStatus.SUCCEEDED
    assert dict(calls) == {"textutil.py": 1}
    two = second.results["repos"][0]
    assert two["commit"] == head and two["cache"] == {"hits": 4, "misses": 1, "corrupt": 0, "written": 1,
                                                      "commits_cached": 3, "commits_read": 1}
    uncached = engine.analyze(repo.path, commit=head)
    assert _plain(two) == _plain(uncached)
    assert two["complexity"]["functions"] == one["complexity"]["functions"] + 1
    assert _plain(second.results["totals"]) == _plain(uncached)
