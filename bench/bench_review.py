"""Benchmark: team review (apps/review) on a 100k-example dataset version, against issue 9's targets.

On a fresh embedded PostgreSQL (a temp data dir; nothing of var/ is touched):
- setup (not timed against a target): a ready version of --examples chat examples (system / user / assistant,
  categories, splits, some issue codes) written with one INSERT … SELECT generate_series, with what an import
  stores beside each example (its real content hash, synthetic token counts per role) and a report, so that
  finishing can reuse them as it does for an imported version;
- **create task** (`task_create`, overlap 2, 8 assignees): target ≤ 10 s;
- **next p95** with 8 reviewers asking at once: 8 processes (each its own connection, as 8 web workers would
  be), each looping `queue_next` then `item_decide` --rounds times; latency of `queue_next` only (its
  `presence` event handed to the process's sender loop included; the channel layer is in-memory here),
  target p95 ≤ 20 ms; a single reviewer alone is measured first as the baseline; the CPU time of the
  reviewer's thread per `next` and of its whole process (every thread: the event sender too) per next +
  decide (both independent of the machine's load), the statements one `next` runs and the server's time;
- **bulk action over every item** (`bulk_apply`, tag then accept with a text filter that matches all):
  target ≤ 10 s each;
- **finish**: `task_finish` (the web request: the task closed, an `importing` version and its job
  "review.result" queued, answered 202), then the worker's build (`workers.review.review_result`, run here in
  this process: a new version of every accepted example, validated again with the base model's tokenizer when
  it is in HUB_MODEL_CACHE, written in batches, with job progress): target ≤ 30 s;
- memory: the resident set is sampled every 20 ms during each phase; its growth over the phase's start is
  printed (flat = it does not grow with the number of examples; compare --examples 20000).
Times are wall-clock on whatever machine runs it; the load average is printed with them.

    .venv/bin/python bench/bench_review.py [--examples 100000] [--rounds 150] [--reviewers 8]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"create": 10.0, "next_p95_ms": 20.0, "bulk": 10.0, "finish": 30.0}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Peak:
    """Samples this process's RSS every 20 ms while the block runs."""

    def __enter__(self):
        self.start = rss_mb()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        self.t0 = time.perf_counter()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())
        self.growth = self.peak - self.start


WORDS = ["river", "engine", "castle", "violin", "glacier", "compiler", "lantern", "orchard", "harbor", "meteor",
         "bicycle", "volcano", "library", "telescope", "garden", "falcon", "quartz", "meadow", "canyon", "beacon",
         "archive", "cobalt", "ember", "fjord", "gazette", "horizon", "isotope", "jasmine", "kernel", "lagoon"]


def make_version(owner, n: int):
    from django.db import connection

    from apps.datasets.models import Dataset, DatasetVersion, Example

    from apps.datasets.validation.tokens import COUNTING, counter_for_base_model

    counter = counter_for_base_model(None)
    ds = Dataset.objects.create(name=f"bench review {n}", owner=owner)
    # as an import leaves it: a report (with counts) and the tokenizer its per-example counts were made with
    v = DatasetVersion.objects.create(
        dataset=ds, number=1, status="ready", format="chat-jsonl", example_count=n,
        validation={"errors": [], "warnings": [], "counts": {}, "error_total": 0, "warning_total": 0, "truncated": 0},
        stats={"examples": n, **({"tokens": {"base_model": counter.name, "context_length": counter.context_length,
                                             "counting": COUNTING}} if counter else {})})
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    w = lambda k: f"({words})[1 + ((i * {k}) %% {len(WORDS)})]"  # noqa: E731
    user = (f"'Question ' || i || ': how do ' || {w(7)} || ' and ' || {w(11)} || ' relate in ' || {w(13)} || "
            f"' systems, case ' || ((i::bigint * 7919) %% 100003) || '?'")
    assistant = (f"'In ' || {w(13)} || ' systems the ' || {w(7)} || ' depends on the ' || {w(11)} || ' because the ' "
                 f"|| {w(17)} || ' must stay near the ' || {w(19)} || '; case ' || i || ' shows it in ' || "
                 f"((i::bigint * 104729) %% 99991) || ' steps with ' || {w(23)} || ' and ' || {w(29)} || '.'")
    table = Example._meta.db_table
    # the content hash is apps.datasets.validation.pipeline.content_hash (sha256 of the compact, key-sorted
    # JSON of [messages, tools]), spelled in SQL for these plain-ASCII texts; checked on one row below
    canon = ("""'[[{"content":"You answer briefly.","role":"system"},{"content":' || to_json(u)::text || """
             """',"role":"user"},{"content":' || to_json(a)::text || ',"role":"assistant"}],null]'""")
    with connection.cursor() as cur:
        cur.execute(f"""
            INSERT INTO {table} (version_id, index, messages, tools, source_file, source_line, category, tags,
                                 content_hash, split, token_count, role_tokens, issues, meta)
            SELECT %s, i,
                   jsonb_build_array(jsonb_build_object('role', 'system', 'content', 'You answer briefly.'),
                                     jsonb_build_object('role', 'user', 'content', u),
                                     jsonb_build_object('role', 'assistant', 'content', a)),
                   NULL, 'part-' || (i %% 10) || '.jsonl', i / 10 + 1, 'cat' || (i %% 5), '[]'::jsonb,
                   h, CASE WHEN ('x' || substr(h, 1, 8))::bit(32)::bigint < 0.1 * 4294967296 THEN 'validation'
                           ELSE 'train' END,
                   57 + i %% 20 + i %% 40,
                   jsonb_build_object('system', 5, 'user', 14 + i %% 20, 'assistant', 26 + i %% 40),
                   CASE WHEN i %% 50 = 0 THEN '|short_answer|' ELSE '' END, '{{"kind": "chat"}}'::jsonb
            FROM (SELECT i, u, a, encode(sha256(convert_to({canon}, 'UTF8')), 'hex') AS h
                  FROM (SELECT i, {user} AS u, {assistant} AS a FROM generate_series(0, %s) AS i) AS t) AS s
            """, [v.pk, n - 1])
    from apps.datasets.validation.pipeline import content_hash, split_of

    first = Example.objects.filter(version=v).order_by("index").first()
    assert first.content_hash == content_hash({"messages": first.messages, "tools": None}), "bench hash differs"
    assert first.split == split_of(first.content_hash, 0.1)
    return v


def reviewer_loop(task_id: int, user_id: int, rounds: int, barrier, out):
    """One reviewer in its own process (fork): its own database connection."""
    from django.db import connections

    connections.close_all()  # never share the parent's socket
    from apps.accounts.models import User
    from apps.review import services

    user = User.objects.get(pk=user_id)
    lat, cpu = [], []
    barrier.wait()
    p0 = time.process_time()
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.thread_time()
        item = services.queue_next(user=user, task_id=task_id)
        lat.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if item is None:
            break
        services.item_decide(user=user, task_id=task_id, item_id=item.pk, decision="accept")
    time.sleep(0.2)  # events still being sent by this process's threads
    out.put((lat, cpu, (time.process_time() - p0) / max(1, len(lat))))
    connections.close_all()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--reviewers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=150, help="next + decide per reviewer in the concurrent phase")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the single reviewer's next calls")
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="hub-bench-review-"))
    for k in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(k, None)
    os.environ.update(HUB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="training_hub.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from django.core.management import call_command
    from django.db import connections

    from apps.accounts.models import User
    from apps.review import services

    rows = []
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        owner = User.objects.create_user("owner", password="pw-123456", role="member")
        reviewers = [User.objects.create_user(f"rev{i}", password="pw-123456", role="reviewer")
                     for i in range(args.reviewers)]
        version = make_version(owner, args.examples)
        print(f"setup: migrate + {args.examples} examples in {time.perf_counter() - t0:.1f} s")

        with Peak() as p:
            task = services.task_create(user=owner, version_id=version.pk, name="bench", overlap=2,
                                        assignees=[u.username for u in reviewers], labels=["tone"], rating=True)
        assert task.total_items == args.examples
        rows.append(("create task", p.seconds, TARGETS["create"], p.growth))

        # a single reviewer alone (baseline), then all of them at once
        solo = []
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for _ in range(20):
                item = services.queue_next(user=reviewers[0], task_id=task.pk)
                services.item_decide(user=reviewers[0], task_id=task.pk, item_id=item.pk, decision="accept")
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        for _ in range(50):
            t = time.perf_counter()
            item = services.queue_next(user=reviewers[0], task_id=task.pk)
            solo.append(time.perf_counter() - t)
            services.item_decide(user=reviewers[0], task_id=task.pk, item_id=item.pk, decision="accept")
        # load-independent evidence: statements per `next`, and the server's own time for the locking search
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        item = services.queue_next(user=reviewers[1], task_id=task.pk)
        services.item_decide(user=reviewers[1], task_id=task.pk, item_id=item.pk, decision="accept")
        with CaptureQueriesContext(connection) as ctxq:
            item = services.queue_next(user=reviewers[1], task_id=task.pk)
        services.item_decide(user=reviewers[1], task_id=task.pk, item_id=item.pk, decision="accept")
        from django.db import transaction
        from django.utils import timezone

        from apps.review.services.queue_sql import NEXT_SQL
        with transaction.atomic(), connection.cursor() as cur:  # run once for its plan, then rolled back
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + NEXT_SQL,
                        {"task": task.pk, "user": reviewers[1].pk, "now": timezone.now()})
            plan = [r[0] for r in cur.fetchall()]
            transaction.set_rollback(True)
        exec_ms = next((ln.split(":")[1].strip() for ln in plan if ln.startswith("Execution Time")), "?")
        print(f"next: {len(ctxq.captured_queries)} statement(s) (the presence event reads nothing); the whole "
              f"statement (search, lease, counters, example) executes in {exec_ms} on the server; its search:")
        for ln in [ln for ln in plan if "review_reviewitem" in ln or "LockRows" in ln][:6]:
            print("   ", ln)
        connections.close_all()
        ctx = mp.get_context("fork")
        barrier, out = ctx.Barrier(args.reviewers), ctx.Queue()
        procs = [ctx.Process(target=reviewer_loop, args=(task.pk, u.pk, args.rounds, barrier, out)) for u in reviewers]
        t = time.perf_counter()
        for pr in procs:
            pr.start()
        lat, cpu, loop_cpu = [], [], []
        for _ in procs:
            a, b, c = out.get(timeout=900)
            lat += a
            cpu += b
            loop_cpu.append(c)
        for pr in procs:
            pr.join()
        wall = time.perf_counter() - t
        p95 = pct(lat, 95) * 1000
        print(f"next, 1 reviewer alone: p50 {pct(solo, 50) * 1000:.1f} ms, p95 {pct(solo, 95) * 1000:.1f} ms (n={len(solo)})")
        print(f"next, {args.reviewers} reviewers at once: p50 {pct(lat, 50) * 1000:.1f} ms, p95 {p95:.1f} ms, "
              f"max {max(lat) * 1000:.1f} ms (n={len(lat)}; {len(lat) / wall:.0f} next+decide per s overall)")
        # the hub's own cost, whatever the machine's load: CPU time of the reviewer's process in each `next`
        # (the PostgreSQL server's share comes on top: see the statements and the search time above)
        print(f"next, CPU time in the reviewer's process: p50 {pct(cpu, 50) * 1000:.1f} ms, "
              f"p95 {pct(cpu, 95) * 1000:.1f} ms; the whole process (every thread) per next + decide: "
              f"{sum(loop_cpu) / len(loop_cpu) * 1000:.1f} ms")
        rows.append((f"next p95, {args.reviewers} concurrent", p95 / 1000, TARGETS["next_p95_ms"] / 1000, None))
        from apps.review.models import ReviewItem
        assert not ReviewItem.objects.filter(task=task, taken__gt=2).exists()

        with Peak() as p:
            audit = services.bulk_apply(user=owner, task_id=task.pk, filter={}, action="tag", tag="bench")
        rows.append((f"bulk tag ({audit.count} items)", p.seconds, TARGETS["bulk"], p.growth))
        with Peak() as p:
            audit = services.bulk_apply(user=owner, task_id=task.pk, filter={"q": "Question"}, action="accept")
        rows.append((f"bulk accept, text filter ({audit.count})", p.seconds, TARGETS["bulk"], p.growth))

        from apps.datasets.validation.tokens import counter_for_base_model
        t = time.perf_counter()
        has_tok = counter_for_base_model(None) is not None  # load the tokenizer outside the timing
        print(f"tokenizer {'loaded' if has_tok else 'not available (no token counts)'} in {time.perf_counter() - t:.1f} s")
        from apps.core.jobs import enqueue as jobs_enqueue
        sent = []
        jobs_enqueue.enqueue = lambda name, *a, **kw: sent.append((name, a))  # no broker here: we run the actor
        with Peak() as p:
            snap = services.task_finish(user=owner, task_id=task.pk)
        assert snap.version.status == "importing" and sent == [("review_result", (snap.pk,))], sent
        rows.append(("finish: the request (202, job queued)", p.seconds, None, p.growth))
        from workers.review import review_result
        with Peak() as p:
            review_result.fn(snap.pk)  # what the `default` worker runs
        snap.refresh_from_db()
        snap.version.refresh_from_db()
        assert snap.version.status == "ready", snap.version.error
        rows.append((f"finish: the worker's build ({snap.version.example_count})", p.seconds, TARGETS["finish"],
                     p.growth))
        t = time.perf_counter()
        again = services.task_finish(user=owner, task_id=task.pk)
        assert again.version_id == snap.version_id
        rows.append(("finish again (same version)", time.perf_counter() - t, None, None))
        with Peak() as p:
            n = sum(1 for _ in services.decisions_export_lines(user=owner, task_id=task.pk))
        rows.append((f"export JSONL ({n} lines)", p.seconds, None, p.growth))
        from apps.review.agreement import task_agreement
        with Peak() as p:
            ag = task_agreement(task)
        rows.append((f"agreement ({ag['items_compared']} items compared)", p.seconds, None, p.growth))
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
    print(f"\n{args.examples} examples, {args.reviewers} reviewers; load average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'measurement':44} {'seconds':>9} {'target':>8}  {'RSS growth':>10}")
    failed = False
    for name, secs, target, growth in rows:
        ok = "" if target is None else ("  ok" if secs <= target else "  OVER")
        failed |= ok == "  OVER"
        print(f"{name:44} {secs:9.3f} {'' if target is None else f'{target:8.3f}'}  "
              f"{'' if growth is None else f'{growth:7.0f} MB'}{ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
