"""The lock scenario: other users' latency while a member uploads a 100k-line file and a run trains.

Starts the real stack (`python -m training_hub.launcher`: uvicorn, the Dramatiq workers, the inference
process, Redis) on a fresh data dir with a tiny base model, then runs tests/e2e/lock_scenario.py: member A
uploads `--lines` short lines while members B and C, on a fixed schedule (`--interval` per user), create API
keys (POST /api/api-keys), log in and open pages, and C's tiny run trains. Prints p50/p95/max of B's and C's
requests from the upload until the import is ready (and per kind of request), the same load's baseline
before the upload, the number of 5xx, the run's final status and how busy the host was. `--database` with
a postgres:// URL (re)creates that database and drops it at the end.

    .venv/bin/python bench/bench_lock.py                      # the default database (DATABASE_URL unset)
    .venv/bin/python bench/bench_lock.py --database sqlite    # SQLite in the data dir
    .venv/bin/python bench/bench_lock.py --database postgres://postgres@127.0.0.1:5432/hub_lock
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _database_env(database: str, data_dir: Path) -> tuple[dict, callable]:
    """Extra environment for the stack and a clean-up callable."""
    if database == "default":
        return {}, lambda: None
    if database == "sqlite":
        return {"DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}"}, lambda: None
    if database.startswith(("postgres://", "postgresql://")):
        import psycopg

        base, name = database.rsplit("/", 1)
        admin = f"{base}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop():
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return {"DATABASE_URL": database}, drop
    raise SystemExit(f"--database: use default, sqlite or a postgres:// URL (got {database!r})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", default="default", help="default | sqlite | postgres://... (a scratch database)")
    ap.add_argument("--redis", default="", help="an external Redis URL (default: the embedded one)")
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between one user's requests")
    ap.add_argument("--max-steps", type=int, default=200, help="the tiny run's steps (enough to train through the import)")
    ap.add_argument("--samples", default="", help="write every request's timing here (JSON lines)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    args = ap.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")
    from tests.e2e.conftest import start_stack
    from tests.e2e.lock_scenario import run_lock_scenario, web_server_pid, write_samples

    data_dir = Path(tempfile.mkdtemp(prefix="hub-lock-"))
    extra, cleanup = _database_env(args.database, data_dir)
    if args.redis:
        extra["REDIS_URL"] = args.redis
    stack_gen = start_stack(data_dir, extra)
    stack = next(stack_gen)
    try:
        result = run_lock_scenario(stack.url, stack.admin_password, lines=args.lines, interval_s=args.interval,
                                   max_steps=args.max_steps, server_pid=web_server_pid(stack.proc.pid))
    finally:
        stack_gen.close()
        cleanup()
    print(f"\ndatabase: {args.database}")
    print(result.summary())
    if args.samples:
        write_samples(result, Path(args.samples))
    for s in result.server_errors[:5] + result.no_answer[:5]:
        print(f"  {s.status or 'no answer'} {s.user} {s.kind} at {s.started:.1f} s after {s.seconds:.1f} s: {s.error}")
    if not args.keep:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    # Latency is measured, not judged here (tests/e2e/test_lock_scenario.py asserts the bound); 5xx, requests
    # without an answer and a run that did not succeed are failures.
    return 1 if result.server_errors or result.no_answer or result.run_status != "succeeded" else 0


if __name__ == "__main__":
    sys.exit(main())
