"""Benchmark: how long the embedded PostgreSQL takes to start (training_hub/embedded_postgres.py).

- first start: `ensure_running` on an empty data dir = initdb (durable, as `make run` does) + start +
  CREATE DATABASE hub, until a connection answers;
- later start: `ensure_running` on an existing data dir (the server stopped) until a connection answers;
- reuse: `ensure_running` in a new process while the server runs (what each web/worker process does once);
- stop: the last user's `release` until the postmaster has exited.
Each in fresh folders under /tmp, medians over --repeat runs. Prints the load average too: the numbers are
wall-clock times on a shared machine.

Usage: .venv/bin/python bench/bench_postgres.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training_hub import embedded_postgres as ep  # noqa: E402

REUSE = """
import sys, time
t0 = time.perf_counter()
from training_hub import embedded_postgres as ep
import psycopg
psycopg.connect(ep.ensure_running(sys.argv[1])).execute("SELECT 1")
print(time.perf_counter() - t0)
"""


def timed_start(pgdata: Path) -> float:
    t0 = time.perf_counter()
    url = ep.ensure_running(pgdata)
    psycopg.connect(url).execute("SELECT 1")
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    first, later, reuse, stop = [], [], [], []
    for _ in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
        pgdata = work / "postgres"
        try:
            first.append(timed_start(pgdata))
            t0 = time.perf_counter()
            assert ep.release(pgdata)
            stop.append(time.perf_counter() - t0)
            later.append(timed_start(pgdata))
            out = subprocess.run([sys.executable, "-c", REUSE, str(pgdata)], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            reuse.append(float(out.stdout.strip()))
            ep.release(pgdata)
        finally:
            ep.remove(pgdata)
            shutil.rmtree(work, ignore_errors=True)

    def fmt(xs):
        return f"median {statistics.median(xs):6.3f} s   (min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})"

    user = "as root: server runs as a dedicated user" if os.geteuid() == 0 else f"as uid {os.geteuid()}"
    print(f"embedded PostgreSQL ({ep.bin_dir()}), {user}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"first start (initdb + start + CREATE DATABASE) {fmt(first)}")
    print(f"later start (existing data dir)               {fmt(later)}")
    print(f"reuse from a new process (incl. imports)      {fmt(reuse)}")
    print(f"stop (last user releases)                     {fmt(stop)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
