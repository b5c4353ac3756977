"""Running the server as root: PostgreSQL refuses to, so it runs as an ordinary user.

Contract: `server_user(pgdata)` is None when this process is not root; as root, the (uid, gid) of the
data dir's (or its parent's) owner when that is not root, else of the system user `training-hub`
(created with useradd on first use; EmbeddedPostgresError when that fails). `grant_traverse(path, uid,
gid)` adds o+x (traverse only) to the folders from / to `path` that the user cannot enter, says so on
stderr and returns whether it changed anything; `private_dir(path, owner)` makes or checks a 0700
folder of that user (the socket's, outside the data dir)."""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from training_hub.embedded_postgres.paths import SYSTEM_USER, EmbeddedPostgresError


def server_user(pgdata: Path) -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run it as this process (not root)."""
    if os.geteuid() != 0:
        return None
    for path in (pgdata, pgdata.parent):
        if path.exists() and path.stat().st_uid != 0:
            try:
                entry = pwd.getpwuid(path.stat().st_uid)  # initdb needs a user name
                return entry.pw_uid, entry.pw_gid
            except KeyError:
                break
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        try:
            subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            if not _user_exists(SYSTEM_USER):  # exit code 9: created meanwhile by another process
                detail = getattr(exc, "stderr", "") or exc
                raise EmbeddedPostgresError(
                    f"PostgreSQL refuses to run as root, and the user `{SYSTEM_USER}` could not be created "
                    f"({detail}). Create it, or run as an ordinary user, or set DATABASE_URL") from None
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def grant_traverse(path: Path, uid: int, gid: int) -> bool:
    """Make sure `uid` can traverse every folder from / to `path` (adds o+x where it cannot).
    Returns whether it changed anything."""
    try:
        groups = set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        groups = {gid}
    changed = False
    for folder in [path, *path.parents]:
        st = folder.stat()
        need = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & need:
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            changed = True
            print(f"[embedded-postgres] chmod o+x {folder}: the PostgreSQL server runs as uid {uid} and must "
                  "reach its files", file=sys.stderr, flush=True)
    return changed


def private_dir(path: Path, owner: tuple[int, int] | None) -> None:
    """A folder only the server's user can enter (the socket's, when outside the data dir)."""
    try:
        path.mkdir(mode=0o700)
        if owner:
            os.chown(path, *owner)
    except FileExistsError:
        pass
    st = path.lstat()
    uid = owner[0] if owner else os.geteuid()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise EmbeddedPostgresError(f"{path} is not a private folder of uid {uid}; remove it")
