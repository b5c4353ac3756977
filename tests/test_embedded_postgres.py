"""The embedded PostgreSQL helper (training_hub/embedded_postgres.py) with real servers and real processes:
start, reuse by a second process, the URL works, the last user stops it, data survives a restart, racing
starts end with one server, a socket path over the unix limit, a stale postmaster.pid, the Django engine
that starts the server on the first connection, DATABASE_URL=sqlite:/// still working, and the watchdog that
removes a throwaway server whose owner was killed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from training_hub import embedded_postgres as ep

ROOT = Path(__file__).resolve().parents[1]


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    return ep.pid_alive(pid)


def _python(code: str, *args: str, timeout: float = 120) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def workdir():
    """A folder straight under /tmp, not pytest's tmp_path: as root the server runs as another user, who
    must traverse the folders above its data, and every new pytest session (other runs on this machine)
    resets /tmp/pytest-of-root to 0700."""
    path = Path(tempfile.mkdtemp(prefix="hub-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pgdata(workdir):
    path = workdir / "data" / "postgres"
    yield path
    ep.remove(path)


def test_start_reuse_url_and_the_last_user_stops_it(pgdata):
    url = ep.ensure_running(pgdata, durable=False)
    first = _postmaster_pid(pgdata)
    assert (pgdata / "PG_VERSION").exists() and ep.is_running(pgdata)
    assert ep.socket_dir(pgdata) == pgdata.resolve()  # short path: the socket is in the data dir
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("hub", "postgres")
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        # Unix socket only: nothing listens on TCP.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)

    # A second process reuses the running server (same postmaster) and, since this process still uses it,
    # leaves it running when it exits.
    out = _python("""
        import sys
        from training_hub import embedded_postgres as ep
        import psycopg
        url = ep.ensure_running(sys.argv[1])
        print(psycopg.connect(url).execute("SELECT v FROM kept").fetchone()[0])
        print(open(sys.argv[1] + "/postmaster.pid").read().split()[0])
    """, str(pgdata))
    assert out.splitlines() == ["survives a restart", str(first)]
    assert ep.is_running(pgdata) and _postmaster_pid(pgdata) == first

    # This process is the last user: releasing stops the server.
    assert ep.release(pgdata) is True
    assert not _alive(first) and not (pgdata / "postmaster.pid").exists()

    # Started again: a new postmaster on the same data.
    url = ep.ensure_running(pgdata)
    assert _postmaster_pid(pgdata) != first
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("survives a restart",)


def test_a_process_that_starts_it_alone_stops_it_at_exit(pgdata):
    pid = _python("""
        import sys
        from training_hub import embedded_postgres as ep
        ep.ensure_running(sys.argv[1])
        print(open(sys.argv[1] + "/postmaster.pid").read().split()[0])
    """, str(pgdata))
    assert not _alive(int(pid)) and not ep.is_running(pgdata)
    assert (pgdata / "PG_VERSION").exists()  # the data stays


def test_racing_starts_share_one_server(pgdata):
    code = textwrap.dedent("""
        import sys, time
        from training_hub import embedded_postgres as ep
        import psycopg
        url = ep.ensure_running(sys.argv[1], durable=False)
        psycopg.connect(url).execute("SELECT 1")
        print(open(sys.argv[1] + "/postmaster.pid").read().split()[0], flush=True)
        sys.stdin.read()  # stay a user until the test closes stdin
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(pgdata)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        pids = {p.stdout.readline().strip() for p in procs}
        assert len(pids) == 1 and _alive(int(pids.pop()))
        assert sorted(ep.server_users(pgdata.resolve())) == sorted(p.pid for p in procs)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    assert not ep.is_running(pgdata)  # the last of them stopped it
    assert not pgdata.with_name("postgres.initdb").exists()


def test_socket_path_over_the_unix_limit_goes_to_a_private_tmp_folder(workdir):
    pgdata = workdir / ("d" * 100) / "postgres"
    sock = ep.socket_dir(pgdata)
    assert sock != pgdata.resolve() and len(str(sock / ".s.PGSQL.5432")) <= ep.SOCKET_PATH_MAX
    try:
        url = ep.ensure_running(pgdata, durable=False)
        assert str(sock) in url
        assert (sock.stat().st_mode & 0o777) == 0o700
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        ep.remove(pgdata)
    assert not sock.exists()


def test_stale_postmaster_pid_of_another_live_process_is_replaced(pgdata):
    ep.ensure_running(pgdata, durable=False)
    ep.release(pgdata)
    # What a crash then a reboot leaves: postmaster.pid naming a pid that is now some other live process of
    # the server's user (PostgreSQL itself would refuse to start: "lock file already exists").
    owner = ep.server_user(pgdata.resolve())
    other = subprocess.Popen(["sleep", "60"], **({"user": owner[0], "group": owner[1]} if owner else {}))
    try:
        (pgdata / "postmaster.pid").write_text(f"{other.pid}\n{pgdata}\n0\n5432\n{pgdata}\n\n0 0\nready\n")
        assert not ep.is_running(pgdata)
        url = ep.ensure_running(pgdata, durable=False)
        assert _postmaster_pid(pgdata) != other.pid
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        other.kill()
        other.wait()


def test_django_engine_starts_the_server_on_first_connection(workdir):
    """`DATABASE_URL` unset: manage.py works with nothing else running (the engine starts the server), and
    stops it again when it was the only user."""
    data = workdir / "hub"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(HUB_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="training_hub.settings", REDIS_URL="redis://127.0.0.1:1/0")
    try:
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                              "from django.db import connection; connection.ensure_connection(); "
                              "print(connection.vendor, connection.settings_dict['NAME'], "
                              "connection.connection.info.host)"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1].split() == ["postgresql", "hub", str((data / "postgres").resolve())]
        assert (data / "postgres" / "PG_VERSION").exists() and not ep.is_running(data / "postgres")
    finally:
        ep.remove(data / "postgres")


def test_sqlite_url_still_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(HUB_DATA_DIR=str(tmp_path / "hub"), DJANGO_SETTINGS_MODULE="training_hub.settings",
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", REDIS_URL="redis://127.0.0.1:1/0")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                          "from django.db import connection; connection.ensure_connection(); print(connection.vendor)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "sqlite"
    assert not (tmp_path / "hub" / "postgres").exists()


def test_watchdog_removes_a_throwaway_server_whose_owner_was_killed(workdir):
    """What test_settings does for the suite's server: a pytest killed by SIGKILL (or by `timeout`'s SIGTERM,
    which runs no atexit) must not leave a running server and its data behind."""
    pgdata, extra = workdir / "t" / "postgres", workdir / "t"
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys, time
        from training_hub import embedded_postgres as ep
        ep.ensure_running(sys.argv[1], durable=False)
        ep.remove_when_gone(sys.argv[1], os.getpid(), sys.argv[2])
        print(open(sys.argv[1] + "/postmaster.pid").read().split()[0], flush=True)
        time.sleep(600)
    """), str(pgdata), str(extra)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    postmaster = int(owner.stdout.readline())
    assert _alive(postmaster)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 30
    while (extra.exists() or _alive(postmaster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(postmaster) and not extra.exists()
