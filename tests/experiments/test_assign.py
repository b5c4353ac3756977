"""Sticky assignment (apps/experiments/assign.py): the same key always gets the same arm, 10k keys split as the
weights say (chi-square), a weight change moves as few keys as possible, and the sticky key is read from the
API key, the request's user or the session headers of Claude Code and Codex."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from apps.experiments import stats
from apps.experiments.assign import Arm, Split, choose, sticky_unit, unit_hash

KEYS = [f"key-{i}" for i in range(10_000)]


def _assign(arms, experiment_id=7):
    return {k: choose(experiment_id, k, arms) for k in KEYS}


def test_same_key_same_arm():
    arms = [("A", 50), ("B", 30), ("C", 20)]
    first = _assign(arms)
    for k in KEYS[:500]:
        assert {choose(7, k, arms) for _ in range(5)} == {first[k]}
    # the order the arms are listed in does not matter either
    assert all(choose(7, k, list(reversed(arms))) == first[k] for k in KEYS[:500])


@pytest.mark.parametrize("weights", [(50, 50), (50, 30, 20), (90, 10), (1, 1, 1, 1)])
def test_ten_thousand_keys_split_as_the_weights_say(weights):
    arms = [(chr(65 + i), w) for i, w in enumerate(weights)]
    counts = Counter(_assign(arms).values())
    observed = [counts[name] for name, _ in arms]
    total = sum(weights)
    expected = [len(KEYS) * w / total for w in weights]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected))
    p = stats.chi2_sf(chi2, len(weights) - 1)
    assert p > 0.001, (observed, expected, chi2)
    for o, e in zip(observed, expected):
        assert abs(o - e) / len(KEYS) < 0.02, (observed, expected)


def test_a_skewed_hash_would_fail_the_chi_square():
    """The check above can fail: a 52/48 split of 10k keys against 50/50 weights is rejected."""
    chi2 = (5200 - 5000) ** 2 / 5000 * 2
    assert stats.chi2_sf(chi2, 1) < 0.001


def test_weight_change_moves_the_fewest_keys():
    before = _assign([("A", 50), ("B", 50)])
    after = _assign([("A", 60), ("B", 40)])
    moved = [k for k in KEYS if before[k] != after[k]]
    # the least any assignment can move is 10 % of the keys, all from B to A
    assert all(before[k] == "B" and after[k] == "A" for k in moved)
    assert 0.08 <= len(moved) / len(KEYS) <= 0.12, len(moved)

    with_c = _assign([("A", 50), ("B", 50), ("C", 25)])  # a new arm takes 20 %, only from the others
    moved = [k for k in KEYS if before[k] != with_c[k]]
    assert all(with_c[k] == "C" for k in moved)
    assert 0.18 <= len(moved) / len(KEYS) <= 0.22

    zero = _assign([("A", 50), ("B", 0)])  # weight 0: the arm gets nothing, its keys go to A only
    assert set(zero.values()) == {"A"}
    assert choose(1, "k", [("A", 0), ("B", 0)]) is None


def test_experiments_hash_independently():
    a = _assign([("A", 1), ("B", 1)], experiment_id=1)
    b = _assign([("A", 1), ("B", 1)], experiment_id=2)
    same = sum(a[k] == b[k] for k in KEYS) / len(KEYS)
    assert 0.46 < same < 0.54


def test_sticky_unit_sources():
    kw = dict(key_id=12, user_id=3, request_id="req-1")
    assert sticky_unit("api_key", body={}, headers={}, **kw) == ("key:12", "api_key")
    assert sticky_unit("api_key", body={}, headers={}, key_id=None, user_id=3, request_id="r") == \
        ("user:3", "dashboard user")
    assert sticky_unit("request", body={}, headers={}, **kw) == ("req-1", "request")
    # Claude Code: its session header; Codex: session-id (or session_id); anything else: x-session-id
    assert sticky_unit("session", body={}, headers={"x-claude-code-session-id": "s1"}, **kw) == \
        ("session:s1", "x-claude-code-session-id")
    assert sticky_unit("session", body={}, headers={"session-id": "c1"}, **kw)[0] == "session:c1"
    assert sticky_unit("session", body={}, headers={"x-session-id": "g1"}, **kw)[0] == "session:g1"
    assert sticky_unit("session", body={"metadata": {"user_id": "user_x_session_y"}}, headers={}, **kw) == \
        ("user:user_x_session_y", "metadata.user_id")
    assert sticky_unit("session", body={}, headers={}, **kw) == ("key:12", "api_key (no session header)")
    assert sticky_unit("user", body={"user": "ann"}, headers={}, **kw) == ("user:ann", "user")
    assert sticky_unit("user", body={"metadata": {"user_id": "bob"}}, headers={}, **kw)[0] == "user:bob"
    assert sticky_unit("user", body={"user": 5}, headers={}, **kw)[1] == "api_key (no user in the request)"
    assert len(unit_hash("session", "session:s1")) == 16 and unit_hash("session", "a") != unit_hash("user", "a")


def test_picking_an_arm_costs_microseconds():
    split = Split(3, "session", (Arm("stable", 90, None), Arm("canary", 10, None)))
    n = 20_000
    t0 = time.perf_counter()
    for i in range(n):
        unit, _ = sticky_unit("session", key_id=1, user_id=1, body={}, headers={"session-id": f"s{i}"},
                              request_id="r")
        split.pick(unit)
        unit_hash("session", unit)
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    print(f"sticky_unit + pick + unit_hash: {per_call_us:.2f} µs per request")
    assert per_call_us < 100  # ~5 µs here; the proxy's own overhead is ~100 µs
