"""The lock scenario, against a running stack (shared by tests/e2e/test_lock_scenario.py and
bench/bench_lock.py).

Member A uploads a big file of short lines while members B and C keep working through the dashboard and
the API — creating API keys (POST /api/api-keys), logging in, opening pages — and C's tiny training run
trains. B's and C's requests are sent on a fixed schedule (open loop: a slow answer does not delay the next
request, so a stall shows in the latencies instead of hiding as fewer requests). The measured window runs
from A's upload until its import has finished (the run trains all along: it is running before the upload
starts); the load goes on until the run has finished too, and 5xx are counted over all of it.

The issue this guards against: a 200k-line upload parsed inside the request in one transaction held the
database for a minute; another user's API-key request got a 500 ("database is locked"), a login waited
23 s and a training run failed.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "lock-scenario-pw"


def short_lines(n: int) -> bytes:
    """`n` short, distinct prompt/completion rows (~40 bytes a line, like the 200k-line upload)."""
    return "".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i % 9973}"}, separators=(",", ":")) + "\n"
                   for i in range(n)).encode()


def train_jsonl(n: int = 40) -> bytes:
    rows = []
    for i in range(n):
        a, b = i % 7 + 1, i % 5 + 2
        rows.append(json.dumps({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                             {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}))
    return ("\n".join(rows) + "\n").encode()


class Browser:
    """One user's session: logs in through the login form and sends the CSRF token like the dashboard."""

    def __init__(self, url: str, username: str, password: str = PASSWORD, timeout: float = 90.0):
        self.url, self.username, self.password, self.timeout = url, username, password, timeout
        self.http = httpx.Client(base_url=url, timeout=timeout, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))

    def close(self):
        self.http.close()

    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken") or ""

    def login(self, http: httpx.Client | None = None) -> httpx.Response:
        http = http or self.http
        http.get("/accounts/login/")
        r = http.post("/accounts/login/", data={"username": self.username, "password": self.password,
                                                "csrfmiddlewaretoken": http.cookies.get("csrftoken") or ""},
                      headers={"Referer": f"{self.url}/accounts/login/"})
        if r.status_code != 302:
            raise AssertionError(f"login of {self.username} failed: {r.status_code} {r.text[:300]}")
        return r

    def post_form(self, path: str, data: dict) -> httpx.Response:
        self.http.get(path)
        return self.http.post(path, data={**data, "csrfmiddlewaretoken": self.csrf()},
                              headers={"Referer": f"{self.url}{path}"})

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"X-CSRFToken": self.csrf(), "Referer": f"{self.url}/", **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)


@dataclass
class Sample:
    user: str
    kind: str
    started: float  # seconds since the load started
    seconds: float
    status: int  # 0: no answer (timeout, connection error)
    error: str = ""


@dataclass
class LockResult:
    lines: int
    upload_status: int = 0
    upload_seconds: float = 0.0
    import_status: str = ""
    import_mode: str = ""  # "inline" (201: parsed in the request) or "worker" (202)
    import_seconds: float = 0.0
    example_count: int = 0
    run_status: str = ""
    run_error: str = ""
    run_seconds: float = 0.0  # from the upload to the run's end
    window: tuple[float, float] = (0.0, 0.0)
    samples: list[Sample] = field(default_factory=list)
    loadavg: tuple[float, float] = (0.0, 0.0)  # the host's 1-minute load average at the upload and at the end
    slowdown: float = float("nan")  # CpuShare's median factor during the import window
    server_slowdown: float = float("nan")  # ServerShare's factor over the import window (the web server's own)

    @property
    def cpu_factor(self) -> float:
        """How much slower CPU-bound work ran during the import than on an idle core: the web server's own
        figure where Linux reports it, else the probe's; never below 1."""
        for f in (self.server_slowdown, self.slowdown):
            if not math.isnan(f):
                return max(1.0, f)
        return 1.0

    def before(self) -> list[Sample]:
        """The same load before the upload (the run already training): the baseline."""
        return [s for s in self.samples if s.started < self.window[0]]

    def in_window(self) -> list[Sample]:
        a, b = self.window
        return [s for s in self.samples if a <= s.started <= b]

    def latencies(self) -> list[float]:
        return sorted(s.seconds for s in self.in_window())

    def pct(self, q: float) -> float:
        xs = self.latencies()
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, max(0, round(q * len(xs) + 0.5) - 1))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies()) if self.latencies() else float("nan")

    @property
    def p95(self) -> float:
        return self.pct(0.95)

    @property
    def max(self) -> float:
        return max(self.latencies(), default=float("nan"))

    @property
    def server_errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status >= 500]

    @property
    def no_answer(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 0]

    def by_kind(self) -> dict[str, tuple[int, float, float, float]]:
        out = {}
        for kind in sorted({s.kind for s in self.in_window()}):
            xs = sorted(s.seconds for s in self.in_window() if s.kind == kind)
            out[kind] = (len(xs), statistics.median(xs), xs[min(len(xs) - 1, round(0.95 * len(xs) + 0.5) - 1)], xs[-1])
        return out

    def summary(self) -> str:
        every = sorted(s.seconds for s in self.samples) or [float("nan")]
        base = sorted(s.seconds for s in self.before()) or [float("nan")]
        lines = [f"upload of {self.lines} lines: HTTP {self.upload_status} in {self.upload_seconds:.2f} s "
                 f"({self.import_mode}); import {self.import_status} ({self.example_count} examples) after "
                 f"{self.import_seconds:.1f} s; run {self.run_status} after {self.run_seconds:.1f} s"
                 f"{': ' + self.run_error if self.run_error else ''}",
                 f"other users' requests during the import ({len(self.in_window())} requests, "
                 f"{self.window[1] - self.window[0]:.1f} s): p50 {self.p50 * 1000:.0f} ms, p95 {self.p95 * 1000:.0f} ms, "
                 f"max {self.max * 1000:.0f} ms; 5xx: {len(self.server_errors)}; no answer: {len(self.no_answer)} "
                 f"(all {len(self.samples)} requests: p50 {statistics.median(every) * 1000:.0f} ms, "
                 f"max {every[-1] * 1000:.0f} ms)",
                 f"baseline, the same load before the upload ({len(base)} requests): p50 "
                 f"{statistics.median(base) * 1000:.0f} ms, max {base[-1] * 1000:.0f} ms; load average "
                 f"{self.loadavg[0]:.1f} at the start, {self.loadavg[1]:.1f} at the end; CPU-bound work ran "
                 f"{self.slowdown:.1f}x slower than on an idle core during the import (a probe process), "
                 f"{self.server_slowdown:.1f}x in the web server (its threads' CPU wait)"]
        for kind, (n, p50, p95, mx) in self.by_kind().items():
            lines.append(f"  {kind:<14} n={n:<4} p50 {p50 * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms  max {mx * 1000:6.0f} ms")
        return "\n".join(lines)


def _admin_creates_users(admin: Browser, names: list[str]) -> None:
    for name in names:
        r = admin.post_form("/accounts/users/", {"username": name, "password": PASSWORD, "role": "member"})
        if r.status_code != 302:
            raise AssertionError(f"creating user {name} failed: {r.status_code} {r.text[:300]}")


_PROBE = r"""
import sys, time
while True:
    wall, cpu = time.perf_counter(), time.process_time()
    while time.process_time() - cpu < 0.03:
        pass
    sys.stdout.write(f"{(time.perf_counter() - wall) / (time.process_time() - cpu):.3f}\n")
    sys.stdout.flush()
    time.sleep(0.3)
"""


class CpuShare:
    """How busy the host is: a child process burns 30 ms of CPU every ~0.3 s and reports wall / CPU time,
    i.e. how many times longer a CPU-bound piece of work (a login's password hash, a page render) takes
    than on an idle core (1.0: idle; 4.0: a quarter of a core). Read beside the latencies: a shared
    machine slows every request by that factor, whatever the code does."""

    def __init__(self, clock):
        self.clock = clock
        self.points: list[tuple[float, float]] = []
        self.proc = subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.points.append((self.clock(), float(line)))
            except ValueError:
                pass

    def factor(self, start: float, end: float) -> float:
        xs = [f for t, f in self.points if start <= t <= end]
        return statistics.median(xs) if xs else float("nan")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=5)


def _descendants(pid: int) -> list[int]:
    """`pid`'s descendants (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def web_server_pid(launcher_pid: int) -> int | None:
    """The web server process (uvicorn) the launcher started, or None where /proc cannot tell."""
    for pid in _descendants(launcher_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"uvicorn") for part in cmdline):
            return pid
    return None


class ServerShare:
    """How much longer CPU-bound work took in the web server itself than on an idle core: for the server's
    threads, (time on a CPU + time runnable but waiting for one) / time on a CPU, from Linux's per-thread
    schedstat, sampled every 0.25 s. Unlike CpuShare this sees the server's own scheduling: the stack runs
    in a session of its own, and with autogroup scheduling (most desktop and CI kernels) the training run
    and the import worker of that session share one group's CPU with the server, whatever the rest of the
    machine does. Waiting for a lock (a stall behind the import) is sleeping, not runnable: not counted."""

    INTERVAL_S = 0.25

    def __init__(self, pid: int, clock):
        self.pid, self.clock = pid, clock
        self.points: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _read(self) -> dict[str, tuple[int, int]]:
        out = {}
        for path in Path(f"/proc/{self.pid}/task").glob("*/schedstat"):
            try:
                run_ns, wait_ns = path.read_text().split()[:2]
            except (OSError, ValueError):
                continue
            out[path.parent.name] = (int(run_ns), int(wait_ns))
        return out

    def _sample(self):
        while not self.stopped.is_set():
            self.points.append((self.clock(), self._read()))
            self.stopped.wait(self.INTERVAL_S)

    def factor(self, start: float, end: float) -> float:
        """(Δrun + Δwait) / Δrun between the samples closest to `start` and `end`, over the threads alive at
        both (Django runs each request's sync code on a thread of its own: those come and go); nan when the
        server ran for under 50 ms in between (too little to tell)."""
        if not self.points:
            return float("nan")
        a = min(self.points, key=lambda p: abs(p[0] - start))[1]
        b = min(self.points, key=lambda p: abs(p[0] - end))[1]
        run = sum(b[t][0] - a[t][0] for t in a.keys() & b.keys())
        wait = sum(b[t][1] - a[t][1] for t in a.keys() & b.keys())
        return (run + wait) / run if run >= 50e6 else float("nan")

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)


class _Load:
    """B's and C's requests on a fixed schedule, each on its own thread."""

    ROTATION = ("api_key", "page_datasets", "api_runs", "api_key", "page_runs", "login", "page_home", "api_key")

    def __init__(self, browsers: list[Browser], interval_s: float):
        self.browsers = browsers
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lock-load")
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._schedule, args=(b, i), daemon=True)
                        for i, b in enumerate(browsers)]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self):
        for t in self.threads:
            t.start()

    def _schedule(self, b: Browser, offset: int):
        k = offset * 3
        next_at = time.monotonic() + offset * self.interval_s / max(1, len(self.browsers))
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            kind = self.ROTATION[k % len(self.ROTATION)]
            k += 1
            self.pool.submit(self._one, b, kind)
            next_at += self.interval_s

    def _one(self, b: Browser, kind: str):
        started = self.now()
        t = time.monotonic()
        status, error = 0, ""
        try:
            if kind == "api_key":
                r = b.api("POST", "/api/api-keys", json={"name": f"k-{uuid.uuid4().hex[:8]}"})
                ok = r.status_code == 201
            elif kind == "login":
                with httpx.Client(base_url=b.url, timeout=b.timeout, follow_redirects=False) as fresh:
                    fresh.get("/accounts/login/")  # the form (not timed: a page like the others)
                    t = time.monotonic()
                    started = self.now()
                    r = fresh.post("/accounts/login/",
                                   data={"username": b.username, "password": b.password,
                                         "csrfmiddlewaretoken": fresh.cookies.get("csrftoken") or ""},
                                   headers={"Referer": f"{b.url}/accounts/login/"})
                ok = r.status_code == 302
            else:
                path = {"page_datasets": "/datasets/", "page_runs": "/runs/", "page_home": "/",
                        "api_runs": "/api/runs"}[kind]
                r = b.http.get(path)
                ok = r.status_code == 200
            status = r.status_code
            if not ok:
                error = r.text[:300]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        sample = Sample(user=b.username, kind=kind, started=started, seconds=time.monotonic() - t, status=status,
                        error=error)
        with self.lock:
            self.samples.append(sample)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.pool.shutdown(wait=True)


def _wait_version(b: Browser, version_id: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        v = b.api("GET", f"/api/datasets/versions/{version_id}").json()
        if v["status"] != "importing":
            assert v["status"] == "ready", v
            return v
        assert time.monotonic() < deadline, f"version {version_id} still importing after {timeout_s:.0f} s"
        time.sleep(0.3)


def run_lock_scenario(url: str, admin_password: str, *, lines: int = 100_000, interval_s: float = 0.5,
                      max_steps: int = 30, timeout_s: float = 600.0, base_model: str = "tiny",
                      baseline_s: float = 5.0, server_pid: int | None = None, log=print) -> LockResult:
    tag = uuid.uuid4().hex[:6]
    a_name, b_name, c_name = f"alice-{tag}", f"bob-{tag}", f"carol-{tag}"
    admin = Browser(url, "admin", admin_password)
    alice, bob, carol = (Browser(url, n) for n in (a_name, b_name, c_name))
    result = LockResult(lines=lines)
    payload = short_lines(lines)
    load = probe = server = None
    try:
        admin.login()
        # C first: her small training set is imported while the admin creates A and B and they log in.
        _admin_creates_users(admin, [c_name])
        carol.login()
        # C's small training set and tiny run (queued first: it trains while A's file is imported).
        r = carol.api("POST", "/api/datasets", data={"name": f"train-{tag}"},
                      files={"file": ("train.jsonl", train_jsonl(40), "application/jsonl")})
        assert r.status_code in (201, 202), r.text
        train_version = r.json()["id"]
        _admin_creates_users(admin, [a_name, b_name])
        for b in (alice, bob):
            b.login()
        _wait_version(carol, train_version, 180)
        r = carol.api("POST", "/api/runs", json={
            "dataset_version_id": train_version, "base_model": base_model,
            "hyperparameters": {"max_steps": max_steps, "batch_size": 4, "learning_rate": 3e-3, "max_seq_len": 128,
                                "lora_r": 8}})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        deadline = time.monotonic() + 180
        while carol.api("GET", f"/api/runs/{run_id}").json()["status"] == "queued":  # the worker has it
            assert time.monotonic() < deadline, "the run was never picked up"
            time.sleep(0.2)

        load = _Load([bob, carol], interval_s)
        probe = CpuShare(load.now)
        server = ServerShare(server_pid, load.now) if server_pid else None
        load.start()
        time.sleep(baseline_s)  # the same load before the upload: the baseline
        start_load = os.getloadavg()[0]
        log(f"uploading {lines} lines ({len(payload) / 1e6:.1f} MB) as {a_name}")
        w0 = load.now()
        t = time.monotonic()
        r = alice.api("POST", "/api/datasets", data={"name": f"big-{tag}"},
                      files={"file": ("lines.jsonl", payload, "application/jsonl")})
        result.upload_seconds = time.monotonic() - t
        result.upload_status = r.status_code
        assert r.status_code in (201, 202), r.text[:500]
        result.import_mode = "inline" if r.status_code == 201 else "worker"
        version_id = r.json()["id"]
        deadline = time.monotonic() + timeout_s
        import_done = run_done = None
        while import_done is None or run_done is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the scenario did not finish within {timeout_s:.0f} s")
            if import_done is None:
                v = alice.api("GET", f"/api/datasets/versions/{version_id}").json()
                if v["status"] != "importing":
                    import_done = load.now()
                    result.import_status, result.example_count = v["status"], v.get("example_count") or 0
                    result.import_seconds = import_done - w0
                    log(f"import {v['status']} after {result.import_seconds:.1f} s")
            if run_done is None:
                run = carol.api("GET", f"/api/runs/{run_id}").json()
                if run["status"] in ("succeeded", "failed", "cancelled"):
                    run_done = load.now()
                    result.run_status, result.run_error = run["status"], run.get("error") or ""
                    result.run_seconds = run_done - w0
                    log(f"run {run['status']} at {run_done - w0:.1f} s")
            time.sleep(0.5)
        result.window = (w0, import_done)
        result.loadavg = (start_load, os.getloadavg()[0])
    finally:
        if load is not None:
            load.finish()
            result.samples = list(load.samples)
        if probe is not None:
            probe.stop()
            result.slowdown = probe.factor(*result.window)
        if server is not None:
            server.stop()
            result.server_slowdown = server.factor(*result.window)
        for b in (admin, alice, bob, carol):
            b.close()
    return result


def write_samples(result: LockResult, path: Path) -> None:
    """Every sample as JSON lines (for a closer look)."""
    with open(path, "w") as fh:
        for s in result.samples:
            fh.write(json.dumps(s.__dict__) + "\n")
