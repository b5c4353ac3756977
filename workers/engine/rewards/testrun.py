"""Running a task's Python tests against an answer's code: in a fresh temporary folder, through the repository
sandbox (workers/engine/repos/sandbox.run_command: its own session killed at the timeout, CPU / memory / file /
process limits, and, when the engine runs as root, an unprivileged uid per concurrent run).

The folder holds ``solution.py`` (the answer's code), ``test_solution.py`` (the task's tests) and a stdlib-only
runner. The runner imports ``solution`` and executes the tests in a namespace that already holds the solution's
names (so tests may call ``add(1, 2)`` directly or ``from solution import add``); then it calls every top-level
``test*`` function. The score is the fraction that pass; tests without such functions (module-level asserts) pass
or fail as a whole. The runner's result line carries a random nonce taken from the environment (removed before
the answer's code runs), so an answer cannot pass by printing a fixed result line. Code in the same process can
still subvert its own test run by deliberate means (exiting the interpreter early counts as a failure, but
patching the runner cannot be ruled out); treat this as a verifier against mistakes, not against adversaries.
"""
from __future__ import annotations

import json
import math
import os
import queue
import secrets
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from workers.engine.repos.sandbox import SandboxLimits, run_command

REWARD_UID_BASE = 1_750_000_000
SLOTS = 64
_slots: queue.Queue = queue.Queue()
for _i in range(SLOTS):
    _slots.put(_i)

RUNNER = r'''
import json, os, sys, traceback, types
nonce = os.environ.pop("HUB_REWARD_NONCE", "")
sys.path.insert(0, os.getcwd())
sys.setrecursionlimit(3000)
result = {"passed": 0, "failed": 0, "failures": [], "stage": "import"}
def report():
    sys.stdout.write("\n@@hub-result-" + nonce + "@@" + json.dumps(result) + "\n")
    sys.stdout.flush()
try:
    import solution
except BaseException as exc:
    result["failed"] = 1
    why = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    result["failures"].append("importing the answer's code: " + why)
    report()
    sys.exit(0)
ns = {k: v for k, v in vars(solution).items() if not k.startswith("__")}
ns["__name__"] = "test_solution"
result["stage"] = "tests"
try:
    src = open("test_solution.py", encoding="utf-8").read()
    exec(compile(src, "test_solution.py", "exec"), ns)
except BaseException as exc:
    result["failed"] = 1
    result["failures"].append("running the tests: " + "".join(traceback.format_exception_only(type(exc), exc)).strip())
    report()
    sys.exit(0)
tests = [(k, v) for k, v in ns.items() if k.startswith("test") and isinstance(v, types.FunctionType)
         and v.__code__.co_filename == "test_solution.py"]
if not tests:
    result["passed"] = 1
for name, fn in tests:
    try:
        fn()
        result["passed"] += 1
    except BaseException as exc:
        result["failed"] += 1
        why = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        result["failures"].append(name + ": " + why)
report()
'''


def _reachable(path: str) -> bool:
    """Can any user execute ``path`` (every folder above it searchable by others, the file o+rx)?"""
    p = Path(path).resolve()
    try:
        if (p.stat().st_mode & (stat.S_IROTH | stat.S_IXOTH)) != (stat.S_IROTH | stat.S_IXOTH):
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


def interpreter(unprivileged: bool) -> str:
    """The Python that runs the tests: this one, unless an unprivileged uid cannot reach it (a pyenv under
    /root), then the system's."""
    if not unprivileged or _reachable(sys.executable):
        return sys.executable
    for cand in (shutil.which("python3") or "", "/usr/bin/python3", "/usr/local/bin/python3"):
        if cand and _reachable(cand):
            return cand
    raise RuntimeError("no Python interpreter is reachable by the unprivileged sandbox user")


def run_tests(code: str, tests: str, *, timeout: float) -> tuple[float, str]:
    """``(fraction passed, detail)``; raises RuntimeError when the run itself failed (timeout, crash)."""
    slot = _slots.get()
    root = Path(tempfile.mkdtemp(prefix="hub-reward-"))
    try:
        uid = REWARD_UID_BASE + (os.getpid() % 1_000_000) * SLOTS + slot if os.geteuid() == 0 else None
        (root / "solution.py").write_text(code, encoding="utf-8")
        (root / "test_solution.py").write_text(tests, encoding="utf-8")
        (root / "hub_runner.py").write_text(RUNNER, encoding="utf-8")
        if uid is not None:
            for p in [root, *root.iterdir()]:
                os.chown(p, uid, uid)
        limits = SandboxLimits(cpu_seconds=max(1, math.ceil(timeout)) + 1, address_space_bytes=2 * 1024 ** 3,
                               max_processes=32, file_size_bytes=16 * 1024 ** 2, open_files=256, run_as_uid=uid)
        nonce = secrets.token_hex(8)
        py = interpreter(uid is not None)
        res = run_command(f"exec {py} -E -s -B hub_runner.py", root, timeout=timeout, limits=limits,
                          env={"HUB_REWARD_NONCE": nonce, "PYTHONHASHSEED": "0"})
        marker = f"@@hub-result-{nonce}@@"
        line = next((ln for ln in reversed(res.output_tail.splitlines()) if ln.startswith(marker)), None)
        if res.status == "timeout":
            raise RuntimeError(f"the tests did not finish within {timeout:.3g} s (killed)")
        if line is None:
            tail = res.output_tail.strip()[-300:]
            raise RuntimeError(f"the test run ended without a result ({res.message}){': ' + tail if tail else ''}")
        data = json.loads(line[len(marker):])
        total = data["passed"] + data["failed"]
        frac = data["passed"] / total if total else 0.0
        detail = f"{data['passed']}/{total} tests passed"
        if data["failures"]:
            detail += "; " + "; ".join(f[:200] for f in data["failures"][:3])
        return frac, detail
    finally:
        shutil.rmtree(root, ignore_errors=True)
        _slots.put(slot)
