"""Request logs -> per-minute roll-ups: the numbers against values worked out by hand, both engines (PostgreSQL's
GROUPING SETS + percentile_cont, and the Python path), idempotent re-runs, late rows, minute edges, retention,
and the series selector built on the roll-ups."""
from __future__ import annotations

import datetime as dt

import pytest

from apps.monitoring import selectors
from apps.monitoring.models import MinuteStat, RollupState
from apps.monitoring.services import rollup_run, traffic_stats
from apps.monitoring.services.aggregation import percentile
from tests.monitoring.conftest import log_rows

pytestmark = pytest.mark.django_db
M = dt.timedelta(minutes=1)
S = dt.timedelta(seconds=1)
FIGURES = ("requests", "errors", "client_errors", "fallbacks", "ok", "p50_ms", "p95_ms", "ttft_p50_ms",
           "prompt_tokens", "completion_tokens")


def cell(minute, alias, target) -> dict:
    row = MinuteStat.objects.get(minute=minute, alias=alias, target=target)
    return {f: getattr(row, f) for f in FIGURES}


def all_rows() -> list[tuple]:
    return sorted(MinuteStat.objects.values_list("minute", "alias", "target", *FIGURES))


def minute_of_traffic(t0):
    """One minute of traffic starting at t0; its figures are worked out in test_minute_rows_match_hand_computed."""
    rows = [{"at": t0 + i * S, "latency_ms": v} for i, v in enumerate([100, 200, 300, 400, 1000])]
    rows[0].update(stream=True, ttft_ms=10, fallback=True, prompt_tokens=10, completion_tokens=20)
    rows[1].update(stream=True, ttft_ms=20, prompt_tokens=5, completion_tokens=40)
    rows[2].update(stream=True, ttft_ms=30)
    rows += [
        {"at": t0 + 10 * S, "status_code": 502, "latency_ms": 50, "fallback": True},  # a server error
        {"at": t0 + 11 * S, "status_code": 404, "latency_ms": 5},  # a client error
        {"at": t0 + 20 * S, "served_by": "version:2", "latency_ms": 50},
        {"at": t0 + 60 * S - dt.timedelta(microseconds=1), "served_by": "version:2", "latency_ms": 150},  # last µs
        {"at": t0 + 30 * S, "alias": "", "served_by": "provider:x/m", "latency_ms": 70, "completion_tokens": 60},
    ]
    log_rows(*rows)


V1 = {"requests": 7, "errors": 1, "client_errors": 1, "fallbacks": 2, "ok": 5,
      # ok latencies 100 200 300 400 1000: p50 = 300; p95 at rank 4 × 0.95 = 3.8 -> 400 + 0.8 × 600 = 880
      "p50_ms": 300.0, "p95_ms": 880.0, "ttft_p50_ms": 20.0, "prompt_tokens": 15, "completion_tokens": 60}


@pytest.mark.parametrize("engine", ["postgres", "python"])
def test_minute_rows_match_hand_computed_values(now, engine):
    t0 = now.replace(second=0) - 30 * M  # older than the trailing window: found through the watermark
    minute_of_traffic(t0)
    result = rollup_run(now=now, engine=engine)
    # 3 (alias, target) cells + 2 aliases + 3 targets + the whole hub
    assert result["rows"] == 9
    assert result["minutes"] == 1 + 11  # t0, and the trailing 11:50 .. 12:00
    assert cell(t0, "prod", "version:1") == V1
    assert cell(t0, "*", "version:1") == V1  # only prod uses version 1
    assert cell(t0, "prod", "version:2") == {
        "requests": 2, "errors": 0, "client_errors": 0, "fallbacks": 0, "ok": 2,
        "p50_ms": 100.0, "p95_ms": 145.0, "ttft_p50_ms": None, "prompt_tokens": 0, "completion_tokens": 0}
    # the alias over both versions: ok latencies 50 100 150 200 300 400 1000 -> p50 200, p95 rank 5.7 -> 820
    assert cell(t0, "prod", "*") == {
        "requests": 9, "errors": 1, "client_errors": 1, "fallbacks": 2, "ok": 7,
        "p50_ms": 200.0, "p95_ms": pytest.approx(820.0), "ttft_p50_ms": 20.0, "prompt_tokens": 15,
        "completion_tokens": 60}
    direct = {"requests": 1, "errors": 0, "client_errors": 0, "fallbacks": 0, "ok": 1, "p50_ms": 70.0,
              "p95_ms": 70.0, "ttft_p50_ms": None, "prompt_tokens": 0, "completion_tokens": 60}
    assert cell(t0, "", "provider:x/m") == direct == cell(t0, "", "*") == cell(t0, "*", "provider:x/m")
    # everything: ok latencies 50 70 100 150 200 300 400 1000 -> p50 rank 3.5 -> 175, p95 rank 6.65 -> 790
    assert cell(t0, "*", "*") == {
        "requests": 10, "errors": 1, "client_errors": 1, "fallbacks": 2, "ok": 8,
        "p50_ms": 175.0, "p95_ms": pytest.approx(790.0), "ttft_p50_ms": 20.0, "prompt_tokens": 15,
        "completion_tokens": 120}
    from apps.proxy.models import RequestLog

    state = RollupState.objects.get(name="requests")
    assert state.last_id == RequestLog.objects.order_by("-pk").first().pk
    assert state.last_rows == 9 and state.last_run_at == now


def test_the_two_engines_agree_on_random_traffic(now):
    import random

    rnd = random.Random(7)
    t0 = now.replace(second=0) - 20 * M
    rows = []
    for i in range(600):
        status = rnd.choice([200] * 17 + [429, 500, 0])
        rows.append({"at": t0 + dt.timedelta(seconds=rnd.uniform(0, 300)), "status_code": status,
                     "latency_ms": None if status == 0 else rnd.lognormvariate(5, 1),
                     "ttft_ms": rnd.choice([None, rnd.uniform(5, 80)]), "fallback": rnd.random() < 0.1,
                     "alias": rnd.choice(["prod", "staging", ""]),
                     "served_by": rnd.choice(["version:1", "version:2", "provider:p/m", ""]),
                     "completion_tokens": rnd.choice([None, rnd.randint(1, 500)])})
    log_rows(*rows)
    key = lambda c: (c["minute"] or t0, c["alias"], c["target"])  # noqa: E731
    for args, cells in [({}, 40), ({"per_minute": False, "sets": ("alias",)}, 3),
                        ({"per_minute": False, "sets": ("target", "all"), "alias": "prod"}, 5)]:
        a = traffic_stats(start=t0, end=t0 + 5 * M, engine="postgres", **args)
        b = traffic_stats(start=t0, end=t0 + 5 * M, engine="python", **args)
        assert len(a) == len(b) >= cells
        for x, y in zip(sorted(a, key=key), sorted(b, key=key)):
            assert key(x) == key(y)
            for f in FIGURES:
                assert x[f] == pytest.approx(y[f]), (key(x), f)


def test_a_rerun_changes_nothing(now):
    t0 = now.replace(second=0) - 30 * M
    minute_of_traffic(t0)
    minute_of_traffic(now.replace(second=0) - 2 * M)  # inside the trailing window: recomputed on every run
    rollup_run(now=now)
    first = all_rows()
    again = rollup_run(now=now)
    assert all_rows() == first
    assert again["minutes"] == 11  # nothing new: only the trailing window is looked at again
    assert MinuteStat.objects.filter(minute=t0).count() == 9


def test_a_late_row_updates_its_old_minute(now):
    t0 = now.replace(second=0) - 45 * M
    minute_of_traffic(t0)
    rollup_run(now=now)
    assert cell(t0, "prod", "version:1")["requests"] == 7
    # logged after the roll-up, about a request 45 minutes ago (a backlog of the log worker)
    log_rows({"at": t0 + 5 * S, "status_code": 503, "latency_ms": 20000})
    later = now + 2 * M
    result = rollup_run(now=later)
    assert result["minutes"] == 1 + 11
    v1 = cell(t0, "prod", "version:1")
    assert (v1["requests"], v1["errors"], v1["ok"], v1["p95_ms"]) == (8, 2, 5, 880.0)  # a 503 is no latency
    assert cell(t0, "*", "*")["requests"] == 11


def test_rows_still_committing_are_caught_by_the_trailing_window(now):
    """A row whose id is below the watermark (its transaction committed after a newer one's) but whose request
    is recent is counted at the next run."""
    recent = now.replace(second=0) - 3 * M
    log_rows({"at": recent})
    rollup_run(now=now)
    state = RollupState.objects.get(name="requests")
    (row,) = log_rows({"at": recent + S})
    from apps.proxy.models import RequestLog

    RequestLog.objects.filter(pk=row.pk).update(id=state.last_id - 1)  # an id the watermark has passed
    rollup_run(now=now + M)
    assert cell(recent, "prod", "version:1")["requests"] == 2


def test_a_backlog_is_worked_off_over_several_runs_without_loss(now):
    """A run that runs out of time leaves the older minutes pending; the next runs finish them, and the result is
    the one a single run gives."""
    for hours in (2, 5, 9):
        minute_of_traffic(now.replace(second=0) - hours * 60 * M)
    log_rows({"at": now - 2 * M})
    first = rollup_run(now=now, budget_s=0)
    assert (first["spans"], first["done"], first["pending"]) == (4, 2, 2)  # the trailing window and 2 h ago
    assert MinuteStat.objects.filter(minute=now.replace(second=0) - 9 * 60 * M).count() == 0
    assert rollup_run(now=now, budget_s=0)["pending"] == 1
    assert rollup_run(now=now, budget_s=0)["pending"] == 0
    piecewise = all_rows()
    MinuteStat.objects.all().delete()
    RollupState.objects.update(last_id=0, pending=[])
    assert rollup_run(now=now)["pending"] == 0
    assert all_rows() == piecewise and len(piecewise) == 3 * 9 + 4


def test_minute_edges_and_the_current_partial_minute(now):
    m = now.replace(second=0)
    log_rows({"at": m - S}, {"at": m}, {"at": m + 29 * S})
    rollup_run(now=now)
    assert cell(m - M, "*", "*")["requests"] == 1
    assert cell(m, "*", "*")["requests"] == 2  # the partial minute so far
    log_rows({"at": m + 45 * S})
    rollup_run(now=now + 20 * S)
    assert cell(m, "*", "*")["requests"] == 3


def test_minutes_past_retention_are_not_rolled_up(now):
    log_rows({"at": now - dt.timedelta(days=31)}, {"at": now - dt.timedelta(days=29)})
    rollup_run(now=now)
    assert MinuteStat.objects.filter(alias="*", target="*").count() == 1


def test_series_of_an_alias_breaks_it_down_by_version(now):
    t0 = now.replace(second=0) - 30 * M
    minute_of_traffic(t0)
    rollup_run(now=now)
    data = selectors.series(alias="prod", minutes=60, now=now)
    assert data["bucket_s"] == 60 and data["breakdown"] == "target"
    assert [ln["target"] for ln in data["series"]] == ["*", "version:1", "version:2"]  # busiest first
    total = data["series"][0]
    assert len(total["points"]) == 60  # every minute, empty ones too
    by_t = {p["t"]: p for p in total["points"]}
    p = by_t[t0.isoformat()]
    assert (p["requests"], p["errors"], p["client_errors"], p["p50_ms"], p["p95_ms"]) == (9, 1, 1, 200.0, 820.0)
    assert p["error_rate"] == round(1 / 9, 4) and p["tokens_per_s"] == 1.0 and p["requests_per_min"] == 9
    empty = by_t[(t0 + M).isoformat()]
    assert (empty["requests"], empty["error_rate"], empty["p95_ms"]) == (0, None, None)
    assert data["series"][1]["label"].endswith("(#1)")  # version 1 is gone from the registry: named by id
    # the whole hub, broken down by alias
    hub = selectors.series(minutes=60, now=now)
    assert [(ln["alias"], ln["target"]) for ln in hub["series"]] == [("*", "*"), ("prod", "*"), ("", "*")]
    # one version of one alias: a single line
    one = selectors.series(alias="prod", target="version:2", minutes=60, now=now)
    assert len(one["series"]) == 1 and sum(p["requests"] for p in one["series"][0]["points"]) == 2


def test_wider_buckets_add_counts_and_weigh_percentiles_by_requests(now):
    t0 = now.replace(second=0) - 120 * M
    t0 -= (t0.minute % 5) * M  # the start of a 5-minute bucket
    log_rows(*[{"at": t0, "latency_ms": 100} for _ in range(3)], {"at": t0 + M, "latency_ms": 500})
    rollup_run(now=now)
    data = selectors.series(minutes=1440, now=now)
    assert data["bucket_s"] == 300 and len(data["series"][0]["points"]) <= 290
    p = {p["t"]: p for p in data["series"][0]["points"]}[t0.isoformat()]
    assert p["requests"] == 4 and p["requests_per_min"] == 0.8
    assert p["p50_ms"] == (3 * 100 + 1 * 500) / 4  # the minutes' medians, weighted by their requests


def test_percentile_is_postgres_percentile_cont():
    assert percentile([], 0.5) is None
    assert percentile([5], 0.95) == 5
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 20, 30, 40, 50], 0.95) == pytest.approx(48.0)
