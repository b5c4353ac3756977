"""Running the git CLI safely: no prompts, no hooks, no fsmonitor, no pager, C locale, bounded time.

Every git call of the engine goes through :func:`git`. Repositories may come from uploads, so the
configuration that can run programs (hooks, fsmonitor) is switched off on the command line.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

from workers.engine.repos.errors import RepoError

_SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*",
         "-c", "core.quotepath=false", "-c", "protocol.ext.allow=never", "-c", "core.pager=cat"]


def git_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                                                         "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
                                                         "HTTPS_PROXY", "NO_PROXY", "SSH_AUTH_SOCK")}
    env.update({"LC_ALL": "C", "LANG": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_OPTIONAL_LOCKS": "0", "GIT_PAGER": "cat"})
    env.setdefault("HOME", "/nonexistent")
    if extra:
        env.update(extra)
    return env


def git_binary() -> str:
    path = shutil.which("git")
    if not path:
        raise RepoError("git_missing", "The git command is not installed on this machine.")
    return path


def git(args: list[str], cwd, *, timeout: float | None = 300, input: bytes | None = None,
        check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``git <args>`` in ``cwd``; returns the CompletedProcess (bytes). Raises ``git_failed`` on a
    non-zero exit when ``check``, ``git_failed`` (timeout) when it runs past ``timeout``."""
    cmd = [git_binary(), *_SAFE, *args]
    try:
        proc = subprocess.Popen(cmd, cwd=str(cwd), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=git_env(env),
                                start_new_session=True)
    except FileNotFoundError as exc:
        raise RepoError("path_not_found", f"Folder not found: {cwd}") from exc
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise RepoError("git_failed", f"git {args[0]} did not finish within {timeout:.0f} s.", timeout=True)
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-600:]
        raise RepoError("git_failed", f"git {args[0]} failed: {tail or 'exit code %d' % proc.returncode}",
                        stderr=tail, returncode=proc.returncode)
    return result


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except Exception:  # pragma: no cover - a child keeping the pipe open
        pass
