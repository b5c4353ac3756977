"""Run every benchmark in bench/ in turn (each prints its own figures)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_validate.py", "bench_train.py", "bench_dpo.py", "bench_inference.py", "bench_exports.py", "bench_proxy.py", "bench_upstream_reads.py", "bench_pages.py", "bench_postgres.py", "bench_lock.py", "bench_review.py", "bench_repos.py", "bench_monitoring.py", "bench_rewards.py"]

if __name__ == "__main__":
    rc = 0
    for name in ORDER:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        rc |= subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
    sys.exit(rc)
