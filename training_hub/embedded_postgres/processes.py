"""The processes of an embedded PostgreSQL: whether a pid is alive, the live postmaster of a data dir,
waiting until it is ready, and stopping it.

Contract: `pid_alive(pid)` (a zombie is not alive); `postmaster(pgdata)` is (pid, status) of the live
postmaster named by postmaster.pid, or None (a reused pid that is no postgres does not count);
`wait_ready(pgdata, timeout_s)` waits until it is ready (its pid) or gone (None);
`is_running(pgdata)`; `stop_locked(pgdata, timeout_s)` stops it (fast shutdown, then immediate, then
SIGKILL; the caller holds the data dir's lock) and returns whether one was running."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from training_hub.embedded_postgres.paths import EmbeddedPostgresError


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    try:  # Linux: a zombie (exited, not yet reaped) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _is_postgres(pid: int) -> bool:
    """False only when the pid's command line is readable and is not a postgres (a reused pid)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:  # no /proc (macOS), or hidden: trust the pid
        return True
    words = os.fsdecode(argv0).split()
    return bool(words) and Path(words[0]).name.rstrip(":") == "postgres"


def postmaster(pgdata: Path) -> tuple[int, str] | None:
    """(pid, status) of the live postmaster of `pgdata` per its postmaster.pid, or None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise EmbeddedPostgresError(f"{pgdata} belongs to another user (uid {pgdata.stat().st_uid}); run as that "
                                    "user, or set HUB_DATA_DIR to a folder of yours") from None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None  # being written
    if not (pid_alive(pid) and _is_postgres(pid)):
        return None
    return pid, (lines[7].strip() if len(lines) > 7 else "starting")


def wait_ready(pgdata: Path, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while True:
        info = postmaster(pgdata)
        if info is None or info[1] == "ready":
            return info and info[0]
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(f"the PostgreSQL server of {pgdata} is '{info[1]}' since {timeout_s:.0f}s; "
                                        f"see {pgdata / 'server.log'}")
        time.sleep(0.05)


def is_running(pgdata: Path) -> bool:
    info = postmaster(Path(pgdata).resolve())
    return info is not None and info[1] == "ready"


def stop_locked(pgdata: Path, timeout_s: float) -> bool:
    info = postmaster(pgdata)
    if info is None:
        return False
    pid = info[0]
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:  # SIGINT: "fast" shutdown (rolls back open transactions); SIGQUIT: immediate
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.02)
    return not pid_alive(pid)
