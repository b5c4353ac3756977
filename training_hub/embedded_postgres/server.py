"""One server's data dir: initdb, start, the database, the data dir's lock and its registered users.

Contract: `init_data_dir(pgdata, owner, durable)` runs initdb into a temporary sibling then renames it (a
data dir is complete or absent); `start_server(pgdata, owner, durable, timeout_s)` starts it on its unix
socket only (durable=False: nothing is fsynced) and waits until it is ready; `create_database(pgdata,
name)` creates the database when missing; `locked(pgdata)` holds an exclusive flock on `<pgdata>.lock`;
`server_users(pgdata)` / `write_server_users(pgdata, pids)` read and write the live pids registered in
`<pgdata>.users`. Every failure is an EmbeddedPostgresError whose message says what to do."""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from training_hub.embedded_postgres.ownership import private_dir
from training_hub.embedded_postgres.paths import (
    _FAST,
    PORT,
    SUPERUSER,
    EmbeddedPostgresError,
    bin_dir,
    sibling,
    socket_dir,
)
from training_hub.embedded_postgres.processes import pid_alive, wait_ready


def _run(args: list[str], owner: tuple[int, int] | None, timeout: float) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    kwargs = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
    out = subprocess.run(args, cwd="/", env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout, **kwargs)
    if out.returncode != 0:
        raise EmbeddedPostgresError(f"{Path(args[0]).name} failed ({out.returncode}): {(out.stderr or out.stdout)[-2000:]}")


def init_data_dir(pgdata: Path, owner: tuple[int, int] | None, durable: bool) -> None:
    """initdb into a temporary sibling, then rename: a data dir is complete or absent."""
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedPostgresError(f"{pgdata} is not empty and is not a PostgreSQL data dir; move it away")
    tmp = sibling(pgdata, ".initdb")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    if owner:
        os.chown(tmp, *owner)
    args = [str(bin_dir() / "initdb"), "-D", str(tmp), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions"]
    if not durable:
        args.append("--no-sync")
    elif sys.platform.startswith("linux"):
        args.append("--sync-method=syncfs")  # one syncfs() instead of an fsync per file: ~2x faster here
    _run(args, owner, timeout=300)
    if pgdata.exists():
        pgdata.rmdir()  # empty (checked above)
    tmp.rename(pgdata)


def start_server(pgdata: Path, owner: tuple[int, int] | None, durable: bool, timeout_s: float) -> None:
    sock = socket_dir(pgdata)
    if sock != pgdata:
        private_dir(sock, owner)
    log = pgdata / "server.log"
    options = f"-h '' -k {shlex.quote(str(sock))} -p {PORT} -c unix_socket_permissions=0700"
    if not durable:
        options += f" {_FAST}"
    try:
        _run([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w",
              "-t", str(int(timeout_s)), "-s", "start"], owner, timeout=timeout_s + 10)
    except (EmbeddedPostgresError, subprocess.TimeoutExpired) as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise EmbeddedPostgresError(f"the embedded PostgreSQL did not start: {exc}\n{log}:\n{tail}") from None
    if wait_ready(pgdata, timeout_s) is None:
        raise EmbeddedPostgresError(f"the embedded PostgreSQL exited right after starting; see {log}")


def create_database(pgdata: Path, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(socket_dir(pgdata)), port=PORT, user=SUPERUSER, dbname="postgres",
                         autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def locked(pgdata: Path):
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(sibling(pgdata, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def server_users(pgdata: Path) -> list[int]:
    try:
        raw = sibling(pgdata, ".users").read_text().split()
    except FileNotFoundError:
        return []
    return [pid for pid in dict.fromkeys(int(p) for p in raw if p.isdigit()) if pid_alive(pid)]


def write_server_users(pgdata: Path, pids: list[int]) -> None:
    path = sibling(pgdata, ".users")
    tmp = sibling(pgdata, ".users.tmp")
    tmp.write_text("".join(f"{p}\n" for p in pids))
    tmp.replace(path)
