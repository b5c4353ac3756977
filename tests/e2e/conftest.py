"""The real stack for end-to-end tests: `python -m training_hub.launcher` (embedded Redis, embedded
PostgreSQL, uvicorn, Dramatiq workers on queues gpu and default, the inference process) on free loopback
ports, with its own data dir, a tiny base model and an admin with an API key."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    url: str
    api_key: str
    admin_password: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=60)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


# What `make run` does before the launcher (migrate, ensure_admin, prepare_base_model, an API key), in one Python
# process rather than four `manage.py` runs: each would import Django and torch and start (and stop) the
# embedded PostgreSQL again. It migrates while the test builds the tiny model, and goes on once told it is built.
_PREPARE = r"""
import io, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("ensure_admin")
if sys.stdin.readline().strip() != "built":
    sys.exit("the tiny model was not built")
call_command("prepare_base_model", "--id", "tiny", "--path", sys.argv[1])
out = io.StringIO()
call_command("create_api_key", "admin", stdout=out)
print("API_KEY=" + out.getvalue().strip())
"""


def _prepare(env, tiny: Path, build) -> str:
    """Run _PREPARE, calling `build()` (which writes the tiny model to `tiny`) while it migrates."""
    proc = subprocess.Popen([sys.executable, "-c", _PREPARE, str(tiny)], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        build()
    except Exception:
        proc.communicate("", timeout=300)  # it exits by itself (stopping an embedded PostgreSQL it started)
        raise
    except BaseException:
        proc.kill()
        raise
    try:
        stdout, stderr = proc.communicate("built\n", timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"preparing the data dir failed:\n{stdout}\n{stderr}")
    return stdout.rsplit("API_KEY=", 1)[1].strip()


def start_stack(data_dir: Path, extra_env: dict | None = None):
    """Prepare a data dir (migrations, admin, tiny base model, API key) and start the launcher.
    A generator: yields the ready Stack, then stops it with Ctrl-C (SIGINT) like a user would."""
    from workers.engine.tiny import build_model

    tiny = data_dir / "tiny-model"
    corpus = [f"Question {i}: what is {i} plus {i}? Answer: {2 * i}." for i in range(50)]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(HUB_DATA_DIR=str(data_dir), HUB_PORT=str(port), HUB_INFERENCE_PORT=str(free_port()),
               DJANGO_SETTINGS_MODULE="training_hub.settings", PYTHONUNBUFFERED="1",
               # a deploy would otherwise start a llama.cpp compile on a machine with none (tests may turn it on)
               **{"HUB_SERVING_GGUF": "off", **(extra_env or {})})
    api_key = _prepare(env, tiny, lambda: build_model(tiny, size="nano", texts=corpus, vocab_size=400,
                                                      context_length=256))
    password = (data_dir / "admin_password").read_text().strip()
    log_path = data_dir / "stack.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "training_hub.launcher", "--ready-timeout", "120"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    s = Stack(url=url, api_key=api_key, admin_password=password, data_dir=data_dir, log_path=log_path, proc=proc)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the stack exited early ({proc.returncode}):\n{s.logs()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200 and "is ready" in log_path.read_text():
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the stack did not become ready:\n{s.logs()}")
        time.sleep(0.5)
    try:
        yield s
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if "DATABASE_URL" not in env:  # the launcher was the embedded PostgreSQL's last user: it stopped it
            from training_hub import embedded_postgres

            pgdata = data_dir / "postgres"
            running = embedded_postgres.is_running(pgdata)
            embedded_postgres.remove(pgdata)
            assert not running, f"the embedded PostgreSQL of {pgdata} still runs after the launcher stopped"


def chat_jsonl(n: int = 40) -> bytes:
    lines = []
    for i in range(n):
        a, b = i % 7 + 1, i % 5 + 2
        lines.append(json.dumps({"messages": [
            {"role": "system", "content": "You are a helpful arithmetic tutor."},
            {"role": "user", "content": f"What is {a} plus {b}? Please explain briefly."},
            {"role": "assistant", "content": f"{a} plus {b} equals {a + b}, because counting on from {a} by {b} gives {a + b}."},
        ]}))
    return ("\n".join(lines) + "\n").encode()


def wait_run(client: httpx.Client, run_id: int, statuses=("succeeded", "failed", "cancelled"), timeout=240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/runs/{run_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} did not reach {statuses}: {body}")


def upload_ready(client: httpx.Client, name: str, filename: str, content: bytes, timeout=180) -> int:
    """Upload through /api and return the version id once it is ready: 201 when the web process parsed
    it in the request, 202 when it went to the worker (a big file, or no tokenizer loaded in the web
    process yet) — then it is polled until ready."""
    r = client.post("/api/datasets", data={"name": name}, files={"file": (filename, content, "application/jsonl")})
    assert r.status_code in (201, 202), r.text
    body = r.json()
    deadline = time.monotonic() + timeout
    while body["status"] == "importing":
        assert time.monotonic() < deadline, f"version {body['id']} still importing after {timeout} s"
        time.sleep(0.25)
        r = client.get(f"/api/datasets/versions/{body['id']}")
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["status"] == "ready", body
    return body["id"]
