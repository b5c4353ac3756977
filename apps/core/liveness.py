"""Which worker holds a job, and whether it is still alive.

Long jobs (training runs, dataset imports) record their holder as "host:pid" and a heartbeat timestamp.
A holder on this host is dead when its pid is gone; on another host, when its heartbeat is older than a
threshold. `Heartbeat` beats from a thread (its own database connection) while the job works.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import Callable

from django.utils import timezone

log = logging.getLogger(__name__)


def worker_id() -> str:
    """This process, as recorded on the jobs it holds ("host:pid")."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_local(worker: str | None) -> bool:
    return bool(worker) and ":" in worker and worker.rsplit(":", 1)[0] == socket.gethostname()


def pid_alive(worker: str | None) -> bool:
    """A holder on this host is alive while its pid exists; one on another host cannot be checked
    here (True: trust its heartbeat instead); no holder is not alive."""
    if not worker or ":" not in worker:
        return False
    if not is_local(worker):
        return True
    try:
        os.kill(int(worker.rsplit(":", 1)[1]), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def heartbeat_stale(last: datetime | None, stale_after_s: float) -> bool:
    return last is None or (timezone.now() - last).total_seconds() > stale_after_s


def holder_dead(worker: str | None, last_heartbeat: datetime | None, *, stale_after_s: float) -> bool:
    """Same host: the holder's pid is gone. Another host: no heartbeat for `stale_after_s`."""
    if not worker:
        return False
    if is_local(worker):
        return not pid_alive(worker)
    return heartbeat_stale(last_heartbeat, stale_after_s)


class Heartbeat:
    """Calls `beat()` every `every_s` seconds from a daemon thread while the `with` block runs, so a job in
    a silent phase (reading a big file, loading a tokenizer, one long step) is never taken for dead by a
    worker on another machine. The thread uses its own database connection (closed when it ends)."""

    def __init__(self, beat: Callable[[], None], *, every_s: float, name: str):
        self.beat = beat
        self.every_s = every_s
        self.name = name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        from django.db import close_old_connections

        try:
            while not self.stop.wait(self.every_s):
                try:
                    self.beat()
                except Exception:  # pragma: no cover - a missed beat is not fatal
                    log.warning("%s failed", self.name, exc_info=True)
        finally:
            close_old_connections()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
