"""Time from `make run` on a fresh clone to a ready dashboard.

Clones the current commit into a temporary folder, runs `make run` there (creating its own .venv,
installing everything, preparing the base model — reused from HUB_MODEL_CACHE when present —,
migrating, creating the admin, loading the demo data, starting every process) and measures the
seconds until GET /healthz answers 200 and the login page renders. Then stops the stack with Ctrl-C.

    python bench/bench_make_run.py [--keep]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the clone")
    ap.add_argument("--timeout", type=float, default=1500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hub-fresh-"))
    clone = tmp / "training-hub"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV", "HUB_DATA_DIR")}
    env.update(HUB_PORT=str(port), HUB_INFERENCE_PORT=str(free_port()))
    log = open(tmp / "make-run.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    ready = None
    try:
        while time.monotonic() - t0 < args.timeout:
            if proc.poll() is not None:
                print((tmp / "make-run.log").read_text()[-4000:])
                print(f"make run exited early with {proc.returncode}")
                return 1
            if ok(f"{url}/healthz") and ok(f"{url}/accounts/login/"):
                ready = time.monotonic() - t0
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    if ready is None:
        print("dashboard not ready before the timeout")
        return 1
    print(f"make run on a fresh clone -> ready dashboard: {ready:.1f} s  (clone: {clone})")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(tmp)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
