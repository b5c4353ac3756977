"""Uploaded archives (zip / tar) of a working tree, unpacked safely into a git repository.

Every member is checked before anything is written: absolute paths and ``..`` (path traversal), links
pointing outside the tree, per-file and total sizes (from the headers, and again while writing, against
archives that lie), and the number of members. Nothing is extracted when one check fails; the tree is
written to a temporary folder beside the destination and renamed into place only when complete.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workers.engine.repos.errors import RepoError
from workers.engine.repos.gitcmd import git
from workers.engine.repos.sources import RepoInfo, open_repo

@dataclass
class ArchiveLimits:
    max_total_bytes: int = 512 * 1024 * 1024
    max_member_bytes: int = 64 * 1024 * 1024
    max_members: int = 50_000


@dataclass
class _Member:
    name: str          # normalized relative POSIX path
    kind: str          # file | dir | symlink | hardlink | other
    size: int
    target: str = ""   # link target
    mode: int = 0o644
    ref: object = None


def _normalize(name: str) -> str:
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise RepoError("archive_path_traversal", f"The archive member `{name}` has an absolute path; nothing was extracted.")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise RepoError("archive_path_traversal", f"The archive member `{name}` points outside the archive (`..`); "
                        "nothing was extracted.")
    return "/".join(parts)


def _inside(base: str, target: str) -> bool:
    """Does the link ``target`` (relative to the folder of ``base``) stay inside the tree?"""
    if target.startswith("/") or "\\" in target:
        return False
    depth = 0
    for part in (PurePosixPath(base).parent / target).parts:
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return False
    return True


def _scan(archive: Path) -> tuple[str, list[_Member]]:
    members: list[_Member] = []
    if zipfile.is_zipfile(archive):
        try:
            zf = zipfile.ZipFile(archive)
            for info in zf.infolist():
                mode = (info.external_attr >> 16) & 0o177777
                name = _normalize(info.filename)
                if not name:
                    continue
                if info.is_dir():
                    members.append(_Member(name, "dir", 0))
                elif stat.S_ISLNK(mode):
                    members.append(_Member(name, "symlink", 0, zf.read(info).decode("utf-8", "replace"), ref=info))
                else:
                    members.append(_Member(name, "file", info.file_size, mode=mode & 0o777 or 0o644, ref=info))
            zf.close()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise RepoError("archive_corrupt", f"The zip archive cannot be read: {exc}")
        return "zip", members
    try:
        is_tar = tarfile.is_tarfile(archive)
    except OSError:
        is_tar = False
    if not is_tar:
        raise RepoError("archive_unsupported", "Upload a .zip or a .tar / .tar.gz / .tar.bz2 / .tar.xz archive.")
    try:
        with tarfile.open(archive) as tf:
            for info in tf:
                name = _normalize(info.name)
                if not name:
                    continue
                if info.isdir():
                    members.append(_Member(name, "dir", 0))
                elif info.issym():
                    members.append(_Member(name, "symlink", 0, info.linkname))
                elif info.islnk():
                    try:
                        target = _normalize(info.linkname)
                    except RepoError:
                        raise RepoError("archive_symlink_outside", f"The hard link `{name}` points outside the "
                                        f"archive (`{info.linkname}`); nothing was extracted.")
                    members.append(_Member(name, "hardlink", 0, target))
                elif info.isfile():
                    members.append(_Member(name, "file", info.size, mode=info.mode & 0o777 or 0o644, ref=info.name))
                else:
                    members.append(_Member(name, "other", 0))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RepoError("archive_corrupt", f"The tar archive cannot be read: {exc}")
    return "tar", members


def _check(members: list[_Member], limits: ArchiveLimits) -> None:
    if len(members) > limits.max_members:
        raise RepoError("archive_too_many_files", f"The archive has {len(members)} entries; the limit is "
                        f"{limits.max_members}.")
    total = 0
    names = {m.name for m in members}
    for m in members:
        if m.kind == "symlink" and not _inside(m.name, m.target):
            raise RepoError("archive_symlink_outside", f"The symlink `{m.name}` points outside the archive "
                            f"(`{m.target}`); nothing was extracted.")
        if m.kind == "hardlink" and m.target not in names:
            raise RepoError("archive_symlink_outside", f"The hard link `{m.name}` points outside the archive "
                            f"(`{m.target}`); nothing was extracted.")
        if m.size > limits.max_member_bytes:
            raise RepoError("archive_too_large", f"`{m.name}` is {m.size} bytes uncompressed; the per-file limit is "
                            f"{limits.max_member_bytes}.")
        total += m.size
    if total > limits.max_total_bytes:
        raise RepoError("archive_too_large", f"The archive expands to {total} bytes; the limit is {limits.max_total_bytes}.")
    if not any(m.kind == "file" for m in members):
        raise RepoError("archive_empty", "The archive holds no files.")


def _copy_limited(src, dst_path: Path, budget: list[int], limits: ArchiveLimits, name: str) -> None:
    written = 0
    with open(dst_path, "wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > limits.max_member_bytes or budget[0] < 0:
                raise RepoError("archive_too_large", f"`{name}` expands past the size limit while extracting.")
            out.write(chunk)


def _extract(archive: Path, kind: str, members: list[_Member], root: Path, limits: ArchiveLimits) -> None:
    budget = [limits.max_total_bytes]
    opener = zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive)
    links: list[_Member] = []
    with opener as arc:
        for m in members:
            dst = root / m.name
            if m.kind == "dir":
                dst.mkdir(parents=True, exist_ok=True)
                continue
            if m.kind in ("symlink", "hardlink"):
                links.append(m)
                continue
            if m.kind != "file":
                continue  # devices, fifos: never created
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            src = arc.open(m.ref) if kind == "zip" else arc.extractfile(m.ref)
            if src is None:
                continue
            with src:
                _copy_limited(src, dst, budget, limits, m.name)
            os.chmod(dst, 0o755 if m.mode & 0o111 else 0o644)
    for m in links:  # after every file, so a link can never be written through
        dst = root / m.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            continue
        if m.kind == "symlink":
            os.symlink(m.target, dst)
        else:
            src = root / m.target
            if src.is_file() and not src.is_symlink():
                shutil.copyfile(src, dst)


def _has_git(folder: Path) -> bool:
    return (folder / ".git").is_dir() and (folder / ".git" / "HEAD").is_file()


def _sanitize_git_dir(git_dir: Path) -> None:
    """An uploaded .git may carry hooks or config that runs programs: drop both, keep the object format."""
    shutil.rmtree(git_dir / "hooks", ignore_errors=True)
    cfg = git_dir / "config"
    object_format = ""
    if cfg.is_file():
        m = re.search(r"objectformat\s*=\s*(\w+)", cfg.read_text("utf-8", "replace"), re.I)
        object_format = m.group(1) if m else ""
    text = "[core]\n\trepositoryformatversion = %d\n\tbare = false\n" % (1 if object_format else 0)
    if object_format:
        text += f"[extensions]\n\tobjectformat = {object_format}\n"
    cfg.write_text(text)


ARCHIVE_AUTHOR = {"GIT_AUTHOR_NAME": "Training Hub", "GIT_AUTHOR_EMAIL": "hub@localhost",
                  "GIT_COMMITTER_NAME": "Training Hub", "GIT_COMMITTER_EMAIL": "hub@localhost",
                  "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000"}


def unpack_archive(archive_path, dest, *, limits: ArchiveLimits | None = None) -> RepoInfo:
    """Unpack an uploaded zip/tar of a working tree into ``dest`` (must not exist) and return its commit."""
    limits = limits or ArchiveLimits()
    archive = Path(archive_path)
    if not archive.is_file():
        raise RepoError("path_not_found", f"Archive not found: {archive}")
    dest = Path(dest)
    if dest.exists():
        raise RepoError("archive_unsupported", f"The destination {dest} already exists.")
    kind, members = _scan(archive)
    _check(members, limits)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        tree = tmp / "tree"
        tree.mkdir()
        try:
            _extract(archive, kind, members, tree, limits)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, RepoError):
                raise
            raise RepoError("archive_corrupt", f"The archive cannot be extracted: {exc}")
        top = [p for p in tree.iterdir()]
        root = top[0] if len(top) == 1 and top[0].is_dir() and not top[0].is_symlink() and not _has_git(tree) else tree
        if _has_git(root):
            _sanitize_git_dir(root / ".git")
            res = git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root, check=False, timeout=60)
            if res.returncode != 0:
                shutil.rmtree(root / ".git")
        if not _has_git(root):
            if (root / ".git").exists():
                shutil.rmtree(root / ".git") if (root / ".git").is_dir() else (root / ".git").unlink()
            git(["init", "--quiet"], root, timeout=60)
            git(["add", "--all"], root, timeout=600)
            res = git(["commit", "--quiet", "--no-verify", "--allow-empty", "-m", "Uploaded archive"], root,
                      timeout=600, env=ARCHIVE_AUTHOR)
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_repo(dest)


