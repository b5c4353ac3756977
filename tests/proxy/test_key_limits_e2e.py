"""Keys and limits across two web processes: two real uvicorn processes of the hub (training_hub.asgi) share
one Redis (the embedded redis-server) and one database, behind no load balancer — the test alternates
between them. The requests-per-minute limit is one limit, not one per process; a limit changed or a key
revoked through one process applies in the other within a second (apps.core.invalidation)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import free_port
from tests.proxy.fake_upstream import ServerThread, create_fake_upstream

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MSG = [{"role": "user", "content": "hi"}]

SETUP = r"""
import json
from apps.accounts.services import api_key_create, user_create
from apps.registry.services import alias_deploy, model_version_register
admin = user_create(actor=None, username="boss", password="pw-123456", role="admin")
version = model_version_register(name="local", kind="adapter", base_model=None)
alias_deploy(actor=admin, version_id=version.pk, alias="production")
print(json.dumps({"admin_key": api_key_create(user=admin, name="setup").plaintext}))
"""


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"a hub process exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"a hub process did not start:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def two_hubs():
    from training_hub import embedded_redis

    data = Path(tempfile.mkdtemp(prefix="hub-keys-"))  # short: the redis unix socket lives here
    redis_proc, redis_url = embedded_redis.start(data)
    upstream = ServerThread(create_fake_upstream()).__enter__()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="training_hub.settings", HUB_DATA_DIR=str(data), PYTHONUNBUFFERED="1",
               DATABASE_URL=f"sqlite:///{data / 'hub.sqlite3'}", REDIS_URL=redis_url,
               HUB_INFERENCE_URL=upstream.url + "/v1", LOG_LEVEL="WARNING")
    procs: list[subprocess.Popen] = []
    try:
        for args in (["migrate", "--noinput", "-v", "0"], ["shell", "-c", SETUP]):
            out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
        admin_key = json.loads(out.stdout.strip().splitlines()[-1])["admin_key"]
        urls = []
        for name in ("a", "b"):
            port = free_port()
            log = data / f"web-{name}.log"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1",
                 "--port", str(port), "--no-access-log"], cwd=ROOT, env=env, stdout=open(log, "w"),
                stderr=subprocess.STDOUT, start_new_session=True))
            urls.append((f"http://127.0.0.1:{port}", log))
        for (url, log), proc in zip(urls, procs):
            _wait_healthy(url, proc, log)
        yield {"a": urls[0][0], "b": urls[1][0], "admin_key": admin_key, "redis_url": redis_url}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        upstream.__exit__(None, None, None)
        embedded_redis.stop(redis_proc)
        shutil.rmtree(data, ignore_errors=True)


def _create_key(hubs, via: str, **limits) -> dict:
    r = httpx.post(hubs[via] + "/api/api-keys", json={"name": "shared", **limits},
                   headers={"authorization": f"Bearer {hubs['admin_key']}"}, timeout=20)
    assert r.status_code == 201, r.text
    return r.json()


def _chat(url: str, key: str):
    with openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20) as client:
        return client.chat.completions.create(model="production", messages=MSG)


def test_the_rpm_limit_is_shared_by_two_web_processes(two_hubs):
    key = _create_key(two_hubs, "a", rpm=5)
    outcomes = []
    for i in range(8):  # a, b, a, b, ...
        via = "ab"[i % 2]
        try:
            _chat(two_hubs[via], key["key"])
            outcomes.append((via, 200))
        except openai.RateLimitError as exc:
            assert 1 <= int(exc.response.headers["retry-after"]) <= 60
            outcomes.append((via, 429))
    assert [s for _, s in outcomes] == [200] * 5 + [429] * 3, outcomes  # not 5 per process
    assert {v for v, s in outcomes if s == 200} == {"a", "b"} and {v for v, s in outcomes if s == 429} == {"a", "b"}


def test_a_limit_changed_or_a_key_revoked_in_one_process_applies_in_the_other(two_hubs):
    key = _create_key(two_hubs, "a", rpm=2)
    admin = {"authorization": f"Bearer {two_hubs['admin_key']}"}
    _chat(two_hubs["b"], key["key"])
    _chat(two_hubs["b"], key["key"])  # b has the key (rpm 2) in its cache now
    with pytest.raises(openai.RateLimitError):
        _chat(two_hubs["b"], key["key"])

    r = httpx.patch(f"{two_hubs['a']}/api/api-keys/{key['id']}", json={"rpm": 4}, headers=admin, timeout=20)
    assert r.status_code == 200 and r.json()["rpm"] == 4
    time.sleep(1.0)  # the invalidation reaches b within a second
    _chat(two_hubs["b"], key["key"])
    _chat(two_hubs["b"], key["key"])
    with pytest.raises(openai.RateLimitError):
        _chat(two_hubs["b"], key["key"])

    r = httpx.patch(f"{two_hubs['a']}/api/api-keys/{key['id']}", json={"allowed_aliases": ["staging"]},
                    headers=admin, timeout=20)
    assert r.status_code == 200
    time.sleep(1.0)
    with pytest.raises(openai.PermissionDeniedError):
        _chat(two_hubs["b"], key["key"])

    assert httpx.delete(f"{two_hubs['a']}/api/api-keys/{key['id']}", headers=admin, timeout=20).status_code == 204
    time.sleep(1.0)
    with pytest.raises(openai.AuthenticationError):
        _chat(two_hubs["b"], key["key"])
