"""The optional teacher model, against a tiny fake OpenAI-compatible server: rewriting, rate limiting,
retries, resume from a cursor, and errors."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.engine_repos.checks import assert_exact
from workers.engine.repos import RepoError, TeacherConfig, enrich, estimate_teacher, generate, parse_file_blocks


class FakeTeacher:
    """POST /v1/chat/completions. ``script`` holds (status, body|None, headers) to answer in turn; after it
    runs out, every request gets a good rewrite."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, reply, headers = fake.script.pop(0) if fake.script else (200, None, {})
                if reply is None:
                    n = len(fake.requests)
                    reply = {"choices": [{"message": {"role": "assistant", "content": json.dumps(
                        {"query": f"Rewritten request {n}", "thinking": f"Better plan {n}:\n1. read\n2. change"})}}]}
                data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeTeacher()
    yield f
    f.close()


class Clock:
    def __init__(self):
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(round(s, 3))
        self.t += s


@pytest.fixture
def examples(sample):
    return generate(sample.path, seed=1, generators=["mutation", "docstring", "docs_qa"]).examples


def test_rewrites_request_and_plan_keeping_context_and_files_exact(sample, fake, examples):
    clock = Clock()
    cfg = TeacherConfig(base_url=fake.url, api_key="sk-test", model="teacher-1", requests_per_minute=30)
    seen = []
    res = enrich(examples, cfg, on_item=lambda i, ex: seen.append(i), sleep=clock.sleep, clock=clock)
    assert res.rewritten == len(examples) and res.failed == 0 and res.cursor == len(examples)
    assert seen == list(range(len(examples)))
    assert fake.requests[0]["path"] == "/v1/chat/completions" and fake.requests[0]["auth"] == "Bearer sk-test"
    assert fake.requests[0]["body"]["model"] == "teacher-1" and fake.requests[0]["body"]["temperature"] == 0.2
    # evenly spaced: 30/min -> one every 2 s
    assert clock.sleeps == [2.0] * (len(examples) - 1)
    for before, after in zip(examples, res.examples):
        user_b, user_a = before["messages"][1]["content"], after["messages"][1]["content"]
        n = before["meta"]["request_chars"]
        assert user_a.startswith("Rewritten request") and user_a.endswith(user_b[n:])  # code context kept
        ans_a = after["messages"][2]["content"]
        assert ans_a.startswith("<thinking>\nBetter plan")
        assert parse_file_blocks(ans_a) == parse_file_blocks(before["messages"][2]["content"])
        assert ans_a.split("</thinking>", 1)[1] == before["messages"][2]["content"].split("</thinking>", 1)[1]
        assert after["meta"]["provenance"]["teacher_model"] == "teacher-1"
        assert after["meta"]["teacher"]["original_request"] == user_b[:n]
        assert_exact(sample.path, after)
    assert "teacher_model" not in examples[0]["meta"]["provenance"]  # the input is not modified


def test_retries_on_429_and_5xx_then_resumes_from_a_cursor(fake, examples):
    clock = Clock()
    cfg = TeacherConfig(base_url=fake.url, model="t", requests_per_minute=0, max_retries=3)
    fake.script = [(429, {"error": "slow down"}, {"Retry-After": "7"}), (503, {"error": "busy"}, {})]
    done = []
    res = enrich(examples[:2], cfg, on_item=lambda i, ex: done.append(i), sleep=clock.sleep, clock=clock)
    assert res.rewritten == 2 and clock.sleeps == [7.0, 2.0]  # Retry-After honoured, then backoff
    assert len(fake.requests) == 4
    # a crash after the first example: resume from the saved cursor, the first is not asked again
    fake.requests.clear()
    res2 = enrich(examples[:3], cfg, cursor=2, sleep=clock.sleep, clock=clock)
    assert res2.cursor == 3 and len(res2.examples) == 1 and len(fake.requests) == 1


def test_unusable_replies_are_counted_and_too_many_stop(fake, examples):
    clock = Clock()
    cfg = TeacherConfig(base_url=fake.url, model="t", requests_per_minute=0)
    bad = {"choices": [{"message": {"content": "I cannot help with that."}}]}
    fake.script = [(200, bad, {})]
    res = enrich(examples[:2], cfg, sleep=clock.sleep, clock=clock)
    assert res.failed == 1 and res.rewritten == 1 and "no JSON object" in res.errors[0]
    assert res.examples[0] == examples[0]  # left as it was
    fake.script = [(200, bad, {})] * 5
    with pytest.raises(RepoError) as exc:
        enrich(examples[:6], cfg, sleep=clock.sleep, clock=clock)
    assert exc.value.code == "teacher_bad_response" and exc.value.details["cursor"] == 4


def test_errors_are_clear(fake, examples):
    clock = Clock()
    fake.script = [(401, {"error": {"message": "invalid api key"}}, {})]
    with pytest.raises(RepoError) as exc:
        enrich(examples[:1], TeacherConfig(base_url=fake.url, model="t"), sleep=clock.sleep, clock=clock)
    assert exc.value.code == "teacher_http_error" and "401" in exc.value.message and clock.sleeps == []
    with pytest.raises(RepoError) as exc:  # nothing listens there
        enrich(examples[:1], TeacherConfig(base_url="http://127.0.0.1:9/v1", model="t", max_retries=2),
               sleep=clock.sleep, clock=clock)
    assert exc.value.code == "teacher_unreachable"
    with pytest.raises(RepoError) as exc:
        enrich(examples[:1], TeacherConfig(base_url="", model=""))
    assert exc.value.code == "invalid_option"
    with pytest.raises(RepoError) as exc:
        enrich(examples, TeacherConfig(base_url=fake.url, model="t"), should_stop=lambda: True)
    assert exc.value.code == "cancelled"


def test_estimate_before_launch(examples):
    cfg = TeacherConfig(base_url="http://x/v1", model="t", requests_per_minute=20, max_tokens=500)
    est = estimate_teacher(examples, cfg, price_in_per_million=1.0, price_out_per_million=2.0, latency_s=1.0)
    assert est["requests"] == len(examples) and est["input_tokens"] > est["output_tokens"] > 0
    assert est["seconds"] == len(examples) * 3  # 20/min: 3 s a request beats the 1 s latency
    assert est["cost_usd"] == round(est["input_tokens"] / 1e6 + 2 * est["output_tokens"] / 1e6, 4)
