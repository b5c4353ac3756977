"""Running a llama.cpp tool (or its Python converter) as a child process: its output is read line by line (tqdm's
carriage returns count as line ends) into a log file and a callback, a cancel request stops it, and the child's own
peak memory comes back from wait4. Contract: `run(cmd, ...) -> Result`; never raises for a non-zero exit."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Result:
    returncode: int
    tail: str  # the last lines of its output
    peak_rss_mb: float
    seconds: float
    cancelled: bool = False


def run(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None, log_path: Path | None = None,
        on_line: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None,
        tail_lines: int = 30, nice: int = 0) -> Result:
    t0 = time.monotonic()
    tail: deque[str] = deque(maxlen=tail_lines)
    log = open(log_path, "ab") if log_path else None
    preexec = (lambda: os.nice(nice)) if nice else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec)
    cancelled, finished = threading.Event(), threading.Event()

    def watch() -> None:  # a silent child (a long compile step) still stops promptly on cancel
        while not finished.is_set():  # (never poll(): that would reap the child before wait4 reads its usage)
            if should_stop is not None and should_stop():
                cancelled.set()
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    return
                return
            finished.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    buf = b""
    try:
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            if log:
                log.write(chunk)
            buf += chunk
            parts = buf.replace(b"\r", b"\n").split(b"\n")
            buf = parts.pop()
            for raw in parts:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    tail.append(line)
                    if on_line:
                        on_line(line)
        if buf.strip():
            tail.append(buf.decode("utf-8", "replace").rstrip())
    finally:
        if log:
            log.close()
        _, status, usage = os.wait4(proc.pid, 0)
        finished.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Result(returncode=proc.returncode, tail="\n".join(tail), peak_rss_mb=usage.ru_maxrss / 1024.0,
                  seconds=time.monotonic() - t0, cancelled=cancelled.is_set())
