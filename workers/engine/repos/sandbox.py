"""Running a repository's own test command, which executes its code: only when the user opts in, never in
the web process, in a temporary copy of the tree at one commit, with a timeout and resource limits.

* A new session (process group) per run; at the timeout the whole group is SIGKILLed.
* ``setrlimit`` in the child: CPU seconds, address space, file size, open files, no core files, and a
  process count (RLIMIT_NPROC) against fork bombs.
* When the engine runs as root (RLIMIT_NPROC does not bind root), the command runs as a dedicated
  unprivileged uid that owns nothing but the copy; after the run every process of that uid is killed,
  so nothing it started (even in a new session) survives.
"""
from __future__ import annotations

import collections
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from workers.engine.repos.gitcmd import _SAFE, git_binary, git_env

SANDBOX_UID_BASE = 1_700_000_000
TAIL_BYTES = 4096


@dataclass
class SandboxLimits:
    cpu_seconds: int = 120
    address_space_bytes: int = 4 * 1024 ** 3
    max_processes: int = 256
    file_size_bytes: int = 256 * 1024 ** 2
    open_files: int = 1024
    run_as_uid: int | None = None   # None: a dedicated uid when running as root, the current user otherwise


@dataclass
class CommandResult:
    status: str           # passed | failed | timeout | error
    returncode: int | None
    duration_s: float
    output_tail: str
    killed: bool
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def uid_processes(uid: int) -> list[int]:
    """Live (not zombie) pids whose real uid is ``uid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                state = ""
                for line in fh:
                    if line.startswith("State:"):
                        state = line.split()[1]
                    elif line.startswith("Uid:"):
                        if int(line.split()[1]) == uid and state != "Z":
                            out.append(int(entry))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return out


def sandbox_uid(limits: SandboxLimits) -> int | None:
    if limits.run_as_uid is not None:
        return limits.run_as_uid
    if os.geteuid() == 0:
        return SANDBOX_UID_BASE + os.getpid() % 10_000_000
    return None


def _preexec(limits: SandboxLimits, uid: int | None, nproc: int):
    def apply():  # runs in the child between fork and exec: keep it to system calls
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes, limits.address_space_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    return apply


def _become(uid: int):
    def apply():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    return apply


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``: a shell running as that uid does ``kill -9 -1``, which reaches exactly
    the processes the uid owns (even those that left the process group), until none is left."""
    for _ in range(100):
        if not uid_processes(uid):
            return
        subprocess.run(["/bin/sh", "-c", "kill -9 -1"], preexec_fn=_become(uid), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
                       cwd="/", check=False)
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(cmd: str, cwd, *, timeout: float = 60, limits: SandboxLimits | None = None,
                env: dict | None = None) -> CommandResult:
    """Run ``cmd`` with ``/bin/sh -c`` in ``cwd`` under the limits. Never raises for the command's behaviour:
    a hang or a fork bomb comes back as ``status="timeout"`` with a message."""
    limits = limits or SandboxLimits()
    uid = sandbox_uid(limits)
    if uid is None:
        nproc = len(uid_processes(os.getuid())) + limits.max_processes
    else:
        nproc = limits.max_processes
    home = Path(cwd)
    base_env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(home), "USER": "sandbox",
                "LOGNAME": "sandbox", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": str(home / ".tmp"),
                "PYTHONDONTWRITEBYTECODE": "1", "CI": "1", "NO_COLOR": "1"}
    (home / ".tmp").mkdir(exist_ok=True)
    if uid is not None:
        os.chown(home / ".tmp", uid, uid)
    if env:
        base_env.update(env)
    tail: collections.deque = collections.deque()
    size = [0]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=str(cwd), env=base_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_preexec(limits, uid, nproc))
    except (OSError, subprocess.SubprocessError) as exc:
        return CommandResult("error", None, 0.0, "", False, f"The test command could not start: {exc}")

    def reader():
        for chunk in iter(lambda: proc.stdout.read1(8192) if hasattr(proc.stdout, "read1") else proc.stdout.read(8192), b""):
            tail.append(chunk)
            size[0] += len(chunk)
            while size[0] - len(tail[0]) >= TAIL_BYTES and len(tail) > 1:
                size[0] -= len(tail.popleft())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    killed = False
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        killed = True
        _kill_group(proc.pid)
        if uid is not None:
            kill_uid(uid)
        rc = proc.wait()
    # Whatever the command left running (daemons, a bomb in another session) goes too.
    _kill_group(proc.pid)
    if uid is not None:
        kill_uid(uid)
    th.join(timeout=5)
    proc.stdout.close()
    duration = time.monotonic() - started
    out = b"".join(tail)[-TAIL_BYTES:].decode("utf-8", "replace")
    if killed:
        return CommandResult("timeout", None, round(duration, 3), out, True,
                             f"The test command did not finish within {timeout:g} s; it was killed together with "
                             "every process it started.")
    if rc == 0:
        return CommandResult("passed", 0, round(duration, 3), out, False, "The test command passed.")
    if rc < 0:
        sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        why = " (CPU time limit)" if -rc == signal.SIGXCPU else " (file size limit)" if -rc == signal.SIGXFSZ else ""
        return CommandResult("failed", rc, round(duration, 3), out, False,
                             f"The test command was stopped by signal {sig}{why}.")
    if rc in (126, 127) and uid is not None and ("ermission denied" in out or "not found" in out):
        return CommandResult("failed", rc, round(duration, 3), out, False,
                             f"The test command failed (exit code {rc}): it runs as an unprivileged sandbox user (uid "
                             f"{uid}), who cannot run a program it names; programs under /root are not reachable. "
                             "Use interpreters and tools that every user can read.")
    return CommandResult("failed", rc, round(duration, 3), out, False, f"The test command failed (exit code {rc}).")


def export_tree(repo_path, commit: str, dest: Path) -> None:
    """The tree at ``commit`` into ``dest`` (``git archive`` streamed through tarfile's data filter)."""
    proc = subprocess.Popen([git_binary(), *_SAFE, "archive", "--format=tar", commit], cwd=str(repo_path),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env())
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
            for member in tf:
                try:
                    member = tarfile.data_filter(member, str(dest))
                except tarfile.FilterError:
                    continue
                tf.extract(member, str(dest), set_attrs=True, filter="fully_trusted")
    finally:
        proc.stdout.close()
        proc.wait()


class TestSandbox:
    """A temporary copy of the tree at one commit where the test command runs, once as it is (the
    baseline) and then once per candidate change of one file (restored after each run)."""
    __test__ = False  # not a pytest class

    def __init__(self, repo_path, commit: str, command: str, *, timeout: float = 60,
                 limits: SandboxLimits | None = None):
        self.repo_path, self.commit, self.command, self.timeout = repo_path, commit, command, timeout
        self.limits = limits or SandboxLimits()
        self.uid = sandbox_uid(self.limits)
        self.root: Path | None = None
        self.work: Path | None = None
        self.runs: list[dict] = []

    def __enter__(self) -> "TestSandbox":
        self.root = Path(tempfile.mkdtemp(prefix="hub-tests-"))
        self.work = self.root / "work"
        self.work.mkdir()
        export_tree(self.repo_path, self.commit, self.work)
        if self.uid is not None:
            os.chown(self.root, self.uid, self.uid)
            for dirpath, dirnames, filenames in os.walk(self.work):
                os.chown(dirpath, self.uid, self.uid)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), self.uid, self.uid, follow_symlinks=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.uid is not None:
            kill_uid(self.uid)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def run(self, label: str) -> CommandResult:
        result = run_command(self.command, self.work, timeout=self.timeout, limits=self.limits)
        self.runs.append({"label": label, **result.as_dict()})
        return result

    def run_with(self, path: str, content: str, label: str) -> CommandResult:
        target = self.work / path
        original = target.read_bytes()
        try:
            target.write_text(content, encoding="utf-8")
            return self.run(label)
        finally:
            target.write_bytes(original)
