"""Benchmark: monitoring's roll-up of proxy request logs into per-minute rows (apps.monitoring.services.rollup_run).

On a fresh embedded PostgreSQL (a temp data dir; nothing of var/ is touched), after `migrate`:
- setup (not timed): --rows request logs (bulk_create) spread over the last --hours hours, on 3 aliases x 3 served
  targets plus direct requests, ~3 % 5xx, ~2 % 4xx, lognormal latencies, streamed ones with a TTFT, tokens;
- **first run**: everything is new (the watermark is 0): every minute with traffic is computed;
- **steady run**: nothing new: only the trailing LATE_S window is recomputed (what the actor does each minute
  on a quiet hub);
- **one more minute**: a minute of traffic at the same rate (rows / hours / 60) arrives, then a run;
- **late rows**: 100 rows for requests 3-20 hours old arrive, then a run (each touches its own minute);
- reads: `selectors.series` (what /monitoring/ and /api/monitoring/series call) over 1 h, 24 h and 7 d;
- baseline in the same run: the whole roll-up again through the Python engine (the SQLite path): the roll-up
  rows are deleted and the watermark reset, and its rows must equal PostgreSQL's.
Times are wall-clock on whatever machine runs it; the load average is printed with them.

    .venv/bin/python bench/bench_monitoring.py [--rows 100000] [--hours 24]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_rows(n: int, start: dt.datetime, span_s: float, rnd: random.Random, prefix: str):
    from apps.proxy.models import RequestLog

    aliases = ["prod", "staging", "canary", ""]
    targets = ["version:1", "version:2", "provider:openrouter/gpt-4o-mini"]
    out = []
    for i in range(n):
        r = rnd.random()
        status = 500 if r < 0.03 else 429 if r < 0.05 else 200
        stream = rnd.random() < 0.6
        out.append(RequestLog(
            request_id=f"{prefix}-{i}", endpoint="chat.completions", model_requested="m",
            alias=rnd.choice(aliases), served_by=rnd.choice(targets), fallback=rnd.random() < 0.02,
            status_code=status, stream=stream, latency_ms=rnd.lognormvariate(6, 0.7),
            ttft_ms=rnd.lognormvariate(4.5, 0.5) if stream else None, prompt_tokens=rnd.randint(20, 2000),
            completion_tokens=rnd.randint(1, 800), created_at=start + dt.timedelta(seconds=rnd.uniform(0, span_s))))
    RequestLog.objects.bulk_create(out, batch_size=5000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the first run (top 15 by cumulative time)")
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="hub-bench-monitoring-"))
    for k in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(k, None)
    os.environ.update(HUB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="training_hub.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from apps.monitoring.models import MinuteStat, RollupState
    from apps.monitoring.services import rollup_run

    rnd = random.Random(11)
    rows, reads = [], []
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        now = timezone.now()
        span = args.hours * 3600
        make_rows(args.rows, now - dt.timedelta(seconds=span), span, rnd, "bulk")
        print(f"setup: migrate + {args.rows} request logs over {args.hours:g} h in {time.perf_counter() - t0:.1f} s")

        def timed(label, **kw):
            r = rollup_run(now=timezone.now(), **kw)
            rows.append((label, r["duration_ms"], r["minutes"], r["spans"], r["rows"]))

        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(timed, "first run, PostgreSQL (everything new), profiled")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
        else:
            timed("first run, PostgreSQL (everything new)")
        timed("steady run (nothing new)")
        per_minute = max(int(args.rows / args.hours / 60), 1)
        make_rows(per_minute, timezone.now() - dt.timedelta(seconds=55), 50, rnd, "minute")
        timed(f"one more minute ({per_minute} rows)")
        for i in range(100):
            make_rows(1, timezone.now() - dt.timedelta(hours=rnd.uniform(3, 20)), 1, rnd, f"late{i}")
        timed("100 late rows (3-20 h old)")
        from apps.monitoring import selectors

        for label, kw in [("series: whole hub, 1 h", {"minutes": 60}), ("series: alias prod, 24 h", {"alias": "prod",
                          "minutes": 1440}), ("series: alias prod, 7 d", {"alias": "prod", "minutes": 10080})]:
            t1 = time.perf_counter()
            out = selectors.series(**kw)
            reads.append((label, (time.perf_counter() - t1) * 1000, len(out["series"]), len(out["series"][0]["points"])))
        before = sorted(MinuteStat.objects.values_list("minute", "alias", "target", "requests", "p95_ms"))
        MinuteStat.objects.all().delete()
        RollupState.objects.update(last_id=0, pending=[])
        timed("baseline: first run, Python engine", engine="python")
        after = sorted(MinuteStat.objects.values_list("minute", "alias", "target", "requests", "p95_ms"))
        assert [r[:4] for r in after] == [r[:4] for r in before], "the Python engine's cells differ from PostgreSQL's"
        assert all(abs((a[4] or 0) - (b[4] or 0)) < 0.01 for a, b in zip(after, before)), "p95 differs"
    finally:
        connections.close_all()
        try:
            from training_hub import embedded_postgres as ep

            ep.release(data_dir / "postgres")
        except Exception as exc:  # noqa: BLE001 - report, then clean up
            print(f"(stopping the embedded PostgreSQL: {exc})")
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    la = os.getloadavg()
    print(f"\nload average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f} · {os.cpu_count()} CPUs")
    print(f"{'run':45} {'ms':>9} {'minutes':>8} {'spans':>6} {'rows':>7}")
    for label, ms, minutes, spans, n in rows:
        print(f"{label:45} {ms:9.1f} {minutes:8} {spans:6} {n:7}")
    print(f"\n{'read (selectors.series, what the page and the API call)':58} {'ms':>9} {'lines':>6} {'points':>7}")
    for label, ms, lines, points in reads:
        print(f"{label:58} {ms:9.1f} {lines:6} {points:7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
