"""The real auto-coders through the hub: the Claude Code CLI (`claude -p`, Anthropic Messages) and OpenAI's
Codex CLI (`codex exec`, the Responses API), run non-interactively in their default modes, tools and all.

The hub is the real ASGI app on a loopback port, wrapped in a recorder that keeps every request it answered
(method, path, status, headers, bodies), in front of
- tests/proxy/scripted_upstream.py, an OpenAI-compatible upstream that answers like a capable model (a
  text answer; a tool call with the tools the CLI offered, then an answer quoting the tool's result);
- the hub's inference process serving a tiny model the hub trained, on an alias whose chain settings make
  the CLI's request fit (a tool allow-list and a max-tokens cap);
- a tiny model whose context the CLI's request overflows: the chain falls through to the next target, and
  with none left the CLI gets the dialect's "prompt is too long" error.

For every CLI run the tests list each status the hub returned (count_tokens, HEAD or /v1/models probes
included) and fail on any 4xx/5xx the CLI does not expect, and on error events inside a 200 stream.

The CLIs come from `make test-setup` (pinned versions, installed with npm into $HUB_DATA_DIR/npm-cli or
var/npm-cli; $HUB_NPM_CLI_DIR overrides); the tests skip with a message saying so when npm or a CLI is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.proxy.fake_upstream import ServerThread
from tests.proxy.scripted_upstream import create_scripted_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 120
GENERATING = ("/v1/messages", "/v1/responses", "/v1/chat/completions")


def npm_cli_dirs() -> list[Path]:
    """Where `make test-setup` installs the CLIs (the Makefile's NPM_CLI_DIR): $HUB_NPM_CLI_DIR, else
    $HUB_DATA_DIR/npm-cli (a data dir the user set survives training_hub/test_settings.py), else var/npm-cli."""
    dirs = [os.environ.get("HUB_NPM_CLI_DIR"),
            os.environ.get("HUB_DATA_DIR") and os.path.join(os.environ["HUB_DATA_DIR"], "npm-cli"),
            str(ROOT / "var" / "npm-cli")]
    return [Path(d) for d in dirs if d]


def find_cli(name: str) -> str | None:
    for d in npm_cli_dirs():
        exe = d / "node_modules" / ".bin" / name
        if exe.exists():
            return str(exe)
    return None


def missing_reason(name: str) -> str:
    if shutil.which("npm") is None:
        return (f"real-client test: npm is not installed, so `make test-setup` could not install the `{name}` CLI "
                f"(install Node.js + npm and rerun `make test-setup`).")
    return (f"real-client test: the `{name}` CLI is not installed (looked in "
            f"{', '.join(map(str, npm_cli_dirs()))}); run `make test-setup`, which installs the pinned CLIs with npm.")


def cli_path(name: str) -> str:
    """The CLI's executable, or a skip that says why it is missing (tests/proxy/conftest.py's terminal
    summary repeats it at the end of the run)."""
    return find_cli(name) or pytest.skip(missing_reason(name))


def with_cli(name: str):
    """`name` as a `cli` parameter, skipped at collection (before any fixture) when the CLI is missing."""
    return pytest.param(name, marks=pytest.mark.skipif(find_cli(name) is None, reason=missing_reason(name)))


CLIS = [with_cli("claude"), with_cli("codex")]


# --- the hub, recorded -------------------------------------------------------------------------------
class Recorder:
    """ASGI wrapper: one entry per HTTP request answered — method, path, query, status, response headers,
    and both bodies (responses up to 2 MB: error bodies, and streams to look for error events)."""

    def __init__(self, app):
        self.app = app
        self.calls: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        entry = {"method": scope["method"], "path": scope["path"], "query": scope.get("query_string", b"").decode(),
                 "status": None, "headers": {}, "request": b"", "body": b""}
        self.calls.append(entry)

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                entry["request"] += message.get("body", b"")
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                entry["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body" and len(entry["body"]) < 2_000_000:
                entry["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, recording_receive, recording_send)

    def since(self, n: int) -> list[dict]:
        return self.calls[n:]


def stream_errors(body: bytes) -> list[str]:
    """Error events inside a streamed answer: Anthropic `event: error`, Responses `response.failed` /
    `error` / `response.incomplete`, an OpenAI chunk with an `error` key."""
    out = []
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("event:") and line[6:].strip() in ("error", "response.failed", "response.incomplete"):
            out.append(line)
        elif line.startswith("data:") and line[5:].strip().startswith('{"error"'):
            out.append(line[:300])
    return out


def outcome(c: dict) -> str:
    """How a streamed answer ended: Anthropic's stop_reason, the Responses terminal event."""
    text = c["body"].decode(errors="replace")
    if '"stop_reason":"' in text:
        return text.rsplit('"stop_reason":"', 1)[1].split('"', 1)[0]
    for event in ("response.completed", "response.incomplete", "response.failed"):
        if f"event: {event}" in text:
            return event
    return ""


def statuses(calls: list[dict]) -> list[str]:
    """`POST /v1/messages?beta=true -> 200 (end_turn)` for each request the hub answered."""
    return [f"{c['method']} {c['path']}{'?' + c['query'] if c['query'] else ''} -> {c['status']}"
            f"{f' ({o})' if (o := outcome(c)) else ''}" for c in calls]


def refusals(calls: list[dict], expected=lambda c: False) -> list[str]:
    """The hub's answers a CLI does not expect: a status >= 400 (unless `expected(call)`), or a 200 stream
    carrying an error event."""
    bad = []
    for c in calls:
        if c["status"] is None or (c["status"] >= 400 and not expected(c)):
            bad.append(f"{c['method']} {c['path']} -> {c['status']}: {c['body'][:500]!r}")
        elif c["status"] < 400 and (errors := stream_errors(c["body"])):
            bad.append(f"{c['method']} {c['path']} -> {c['status']} with {errors}")
    return bad


@pytest.fixture(scope="session")
def recorded_hub():
    from training_hub.asgi import application

    rec = Recorder(application)
    with ServerThread(rec) as srv:
        srv.recorder = rec
        yield srv


@pytest.fixture(scope="session")
def scripted_upstream():
    seen: list = []
    with ServerThread(create_scripted_upstream(seen=seen)) as srv:
        srv.seen = seen
        yield srv


@pytest.fixture
def logged(monkeypatch):
    """The request-log payloads the hub queued (the rows the worker writes to RequestLog)."""
    from apps.proxy import services

    rows: list[dict] = []
    monkeypatch.setattr(services, "request_log_enqueue", rows.append)
    return rows


@pytest.fixture
def hub_admin(recorded_hub, admin_key):
    """An admin's /api client (providers and chains)."""
    from apps.proxy.gateway import caches_clear

    caches_clear()
    with httpx.Client(base_url=recorded_hub.url, headers={"Authorization": f"Bearer {admin_key}"},
                      timeout=30) as client:
        yield client


@pytest.fixture
def coder_alias(hub_admin, scripted_upstream):
    """Alias `coder` -> provider `scripted` (the scripted upstream), made through the providers/chains API."""
    scripted_upstream.seen.clear()
    r = hub_admin.post("/api/providers", json={"name": "scripted", "kind": "openai",
                                                "base_url": scripted_upstream.url + "/v1"})
    assert r.status_code == 201, r.text
    r = hub_admin.put("/api/aliases/coder/chain", json={"targets": [{"provider": "scripted", "model": "capable-1"}]})
    assert r.status_code == 200, r.text
    return "coder"


@pytest.fixture
def dirs(tmp_path):
    """A fresh working dir and HOME per CLI run: `dirs("name") -> (work, home)`."""
    def make(name: str):
        work, home = tmp_path / name / "work", tmp_path / name / "home"
        work.mkdir(parents=True)
        home.mkdir(parents=True)
        return work, home
    return make


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE", "OPENAI", "CODEX"))}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


class Run:
    """One CLI run: the process, its wall time and the hub's answers to it."""

    def __init__(self, name, proc, secs, calls):
        self.name, self.proc, self.secs, self.calls = name, proc, secs, calls
        self.out, self.rc = proc.stdout, proc.returncode

    def report(self):
        print(f"\n{self.name}: rc={self.rc} in {self.secs:.1f}s; the hub answered: {statuses(self.calls)}; "
              f"the CLI said: {self.answer[:200]!r}")

    def __str__(self):
        return (f"{self.name}: rc={self.rc} in {self.secs:.1f}s; hub: {statuses(self.calls)}\n"
                f"stdout: {self.out[-2500:]}\nstderr: {self.proc.stderr[-2500:]}")


def _run(hub, name: str, cmd: list[str], work: Path, env: dict) -> Run:
    n = len(hub.recorder.calls)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)  # stdin: codex exec reads more prompt from a pipe left open
    run = Run(name, proc, time.monotonic() - started, hub.recorder.since(n))
    if os.environ.get("HUB_CLI_TEST_DUMP"):  # a folder: each request and answer of the run, for debugging
        out = Path(os.environ["HUB_CLI_TEST_DUMP"])
        out.mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(run.calls):
            stem = f"{name.split()[0]}-{work.parent.name}-{i}"
            (out / f"{stem}.request.json").write_bytes(c["request"])
            (out / f"{stem}.answer.txt").write_bytes(c["body"])
    return run


def run_claude(hub, key: str, model: str, prompt: str, work: Path, home: Path, *flags: str) -> Run:
    """`claude -p PROMPT --model MODEL` with the hub as its Anthropic API. The small/background model names
    map to the same alias; non-essential traffic (telemetry, update checks) is off: the box has no internet
    and it is not the hub's."""
    env = _env(home)
    env.update(ANTHROPIC_BASE_URL=hub.url, ANTHROPIC_API_KEY=key, ANTHROPIC_DEFAULT_HAIKU_MODEL=model,
               ANTHROPIC_DEFAULT_SONNET_MODEL=model, ANTHROPIC_DEFAULT_OPUS_MODEL=model,
               ANTHROPIC_SMALL_FAST_MODEL=model, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_AUTOUPDATER="1")
    cmd = [cli_path("claude"), "-p", prompt, "--model", model, "--output-format", "json", *flags]
    run = _run(hub, "claude " + " ".join(flags), cmd, work, env)
    try:
        run.result = json.loads(run.out)
    except ValueError:
        run.result = {}
    run.answer = str(run.result.get("result", ""))
    run.report()
    return run


def run_codex(hub, key: str, model: str, prompt: str, work: Path, home: Path, *flags: str) -> Run:
    """`codex exec PROMPT` with a CODEX_HOME whose config.toml names the hub as its model provider
    (base_url = hub /v1, wire_api = "responses", the key in $HUB_API_KEY)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "hub"\n'
        "[model_providers.hub]\n"
        'name = "Training Hub"\n'
        f'base_url = "{hub.url}/v1"\n'
        'env_key = "HUB_API_KEY"\n'
        'wire_api = "responses"\n')
    env = _env(home)
    env.update(CODEX_HOME=str(codex_home), HUB_API_KEY=key)
    cmd = [cli_path("codex"), "exec", "--skip-git-repo-check", *flags, prompt]
    run = _run(hub, "codex exec " + " ".join(flags), cmd, work, env)
    run.answer = run.out.strip() or " / ".join(  # codex exec prints the final message alone on stdout
        line for line in run.proc.stderr.splitlines() if line.startswith("ERROR"))
    run.report()
    return run


RUNNERS = {"claude": run_claude, "codex": run_codex}


def check_logged(run: Run, logged: list[dict], **expect):
    """The request log has one row per generating call of the run, with the hub's status, and `expect`."""
    gen = [c for c in run.calls if c["path"] in GENERATING]
    ids = {c["headers"].get("x-request-id") for c in gen}
    rows = [r for r in logged if r["request_id"] in ids]
    assert len(rows) == len(gen), (rows, statuses(run.calls))
    by_id = {r["request_id"]: r for r in rows}
    for c in gen:
        row = by_id[c["headers"]["x-request-id"]]
        assert row["status_code"] == c["status"], row
        for k, v in expect.items():
            assert row[k] == v, (k, row)
    return rows


# --- 1. a capable (scripted) model behind the hub --------------------------------------------------
# (task, prompt, extra flags). "read" runs in the CLIs' default permission modes (Claude Code's Read tool,
# Codex's exec_command in its read-only sandbox); "create" grants writes the CLIs' documented way.
def _tasks(cli: str, work: Path, nonce: str):
    notes, proof = work / "notes.txt", work / "proof.txt"
    grant = ["--permission-mode", "acceptEdits"] if cli == "claude" else ["--sandbox", "workspace-write"]
    return {
        "text": (f"Please reply with `hello {nonce}`.", []),
        "read": (f"Please read the file `{notes}` and tell me what it says.", []),
        "create": (f"Please create the file `{proof}` with the text `made {nonce}`.", grant),
    }


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("task", ["text", "read", "create"])
def test_cli_through_hub_with_a_capable_model(recorded_hub, coder_alias, api_key, scripted_upstream, dirs, logged,
                                              cli, task):
    work, home = dirs(task)
    nonce = uuid.uuid4().hex[:12]
    (work / "notes.txt").write_text(f"the secret word is {nonce}\n")
    prompt, flags = _tasks(cli, work, nonce)[task]
    run = RUNNERS[cli](recorded_hub, api_key, coder_alias, prompt, work, home, *flags)

    assert run.rc == 0, str(run)
    assert not refusals(run.calls), (refusals(run.calls), str(run))
    assert all(c["path"] == ("/v1/messages" if cli == "claude" else "/v1/responses") for c in run.calls), str(run)
    check_logged(run, logged, served_by="provider:scripted/capable-1", alias="coder", fallback=False)
    answers = [s["answer"] for s in scripted_upstream.seen]
    if task == "text":
        assert run.answer == f"hello {nonce}", str(run)
        assert not any("tool" in a for a in answers), answers
        return
    # a tool call with a tool the CLI offered, the CLI ran it, and its result came back through the hub
    calls = [a for a in answers if "tool" in a]
    assert len(calls) == 1, answers
    codex_tools = {"exec_command", "shell", "shell_command", "apply_patch"}  # by Codex version and model family
    expected = {"claude": {"read": {"Read"}, "create": {"Write"}}, "codex": {"read": codex_tools,
                                                                            "create": codex_tools}}[cli][task]
    assert calls[0]["tool"] in expected, answers
    final = scripted_upstream.seen[-1]["body"]["messages"]
    assert final[-1]["role"] == "tool" and final[-2]["tool_calls"][0]["function"]["name"] == calls[0]["tool"]
    assert run.answer.startswith("Done. The tool said:"), str(run)
    if task == "read":
        assert nonce in run.answer, str(run)  # only the file had it: the tool really read it
    else:
        assert (work / "proof.txt").read_text() == f"made {nonce}", str(run)  # the tool really wrote it
        assert "error" not in run.answer.lower(), str(run)


# --- 2. a hub-trained tiny model behind the hub -------------------------------------------------------
TINY_CONTEXT = 16384  # Claude Code's request with Bash + Read only: ~8.4k tokens here; with all its tools ~17k
# The allow-list keeps Claude Code's Bash + Read and Codex's exec_command; the cap ends the tiny model's
# answers at 16 tokens (it never stops on its own), which the CLIs must take as a finished turn.
TINY_SETTINGS = {"tools_allow": ["Bash", "Read", "exec_command"], "max_tokens": 16}


@pytest.fixture(scope="session")
def tiny_long_dir(tmp_path_factory):
    """A tiny model whose context holds an auto-coder's system prompt: 16k positions, and a 4k-token BPE
    trained on the project's own prose and code (~2.8 characters a token on the CLIs' prompts)."""
    from workers.engine.tiny import build_model

    texts = []
    for f in [ROOT / "README.md", *sorted((ROOT / "apps").rglob("*.py"))]:
        texts += [p for p in f.read_text(errors="replace").split("\n\n") if p.strip()]
    out = tmp_path_factory.mktemp("tiny-long")
    build_model(out, size="nano", texts=texts, vocab_size=4000, context_length=TINY_CONTEXT)
    return out


@pytest.fixture
def inference(settings):
    """The hub's inference process (workers.inference.server) on a loopback port, recorded; the hub sends
    local model versions to it."""
    from workers.inference.server import create_app

    rec = Recorder(create_app(artifact_root=settings.ARTIFACT_ROOT))
    with ServerThread(rec) as srv:
        srv.recorder = rec
        settings.HUB_INFERENCE_URL = srv.url + "/v1"
        yield srv


def train_tiny(member, base_model_id: str):
    """Fine-tune `base_model_id` on a small chat dataset with the hub's own training actor (a few LoRA steps,
    seconds on CPU) and return the model version it registered."""
    from apps.registry.models import ModelVersion
    from apps.training import services as training
    from tests.factories import DatasetVersionFactory, qa_example
    from workers.training import train_run

    dataset = DatasetVersionFactory(owner=member, dataset__name="cli-qa", examples=[qa_example(i) for i in range(16)],
                                    examples__validation=[qa_example(i) for i in range(16, 20)],
                                    validation={"errors": [], "warnings": []})
    run = training.run_create(user=member, dataset_version_id=dataset.pk, base_model=base_model_id,
                              hyperparameters={"max_steps": 4, "learning_rate": 3e-3, "batch_size": 4,
                                               "save_steps": 4, "lora_r": 8, "max_seq_len": 64,
                                               "eval_max_new_tokens": 4})
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return ModelVersion.objects.get(run=run)


@pytest.mark.parametrize("cli", CLIS)
def test_cli_on_a_hub_trained_tiny_model(recorded_hub, hub_admin, inference, api_key, member, tiny_long_dir, dirs,
                                         logged, cli):
    """The alias's tool allow-list and max-tokens cap make the CLI's request fit a 16k-context tiny model the
    hub trained; the CLI completes and the hub refuses nothing (the tiny model's words are not judged). An
    answer the cap cut must read as a finished turn (Anthropic `end_turn`, Responses `completed`): Claude
    Code retries a `max_tokens` stop and then fails, Codex fails on `incomplete`."""
    from apps.registry.services import base_model_register

    base_model_register(model_id="tiny-long", path=str(tiny_long_dir), name="Tiny long-context model")
    version = train_tiny(member, "tiny-long")
    r = hub_admin.put("/api/aliases/tiny-coder/chain", json={"targets": [{"model_version_id": version.pk}],
                                                             "settings": TINY_SETTINGS})
    assert r.status_code == 200, r.text
    work, home = dirs(cli)
    run = RUNNERS[cli](recorded_hub, api_key, "tiny-coder", "What is 2 plus 2?", work, home)

    assert not refusals(run.calls), (refusals(run.calls), str(run))
    rows = check_logged(run, logged, served_by=f"version:{version.pk}", alias="tiny-coder", fallback=False)
    assert all(r["tools_dropped"] > 0 for r in rows), rows  # the allow-list dropped the CLI's other tools
    model_calls = [json.loads(c["request"]) for c in inference.recorder.calls if c["path"] == "/v1/chat/completions"]
    assert model_calls, "the tiny model was never asked"
    for body in model_calls:  # what reached the model: the allowed tools only, the capped max_tokens
        assert body["max_tokens"] <= TINY_SETTINGS["max_tokens"]
        assert {t["function"]["name"] for t in body.get("tools", [])} <= set(TINY_SETTINGS["tools_allow"])
    assert all(c["status"] == 200 for c in inference.recorder.calls), statuses(inference.recorder.calls)
    assert run.rc == 0, str(run)


@pytest.mark.parametrize("cli", CLIS)
def test_cli_context_overflow(recorded_hub, hub_admin, coder_alias, inference, api_key, tiny_base_model, dirs,
                              logged, cli):
    """A request longer than a target's context (the CLI's ~40-50 KB request vs a 256-token model) falls
    through to the next target in the chain; with no target left the CLI gets the dialect's own
    "prompt is too long" error and reports it as such."""
    from apps.registry.services import model_version_register

    short = model_version_register(name="tiny 256", kind="adapter", base_model=tiny_base_model)
    for alias, targets in (("small-first", [{"model_version_id": short.pk},
                                            {"provider": "scripted", "model": "capable-1"}]),
                           ("small-only", [{"model_version_id": short.pk}])):
        r = hub_admin.put(f"/api/aliases/{alias}/chain", json={"targets": targets})
        assert r.status_code == 200, r.text
    nonce = uuid.uuid4().hex[:12]

    work, home = dirs("small-first")
    run = RUNNERS[cli](recorded_hub, api_key, "small-first", f"Please reply with `hello {nonce}`.", work, home)
    assert run.rc == 0 and run.answer == f"hello {nonce}", str(run)
    assert not refusals(run.calls), (refusals(run.calls), str(run))
    assert all(c["headers"]["x-hub-served-by"] == "provider:scripted/capable-1" and
               c["headers"]["x-hub-fallback"] == "true" for c in run.calls), str(run)
    for row in check_logged(run, logged, served_by="provider:scripted/capable-1", fallback=True):
        assert [a["status"] for a in row["attempts"]] == ["context_overflow", "ok"], row["attempts"]

    work, home = dirs("small-only")
    run = RUNNERS[cli](recorded_hub, api_key, "small-only", f"Please reply with `hello {nonce}`.", work, home)
    assert run.rc != 0, str(run)

    def context_error(c) -> bool:
        if c["status"] != 400:
            return False
        body = json.loads(c["body"])
        if cli == "claude":
            return body["type"] == "error" and body["error"]["type"] == "invalid_request_error" and \
                body["error"]["message"].startswith("prompt is too long: ")
        return body["error"]["code"] == "context_length_exceeded"

    assert run.calls and not refusals(run.calls, expected=context_error), (refusals(run.calls, context_error), str(run))
    if cli == "claude":
        assert run.result.get("is_error") is True and "prompt is too long" in run.answer.lower(), str(run)
    else:
        assert "context window" in run.proc.stderr, str(run)
    check_logged(run, logged, served_by="", fallback=False)
    assert not inference.recorder.calls  # decided by the hub's count, before any model call


# --- 3. an online experiment on the alias: each CLI session sticks to one arm --------------------------
@pytest.fixture
def experiment_alias(hub_admin, scripted_upstream, settings):
    """Alias `abtest` -> two remote versions (both answered by the scripted upstream), split 50/50 by session."""
    from apps.proxy.gateway import caches_clear
    from apps.registry.services import model_version_register

    settings.TOGETHER_BASE_URL = scripted_upstream.url + "/v1"  # remote versions are called there
    caches_clear()
    a = model_version_register(name="arm a", kind="remote", base_model=None, remote_model_id="capable-1")
    b = model_version_register(name="arm b", kind="remote", base_model=None, remote_model_id="capable-1")
    r = hub_admin.post(f"/api/models/{a.pk}/deploy", json={"alias": "abtest"})
    assert r.status_code == 200, r.text
    r = hub_admin.post("/api/experiments", json={"alias": "abtest", "sticky_by": "session", "arms": [
        {"model_version_id": a.pk, "weight": 50}, {"model_version_id": b.pk, "weight": 50}]})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


@pytest.mark.parametrize("cli", CLIS)
def test_each_cli_session_sticks_to_one_experiment_arm(recorded_hub, experiment_alias, api_key, scripted_upstream,
                                                       dirs, logged, cli):
    """Three separate runs (three sessions) of the real CLI against an alias under a session-sticky experiment:
    every generating call of a run is served by the same arm (the CLI's own session header: Claude Code's
    X-Claude-Code-Session-Id, Codex's session-id), and the runs are told apart by their sessions, not by the
    API key they share."""
    units = []
    for i in range(3):
        work, home = dirs(f"session{i}")
        nonce = uuid.uuid4().hex[:12]
        run = RUNNERS[cli](recorded_hub, api_key, "abtest", f"Please reply with `hello {nonce}`.", work, home)
        assert run.rc == 0 and run.answer == f"hello {nonce}", str(run)
        assert not refusals(run.calls), (refusals(run.calls), str(run))
        rows = check_logged(run, logged, alias="abtest", experiment_id=experiment_alias)
        assert len({r["arm"] for r in rows}) == 1 and rows[0]["arm"] in ("A", "B"), rows
        assert len({r["unit"] for r in rows}) == 1, rows
        arm = {c["headers"].get("x-hub-arm") for c in run.calls if c["path"] in GENERATING}
        assert arm == {f"{experiment_alias}/{rows[0]['arm']}"}, arm
        units.append(rows[0]["unit"])
    assert len(set(units)) == 3, units  # a session each: not the shared API key
