"""Where repositories come from: a local path, a folder of repositories, a git URL (uploaded archives:
``archives.py``).

Every function returns a :class:`RepoInfo` (the commit it resolved) or raises :class:`RepoError` with
a stable code. Nothing is left half-made: clones and archives are written to a temporary folder beside
the destination and renamed into place only when complete.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from workers.engine.repos.errors import RepoError
from workers.engine.repos.gitcmd import git, git_binary, git_env, kill_group

CLONE_MARKER = "hub-clone"  # a file in the git dir of clones made by :func:`clone` (update() fetches only those)
_HEX40 = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass
class RepoInfo:
    path: str
    commit: str
    branch: str | None
    remote_url: str | None
    commit_time: str
    subject: str
    is_bare: bool

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------- local
def open_repo(path, *, commit: str = "HEAD") -> RepoInfo:
    """Resolve ``commit`` in the repository at ``path`` (a work tree, a folder inside one, or a bare repo)."""
    git_binary()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise RepoError("path_not_found", f"Folder not found: {p}")
    res = git(["rev-parse", "--is-bare-repository", "--absolute-git-dir"], p, check=False, timeout=30)
    if res.returncode != 0:
        raise RepoError("not_a_git_repo", f"{p} is not a git repository (no .git folder found).")
    lines = res.stdout.decode().split()
    is_bare = lines[0] == "true"
    git_dir = Path(lines[1])
    if is_bare:
        root = git_dir
    else:
        top = git(["rev-parse", "--show-toplevel"], p, timeout=30).stdout.decode().strip()
        root = Path(top)
    res = git(["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], root, check=False, timeout=30)
    if res.returncode != 0:
        if commit == "HEAD" or not _has_commits(root):
            raise RepoError("empty_repo", f"The repository at {root} has no commits yet.")
        raise RepoError("unknown_commit", f"Commit or branch `{commit}` does not exist in {root}.")
    sha = res.stdout.decode().strip()
    meta = git(["show", "-s", "--format=%cI%x00%s", sha], root, timeout=30).stdout.decode("utf-8", "replace")
    ctime, _, subject = meta.rstrip("\n").partition("\x00")
    branch = git(["symbolic-ref", "--quiet", "--short", "HEAD"], root, check=False, timeout=30).stdout.decode().strip()
    remote = git(["config", "--get", "remote.origin.url"], root, check=False, timeout=30).stdout.decode().strip()
    return RepoInfo(path=str(root), commit=sha, branch=branch or None, remote_url=_redact(remote) or None,
                    commit_time=ctime, subject=subject, is_bare=is_bare)


def _has_commits(root: Path) -> bool:
    res = git(["for-each-ref", "--count=1", "--format=%(objectname)"], root, check=False, timeout=30)
    return bool(res.stdout.strip())


def _redact(url: str) -> str:
    """Drop credentials from a URL (https://user:token@host/... -> https://host/...)."""
    return re.sub(r"^(\w+://)[^/@]+@", r"\1", url)


def discover(folder, *, max_depth: int = 3) -> list[RepoInfo]:
    """Git repositories inside ``folder`` (itself included), sorted by path. Empty repositories are skipped."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise RepoError("path_not_found", f"Folder not found: {root}")
    found: list[RepoInfo] = []
    skip = {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", "site-packages"}
    root_depth = len(root.resolve().parts)
    for dirpath, dirnames, _files in os.walk(root.resolve(), followlinks=False):
        here = Path(dirpath)
        depth = len(here.parts) - root_depth
        is_repo = (here / ".git").exists() or (here.name.endswith(".git") and (here / "HEAD").is_file()
                                                 and (here / "objects").is_dir())
        if is_repo:
            try:
                found.append(open_repo(here))
            except RepoError as exc:
                if exc.code not in ("empty_repo", "not_a_git_repo"):
                    raise
            if here.name.endswith(".git") and not (here / ".git").exists():
                dirnames[:] = []  # a bare repository: nothing inside is a work tree
        dirnames[:] = sorted(d for d in dirnames if d not in skip and depth < max_depth)
    return sorted(found, key=lambda r: r.path)


# --------------------------------------------------------------------------------------------- clone
_NETWORK_HINTS = ("could not resolve host", "failed to connect", "connection refused", "network is unreachable",
                  "connection timed out", "temporary failure in name resolution", "could not resolve hostname",
                  "no route to host", "name or service not known", "operation timed out")
_URL_RE = re.compile(r"^(https?|ssh|git|file)://\S+$|^[\w.-]+@[\w.-]+:\S+$")


def _run_clone(args: list[str], cwd, *, timeout: float, what: str) -> None:
    proc = subprocess.Popen([git_binary(), "-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never",
                             *args], cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=git_env(), start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise RepoError("clone_timeout", f"{what} did not finish within {timeout:.0f} s and was stopped.")
    if proc.returncode != 0:
        text = err.decode("utf-8", "replace").strip()
        low = text.lower()
        if any(h in low for h in _NETWORK_HINTS):
            raise RepoError("network_unavailable",
                            f"{what} failed: the network or the host is unreachable from this machine. "
                            f"Clone it elsewhere and upload an archive, or use a local path. ({text[-300:]})")
        raise RepoError("clone_failed", f"{what} failed: {text[-500:] or 'exit code %d' % proc.returncode}")


def clone(url: str, dest, *, timeout: float = 300, depth: int | None = None, progress=None) -> RepoInfo:
    """Clone ``url`` (bare) into ``dest`` (which must not exist)."""
    url = (url or "").strip()
    if not _URL_RE.match(url) or url.startswith("-"):
        raise RepoError("invalid_url", f"`{url}` is not a git URL (https://, ssh://, git://, file:// or user@host:path).")
    dest = Path(dest)
    if dest.exists():
        raise RepoError("clone_failed", f"The destination {dest} already exists.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=dest.parent))
    if progress:
        progress("clone", 0, 1)
    try:
        args = ["clone", "--bare", "--quiet"]
        if depth:
            args += ["--depth", str(int(depth))]
        _run_clone([*args, "--", url, str(tmp / "repo.git")], dest.parent, timeout=timeout,
                   what=f"Cloning {_redact(url)}")
        (tmp / "repo.git" / CLONE_MARKER).write_text(url)
        info = open_repo(tmp / "repo.git")  # raises empty_repo
        os.replace(tmp / "repo.git", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress("clone", 1, 1)
    info.path = str(dest.resolve())
    return info


def update(path, *, timeout: float = 300) -> RepoInfo:
    """Pick up new commits. For a clone made by :func:`clone`: fetch every branch from its origin. For a
    local path (the user's own checkout), nothing is changed: HEAD is re-read."""
    p = Path(path)
    marker = p / CLONE_MARKER
    if marker.is_file():
        _run_clone(["-C", str(p), "fetch", "--quiet", "--prune", "origin", "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*"], p, timeout=timeout, what="Fetching new commits")
    return open_repo(p)


def is_commit_sha(text: str) -> bool:
    return bool(_HEX40.match(text or ""))

