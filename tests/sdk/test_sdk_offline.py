"""The SDK and the `hub` command without a hub: credentials, errors, request bodies, the progress display, and
`hub do`'s confirmation rule, with httpx's MockTransport standing in for the server (nothing here needs Django or
a database)."""
from __future__ import annotations

import io
import json
import stat

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from hub_sdk import Hub, NotConfigured, NotFound, ValidationError, config
from hub_sdk.cli import app
from hub_sdk.cli.common import settings
from hub_sdk.errors import ServerError, error_from_response
from hub_sdk.progress import Tracker

URL = "http://hub.test"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("HUB_URL", raising=False)
    monkeypatch.delenv("HUB_API_KEY", raising=False)
    return tmp_path / "cfg" / "training-hub" / "credentials.json"


class FakeHub:
    """A MockTransport answering from a table {(method, path): (status, body)}; records every request."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"detail": "Not found.", "code": "not_found"})
        status, body = answer(request) if callable(answer) else answer
        return httpx.Response(status, json=body)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


def test_credentials_file_is_private_and_resolution_prefers_arguments_then_environment(isolated, monkeypatch):
    with pytest.raises(NotConfigured, match="hub login"):
        config.resolve()
    path = config.save(url="http://saved:8000", api_key="th_saved", username="ada")
    assert path == isolated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    creds = config.resolve()
    assert (creds.url, creds.api_key, creds.source) == ("http://saved:8000", "th_saved", str(path))
    monkeypatch.setenv("HUB_API_KEY", "th_env")
    assert config.resolve().api_key == "th_env"
    assert config.resolve(url="127.0.0.1:9000/api/", api_key="th_arg").url == "http://127.0.0.1:9000"
    assert config.resolve(api_key="th_arg").api_key == "th_arg"
    assert config.forget() and not path.exists()


def test_error_bodies_become_typed_exceptions_with_field_messages():
    body = {"detail": "Invalid run: hyperparameters.learning_rate: Must be greater than 0.", "code": "invalid",
            "errors": [{"field": "hyperparameters.learning_rate", "message": "Must be greater than 0."}]}
    exc = error_from_response(httpx.Response(422, json=body))
    assert isinstance(exc, ValidationError) and exc.status == 422
    assert exc.field_errors == {"hyperparameters.learning_rate": ["Must be greater than 0."]}
    assert exc.headline == "Invalid run"
    assert str(exc) == "Invalid run\n  hyperparameters.learning_rate: Must be greater than 0."
    v1 = error_from_response(httpx.Response(404, json={"error": {
        "message": "No model 'x'.", "type": "invalid_request_error", "code": "model_not_found"}}))
    assert isinstance(v1, NotFound) and v1.detail == "No model 'x'." and v1.code == "model_not_found"
    html = error_from_response(httpx.Response(502, text="<html><body>Bad gateway</body></html>"))
    assert isinstance(html, ServerError) and html.detail == "502 Bad Gateway"


def test_create_sends_keyword_hyperparameters_in_the_body_and_upload_streams_with_a_length(isolated, tmp_path):
    fake = FakeHub({
        ("POST", "/api/runs"): lambda r: (201, {"id": 7, **json.loads(r.content)}),
        ("POST", "/api/datasets"): (201, {"id": 3, "status": "ready", "example_count": 2}),
    })
    hub = Hub(URL, "th_k", transport=httpx.MockTransport(fake))
    run = hub.runs.create(dataset_version_id=3, base_model="tiny", learning_rate=1e-5, epochs=3,
                          hyperparameters={"lora_r": 8})
    assert run["hyperparameters"] == {"lora_r": 8, "learning_rate": 1e-5, "epochs": 3}
    assert run["dataset_version_id"] == 3 and "dataset_id" not in run
    assert fake.requests[0].headers["authorization"] == "Bearer th_k"

    data = tmp_path / "chats.jsonl"
    data.write_bytes(b'{"messages": []}\n' * 5000)
    version = hub.datasets.upload(data)
    sent = fake.sent("POST", "/api/datasets")[0]
    assert version["id"] == 3
    assert int(sent.headers["content-length"]) > data.stat().st_size  # not chunked: the hub checks the length
    assert b'name="name"\r\n\r\nchats' in sent.content and b'filename="chats.jsonl"' in sent.content


def test_watch_reports_each_poll_and_returns_the_finished_run(isolated, monkeypatch):
    monkeypatch.setattr("hub_sdk.progress.time.sleep", lambda s: None)
    jobs = iter([("running", "training", 2), ("running", "evaluating", 4), ("succeeded", "registering", 4)])
    points = iter([[{"step": 2, "kind": "train", "loss": 2.5, "eta_s": 3}],
                   [{"step": 4, "kind": "train", "loss": 1.5}], []])

    def job(_):
        status, phase, step = next(jobs)
        return 200, {"id": 11, "status": status, "phase": phase, "progress": {"current": step, "total": 4},
                     "elapsed_s": step * 1.0}

    detail = {"id": 5, "status": "queued", "phase": "queued", "job_id": 11, "current_step": 0, "total_steps": 4,
              "summary": {}, "metrics": []}
    calls = {"n": 0}

    def run(_):
        calls["n"] += 1
        if calls["n"] == 1:
            return 200, detail
        return 200, {**detail, "status": "succeeded", "current_step": 4, "duration_s": 9.0,
                     "summary": {"final_loss": 1.5}, "model_version_id": 2}

    fake = FakeHub({("GET", "/api/runs/5"): run, ("GET", "/api/jobs/11"): job,
                    ("GET", "/api/runs/5/metrics"): lambda r: (200, next(points))})
    hub = Hub(URL, "th_k", transport=httpx.MockTransport(fake))
    states = []
    final = hub.runs.watch(5, on_update=states.append)
    assert final["status"] == "succeeded" and final["model_version_id"] == 2
    assert [(s["status"], s["phase"], s["step"], s["loss"]) for s in states] == [
        ("queued", "queued", 0, None), ("running", "training", 2, 2.5), ("running", "evaluating", 4, 1.5),
        ("succeeded", "registering", 4, 1.5)]
    assert states[1]["eta_s"] == 3 and states[-1]["eta_s"] == 0
    # only the points not seen yet are asked for
    assert [r.url.params.get("after_step") for r in fake.sent("GET", "/api/runs/5/metrics")] == ["0", "2", "4"]


def test_the_run_bar_shows_phase_step_loss_eta_and_elapsed_on_a_terminal():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140, color_system=None)
    with Tracker("Run 1", kind="steps", total=12, console=console) as bar:
        bar.update(completed=3, description="training", loss="1.2345", eta="9 s", elapsed="4 s")
    text = buf.getvalue()
    assert "training" in text and "3/12" in text and "loss 1.2345" in text and "ETA 9 s" in text
    assert "elapsed 4 s" in text
    plain = io.StringIO()
    with Tracker("Run 1", kind="steps", total=12, console=Console(file=plain, width=140)) as bar:
        bar.update(completed=3, description="training", loss="1.2345", eta="9 s", elapsed="4 s")
        bar.update(completed=12, description="succeeded", loss="0.9", eta="0 s", elapsed="8 s")
    assert plain.getvalue().splitlines() == ["training: step 3/12  loss 1.2345  ETA 9 s  elapsed 4 s",
                                             "succeeded: step 12/12  loss 0.9  ETA 0 s  elapsed 8 s"]


PLAN = {"text": "train demo with lr 1e-5 and 3 epochs", "action": "train",
        "summary": "Train on demo v1 with learning_rate 1e-5 and 3 epochs",
        "params": {"dataset": "demo", "learning_rate": 1e-5, "epochs": 3},
        "api": {"method": "POST", "path": "/api/runs",
                "body": {"dataset_version_id": 1, "hyperparameters": {"learning_rate": 1e-5, "epochs": 3}}},
        "allowed": True, "form_url": "/runs/new/", "result_url": "/runs/{id}/", "missing": [], "problems": [],
        "suggestions": [], "notes": [], "confirm": "Start training", "hub_do": 'hub do "train demo"'}


@pytest.fixture
def cli(isolated, monkeypatch):
    def make(routes: dict):
        fake = FakeHub(routes)
        monkeypatch.setattr(settings, "transport", httpx.MockTransport(fake))
        runner = CliRunner(env={"HUB_URL": URL, "HUB_API_KEY": "th_k", "COLUMNS": "200"})  # rich wraps at the width

        def invoke(*args, input=None):
            result = runner.invoke(app, list(args), input=input)
            assert "Traceback" not in result.output + result.stderr
            return result

        return fake, invoke

    return make


def test_hub_do_shows_the_plan_and_acts_only_on_a_yes_at_a_terminal(cli, monkeypatch):
    fake, invoke = cli({("POST", "/api/commands/parse"): (200, PLAN),
                        ("POST", "/api/runs"): (201, {"id": 9, "status": "queued", "name": "run 9"})})
    text = "train demo with lr 1e-5 and 3 epochs"
    r = invoke("do", text)  # CliRunner's stdin is not a terminal
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[:4] == ["Would: Train on demo v1 with learning_rate 1e-5 and 3 epochs",
                                         "  dataset:       demo", "  learning_rate: 1e-5", "  epochs:        3"]
    assert "POST /api/runs" in r.stdout and "nothing was done" in r.stderr
    assert json.loads(fake.sent("POST", "/api/commands/parse")[0].content) == {"text": text}
    assert not fake.sent("POST", "/api/runs")

    r = invoke("do", text, "--json")
    assert json.loads(r.stdout) == {"plan": PLAN, "performed": False, "result": None}
    assert not fake.sent("POST", "/api/runs")

    monkeypatch.setattr("hub_sdk.cli.do.stdin_is_terminal", lambda: True)
    r = invoke("do", text, input="n\n")
    assert r.exit_code == 0 and "Start training? [y/N]" in r.stdout and "Nothing done." in r.stdout
    assert not fake.sent("POST", "/api/runs")
    r = invoke("do", text, input="y\n")
    assert r.exit_code == 0 and f"Done. {URL}/runs/9/" in r.stdout
    (sent,) = fake.sent("POST", "/api/runs")
    assert json.loads(sent.content) == PLAN["api"]["body"]


def test_hub_do_answers_a_status_question_without_asking_and_refuses_what_is_not_allowed(cli, monkeypatch):
    status = {**PLAN, "action": "status", "summary": "Run 3 is running: step 40 of 120.", "confirm": "Show",
              "api": {"method": "GET", "path": "/api/runs/3", "body": None}, "result_url": None}
    fake, invoke = cli({("POST", "/api/commands/parse"): (200, status)})
    r = invoke("do", "check training status for run 3")
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "Run 3 is running: step 40 of 120."
    assert [q.url.path for q in fake.requests] == ["/api/commands/parse"]

    denied = {**PLAN, "action": "deploy", "allowed": False, "confirm": "Deploy",
              "api": {"method": "POST", "path": "/api/models/2/deploy", "body": {"alias": "production"}},
              "problems": [{"field": "alias", "message": "Only admins deploy."}]}
    fake, invoke = cli({("POST", "/api/commands/parse"): (200, denied)})
    monkeypatch.setattr("hub_sdk.cli.do.stdin_is_terminal", lambda: True)
    r = invoke("do", "deploy run 2 to production", input="y\n")
    assert r.exit_code == 1 and "alias: Only admins deploy." in r.stdout and "nothing was done" in r.stderr
    assert [q.url.path for q in fake.requests] == ["/api/commands/parse"]


def test_hub_do_explains_an_unknown_command_and_a_hub_without_the_parser(cli, monkeypatch):
    unknown = {**PLAN, "action": "unknown", "summary": "Not sure what “make coffee” means.", "params": {},
               "api": None, "suggestions": ["train demo with lr 1e-5", "check status of run 3"]}
    fake, invoke = cli({("POST", "/api/commands/parse"): (200, unknown)})
    monkeypatch.setattr("hub_sdk.cli.do.stdin_is_terminal", lambda: True)
    r = invoke("do", "make coffee")
    assert r.exit_code == 1 and 'hub do "check status of run 3"' in r.stdout
    assert [q.url.path for q in fake.requests] == ["/api/commands/parse"]

    fake, invoke = cli({})  # 404: an older hub
    r = invoke("do", "train demo")
    assert r.exit_code == 1
    assert "does not understand plain-language commands yet" in r.stderr

    hub = Hub(URL, "th_k", transport=httpx.MockTransport(FakeHub({})))
    with pytest.raises(Exception, match="only call the hub's /api"):
        hub.commands.perform({**PLAN, "api": {"method": "POST", "path": "https://elsewhere.example/x", "body": {}}})


def test_a_refused_request_prints_field_errors_and_exits_1_without_a_traceback(cli):
    body = {"detail": "Invalid run: learning_rate: Must be greater than 0 (got -1).", "code": "invalid",
            "errors": [{"field": "hyperparameters.learning_rate", "message": "Must be greater than 0 (got -1)."}]}
    fake, invoke = cli({("POST", "/api/runs"): (422, body), ("GET", "/api/datasets"): (200, [])})
    r = invoke("runs", "create", "--dataset-version", "3", "--lr", "-1")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines() == ["Error: Invalid run",
                                     "  hyperparameters.learning_rate: Must be greater than 0 (got -1)."]
    r = invoke("datasets", "list", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = invoke("datasets", "list")
    assert "No datasets yet" in r.stdout
