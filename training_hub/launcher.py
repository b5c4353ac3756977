"""`python -m training_hub.launcher`: start the whole stack (what `make run` ends with).

Starts the embedded Redis when REDIS_URL is unset and the embedded PostgreSQL when DATABASE_URL is unset
(data in $HUB_DATA_DIR/postgres; the Procfile's processes reach the same server through the settings),
then runs every process of the Procfile with honcho (web, worker-gpu, worker, inference, scheduler) and waits until
the dashboard answers. Ctrl-C stops all, the embedded servers last.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.25)
    return False


def main(argv: list[str] | None = None) -> int:
    from training_hub import embedded_postgres, embedded_redis

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procfile", default=str(BASE_DIR / "Procfile"))
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")
    data_dir = Path(env.get("HUB_DATA_DIR") or BASE_DIR / "var").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env["HUB_DATA_DIR"] = str(data_dir)
    env.setdefault("HUB_HOST", "127.0.0.1")
    env.setdefault("HUB_PORT", "8000")
    env.setdefault("HUB_INFERENCE_PORT", str(int(env["HUB_PORT"]) + 1))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The Procfile's commands use `python`: make it this interpreter (the venv's).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    redis_proc = None
    if not env.get("REDIS_URL"):
        redis_proc, env["REDIS_URL"] = embedded_redis.start(data_dir)
        print(f"[launcher] embedded Redis at {env['REDIS_URL']}", flush=True)

    pgdata = None
    if not env.get("DATABASE_URL"):
        pgdata = data_dir / "postgres"
        started = time.monotonic()
        try:  # registers the launcher as a user of the server: it stops when the last user ends
            pg_url = embedded_postgres.ensure_running(pgdata)
        except embedded_postgres.EmbeddedPostgresError as exc:
            print(f"[launcher] {exc}", file=sys.stderr, flush=True)
            embedded_redis.stop(redis_proc)
            return 1
        print(f"[launcher] embedded PostgreSQL at {pg_url} (data in {pgdata}, "
              f"ready in {time.monotonic() - started:.2f}s)", flush=True)
        if (data_dir / "db.sqlite3").exists():
            print(f"[launcher] note: {data_dir / 'db.sqlite3'} (the default database of earlier versions) is "
                  f"not used; DATABASE_URL=sqlite:///{data_dir / 'db.sqlite3'} keeps using it", flush=True)

    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", args.procfile, "-d", str(BASE_DIR), "start"],
        env=env, cwd=BASE_DIR, start_new_session=True,
    )
    stopping = False

    def _stop(*_):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        try:
            os.killpg(honcho.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    url = f"http://{env['HUB_HOST']}:{env['HUB_PORT']}"
    try:
        if wait_http(f"{url}/healthz", args.ready_timeout, honcho):
            pw_file = data_dir / "admin_password"
            # The first-run password goes to an interactive terminal only, never into a captured log.
            login = ""
            if pw_file.exists():
                shown = pw_file.read_text().strip() if sys.stdout.isatty() else "<see the file>"
                login = f"  log in as admin / {shown}  (password kept in {pw_file})\n"
            print(f"\n[launcher] Training Hub is ready at {url}/  (Ctrl-C stops everything)\n{login}", flush=True)
        elif honcho.poll() is None:
            print(f"[launcher] the dashboard did not answer at {url} within {args.ready_timeout:.0f}s; "
                  "see the process output above", flush=True)
        rc = honcho.wait()
        while True:  # Ctrl-C during wait(): wait for honcho to finish stopping its children
            try:
                rc = honcho.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
        return 0 if stopping else rc
    finally:
        _stop()
        try:
            honcho.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
        if pgdata is not None:
            embedded_postgres.release(pgdata)
        embedded_redis.stop(redis_proc)


if __name__ == "__main__":
    sys.exit(main())
