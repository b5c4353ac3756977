"""A regeneration after a one-file commit carries the kept examples over the way the datasets' derived versions
do: only the new examples are tokenized and MinHash-signed, the kept rows are copied in the database, and the
new version's report, statistics and per-example figures (signatures included) are those of a validation from
scratch of the same examples."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from apps.datasets.models import DatasetVersion
from apps.datasets.validation.pipeline import SET_CODES, issue_codes
from tests.datasets.test_derive_reuse import Spy, _assert_as_from_scratch
from tests.sources.conftest import TEXT

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> dict:
    out = io.StringIO()
    call_command("generate_scenarios", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def test_a_regeneration_computes_only_its_new_examples_and_matches_a_validation_from_scratch(repo, admin_user,
                                                                                             monkeypatch):
    first = run(str(repo.path), "--max", "60", "--seed", "7")
    v1 = DatasetVersion.objects.get(pk=first["dataset_version_id"])
    assert v1.status == "ready" and v1.examples.filter(minhash__isnull=True).count() == 0
    repo.commit("Shout louder", {"textutil.py": TEXT.replace('"!" * times', '"!" * (times + 1)')})
    spy = Spy(monkeypatch)
    second = run(str(repo.path), "--max", "60", "--seed", "7")
    v2 = DatasetVersion.objects.get(pk=second["dataset_version_id"])
    assert v2.status == "ready" and v2.parent_id == v1.pk
    inc = second["incremental"]
    new = v2.example_count - inc["kept"]
    assert inc["kept"] > 0 and new > 0
    # the kept examples: nothing computed again, their rows copied; content checks only where the base row's
    # stored codes came from its content
    ids = {e.meta["example_id"] for e in v2.examples.all()}
    rechecked = sum(1 for e in v1.examples.all() if e.meta["example_id"] in ids and issue_codes(e.issues) - SET_CODES)
    assert (spy.tokenized, spy.signed) == (new, new)
    assert spy.checked == new + rechecked
    assert spy.copied == inc["kept"]
    assert v2.examples.filter(minhash__isnull=True).count() == 0
    monkeypatch.undo()
    _assert_as_from_scratch(v2)
    assert second["tokensWithChatTemplate"] == v2.stats["tokens"]["total"]
