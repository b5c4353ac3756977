"""Agreement maths against published worked examples and the `krippendorff` reference package, and a task's
agreement read from its decisions."""
from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from apps.review import agreement, services

NAN = float("nan")

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers, 12 units, missing
# values; published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def test_cohen_kappa_published_example():
    # The worked example on Wikipedia's "Cohen's kappa" page: 50 grant proposals, A and B both yes 20, A yes B
    # no 5, A no B yes 10, both no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.4)
    # second worked example there: 45/15/25/15 -> kappa = 0.1304
    a = ["y"] * 45 + ["y"] * 15 + ["n"] * 25 + ["n"] * 15
    b = ["y"] * 45 + ["n"] * 15 + ["y"] * 25 + ["n"] * 15
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.1304, abs=1e-4)


def test_cohen_kappa_edges():
    assert agreement.cohen_kappa([], []) is None
    assert agreement.cohen_kappa([1, 1, 1], [1, 1, 1]) is None  # p_e = 1: undefined
    assert agreement.cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert agreement.cohen_kappa([1, 0, None, 1], [1, 0, 1, NAN]) == pytest.approx(1.0)  # missing pairs dropped


def test_alpha_published_example():
    assert agreement.alpha(KRIPPENDORFF_C, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert agreement.alpha(KRIPPENDORFF_C, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert agreement.alpha(KRIPPENDORFF_C, "interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_matches_the_reference_on_random_data():
    rng = np.random.default_rng(7)
    for _ in range(20):
        data = rng.integers(0, 2, size=(4, 60)).astype(float)
        data[rng.random(data.shape) < 0.3] = np.nan
        data[:, rng.random(60) < 0.1] = np.nan  # some units nobody coded
        ours = agreement.alpha(data, "nominal")
        keep = np.sum(~np.isnan(data), axis=0) >= 2
        ref = krippendorff.alpha(reliability_data=data[:, keep], level_of_measurement="nominal")
        assert ours == pytest.approx(ref)


def test_alpha_undefined():
    assert agreement.alpha([[1, 1], [1, 1]]) is None  # one value in the whole data
    assert agreement.alpha([[1, NAN], [NAN, 0]]) is None  # no unit with two answers
    assert agreement.alpha([[1, 0, 1]]) is None  # one reviewer


@pytest.mark.django_db
def test_task_agreement_from_decisions(people, make_task):
    task = make_task(n=8, overlap=3, assignees=[people.rev1, people.rev2, people.rev3], rating=True)
    plan = {  # example index -> decisions of rev1, rev2, rev3 (ratings follow: accept 4/5, reject 1/2)
        0: "aaa", 1: "aar", 2: "rrr", 3: "ara", 4: "aaa", 5: "rra", 6: "aaa", 7: "rrr"}
    ratings = {"rev1": 0, "rev2": 1, "rev3": 0}
    for col, reviewer in enumerate((people.rev1, people.rev2, people.rev3)):
        while (item := services.queue_next(user=reviewer, task_id=task.pk)) is not None:
            d = plan[item.example_index][col]
            rating = (4 if d == "a" else 1) + ratings[reviewer.username] * (item.example_index % 2)
            services.item_decide(user=reviewer, task_id=task.pk, item_id=item.pk,
                                 decision="accept" if d == "a" else "reject", rating=rating)
    out = agreement.task_agreement(task)
    dec = np.array([[1.0 if plan[i][c] == "a" else 0.0 for i in range(8)] for c in range(3)])
    assert out["krippendorff_alpha"] == pytest.approx(krippendorff.alpha(reliability_data=dec,
                                                                         level_of_measurement="nominal"))
    assert out["items_compared"] == 8
    pairs = {(p["a"], p["b"]): p for p in out["pairs"]}
    assert set(pairs) == {("rev1", "rev2"), ("rev1", "rev3"), ("rev2", "rev3")}
    expected = agreement.cohen_kappa(list(dec[0]), list(dec[1]))
    assert pairs[("rev1", "rev2")]["cohen_kappa"] == pytest.approx(expected) and pairs[("rev1", "rev2")]["n"] == 8
    rat = np.array([[(4 if plan[i][c] == "a" else 1) + [0, 1, 0][c] * (i % 2) for i in range(8)] for c in range(3)],
                   dtype=float)
    assert out["rating_alpha_interval"] == pytest.approx(
        krippendorff.alpha(reliability_data=rat, level_of_measurement="interval"))
    assert out["rating_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=rat, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]))
    stats = {s["username"]: s for s in out["reviewers"]}
    # majority consensus (no adjudication yet): 0 a, 1 a, 2 r, 3 a, 4 a, 5 r, 6 a, 7 r
    assert stats["rev1"]["done"] == 8 and stats["rev1"]["accept_rate"] == pytest.approx(5 / 8)
    assert stats["rev1"]["agreement_with_consensus"] == pytest.approx(1.0)
    assert stats["rev2"]["agreement_with_consensus"] == pytest.approx(7 / 8)  # item 3
    assert stats["rev3"]["agreement_with_consensus"] == pytest.approx(6 / 8)  # items 1, 5
    assert stats["rev1"]["median_seconds"] is not None and stats["rev1"]["median_seconds"] >= 0
    # adjudicating item 3 as reject makes rev2 the one who agreed with the consensus there
    services.item_adjudicate(user=people.admin, task_id=task.pk, item_id=task.items.get(example_index=3).pk,
                             decision="reject")
    stats = {s["username"]: s for s in agreement.reviewer_stats(task)}
    assert stats["rev2"]["agreement_with_consensus"] == pytest.approx(1.0)
    assert stats["rev1"]["agreement_with_consensus"] == pytest.approx(7 / 8)


@pytest.mark.django_db
def test_task_agreement_with_no_decisions(people, make_task):
    task = make_task(n=2, overlap=2)
    out = agreement.task_agreement(task)
    assert out["krippendorff_alpha"] is None and out["items_compared"] == 0
    assert [p["n"] for p in out["pairs"]] == [0] and all(math.isfinite(s["done"]) for s in out["reviewers"])
