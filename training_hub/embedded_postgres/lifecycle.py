"""The life of an embedded PostgreSQL server, shared by the processes that use it: start it unless it
runs, register and release users (the last one stops it), stop it, and remove throwaway ones.

Contract: see the package (training_hub/embedded_postgres/__init__.py): `ensure_running`, `release`,
`stop`, `remove`, `remove_when_gone`."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
from pathlib import Path

from training_hub.embedded_postgres.ownership import grant_traverse, server_user
from training_hub.embedded_postgres.paths import DATABASE, EmbeddedPostgresError, bin_dir, sibling, socket_dir, url
from training_hub.embedded_postgres.processes import is_running, stop_locked, wait_ready
from training_hub.embedded_postgres.server import (
    create_database,
    init_data_dir,
    locked,
    server_users,
    start_server,
    write_server_users,
)

_registered: dict[Path, int] = {}  # pgdata -> the pid that registered (a forked child must register itself)


def ensure_running(pgdata: Path, *, durable: bool = True, register: bool = True, timeout_s: float = 60.0) -> str:
    """Start the server of `pgdata` unless it runs (initdb on first use); register this process as a user.
    Returns its URL. Cheap when this process is registered and the server runs (no lock taken)."""
    pgdata = Path(pgdata).resolve()
    if _registered.get(pgdata) == os.getpid() and is_running(pgdata):
        return url(pgdata)
    with locked(pgdata):
        if wait_ready(pgdata, timeout_s) is None:
            owner = server_user(pgdata)
            for attempt in (1, 2):
                if owner:
                    grant_traverse(pgdata.parent, *owner)
                    grant_traverse(bin_dir(), *owner)
                try:
                    init_data_dir(pgdata, owner, durable)
                    # Left by a server that died (crash, reboot); its pid may now be another process, for
                    # which PostgreSQL would refuse to start. We hold the lock and no postmaster of this
                    # dir is alive.
                    (pgdata / "postmaster.pid").unlink(missing_ok=True)
                    start_server(pgdata, owner, durable, timeout_s)
                    break
                except EmbeddedPostgresError:
                    # Someone took the traverse bit back meanwhile (a new pytest session resets
                    # /tmp/pytest-of-<user> to 0700): grant it again and retry once.
                    if attempt == 2 or not (owner and grant_traverse(pgdata.parent, *owner)):
                        raise
            create_database(pgdata, DATABASE)
        if register:
            users = server_users(pgdata)
            if os.getpid() not in users:
                write_server_users(pgdata, [*users, os.getpid()])
            if _registered.get(pgdata) != os.getpid():
                _registered[pgdata] = os.getpid()
                atexit.register(release, pgdata, _pid=os.getpid())
    return url(pgdata)


def release(pgdata: Path, *, _pid: int | None = None, timeout_s: float = 30.0) -> bool:
    """Unregister this process; stop the server when no live user is left. Returns whether it stopped it."""
    pgdata = Path(pgdata).resolve()
    pid = os.getpid()
    if (_pid is not None and _pid != pid) or _registered.get(pgdata) != pid:
        return False  # an atexit hook inherited through fork, or already released
    del _registered[pgdata]
    with locked(pgdata):
        users = [p for p in server_users(pgdata) if p != pid]
        write_server_users(pgdata, users)
        return not users and stop_locked(pgdata, timeout_s)


def stop(pgdata: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the server of `pgdata` whoever uses it (used by `python -m training_hub.embedded_postgres stop`)."""
    pgdata = Path(pgdata).resolve()
    _registered.pop(pgdata, None)
    with locked(pgdata):
        write_server_users(pgdata, [])
        return stop_locked(pgdata, timeout_s)


def remove(pgdata: Path) -> None:
    """Stop the server of `pgdata` and delete its data (throwaway servers: the test suite's, benchmarks)."""
    pgdata = Path(pgdata).resolve()
    stop(pgdata)
    sock = socket_dir(pgdata)
    for path in (pgdata, sibling(pgdata, ".initdb"), *([sock] if sock != pgdata else [])):
        shutil.rmtree(path, ignore_errors=True)
    for suffix in (".users", ".users.tmp", ".lock"):
        sibling(pgdata, suffix).unlink(missing_ok=True)


_WATCHDOG = """
import shutil, sys, time
from pathlib import Path
from training_hub import embedded_postgres as ep
owner = int(sys.argv[1])
while ep.pid_alive(owner):
    time.sleep(1.0)
ep.remove(Path(sys.argv[2]))
for extra in sys.argv[3:]:
    shutil.rmtree(extra, ignore_errors=True)
"""


def remove_when_gone(pgdata: Path, owner_pid: int, *extra: Path) -> subprocess.Popen:
    """Start a detached watchdog that removes the throwaway server of `pgdata` (and the `extra` folders)
    once `owner_pid` has exited, however it ended: a pytest killed by `timeout` (SIGTERM runs no atexit)
    or SIGKILL would otherwise leave a running server and its data behind."""
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(owner_pid), str(pgdata), *map(str, extra)],
                            cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)
