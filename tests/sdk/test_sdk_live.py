"""The SDK and the `hub` command against the real processes (tests/sdk/conftest.py's stack): login and the saved
credentials, upload / list / validate, a 422 as a typed error with its field messages, a run created and watched to
its end on the tiny model, cancel, deploy / rollback / export / chat, generation from a repository, review queues,
and `hub do` with stdin not a terminal."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hub_sdk import Hub, JobFailed, NotFound, ValidationError
from tests.e2e.conftest import chat_jsonl
from tests.git_repos import CALC, Repo

pytestmark = [pytest.mark.e2e]


def test_login_saves_checked_credentials_only_the_owner_can_read(stack, cli, tmp_path, monkeypatch):
    env = {"XDG_CONFIG_HOME": str(tmp_path), "HUB_URL": None, "HUB_API_KEY": None}
    path = tmp_path / "training-hub" / "credentials.json"
    r = cli("datasets", "list", env=env)
    assert r.exit_code == 1 and "Not logged in" in r.stderr and "hub login" in r.stderr

    r = cli("login", "--url", stack.url, "--api-key", "th_00000000_not-a-real-key", env=env)
    assert r.exit_code == 1 and r.stderr.startswith("Error: Invalid API key.") and not path.exists()

    r = cli("login", "--url", f"{stack.url}/", "--api-key", stack.api_key, env=env)
    assert r.exit_code == 0, r.stderr
    assert f"Logged in to {stack.url} as admin (admin)" in r.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": stack.url, "api_key": stack.api_key, "username": "admin"}

    r = cli("whoami", "--json", env=env)  # nothing in the environment: the saved file
    assert json.loads(r.stdout) == {"id": 1, "username": "admin", "role": "admin", "url": stack.url,
                                    "credentials": str(path)}
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_URL", raising=False)
    monkeypatch.delenv("HUB_API_KEY", raising=False)
    with Hub() as h:
        assert h.me()["username"] == "admin" and h.url == stack.url

    # a username and password: the dashboard's login, then a new key for this machine (the password is not kept)
    r = cli("login", "--url", stack.url, "--username", "admin", "--password", "wrong", env=env)
    assert r.exit_code == 1 and "Wrong username or password" in r.stderr
    r = cli("login", "--url", stack.url, "--username", "admin", "--password", stack.admin_password, env=env)
    assert r.exit_code == 0, r.stderr
    saved = json.loads(path.read_text())
    assert saved["api_key"] != stack.api_key and stack.admin_password not in path.read_text()
    with Hub(url=stack.url, api_key=saved["api_key"]) as h:
        assert h.me()["username"] == "admin"

    r = cli("logout", env=env)
    assert r.exit_code == 0 and not path.exists()


def test_upload_list_and_validate(cli, hub, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(chat_jsonl(24))
    r = cli("datasets", "upload", str(good), "--name", "sdk good", "--json")
    assert r.exit_code == 0, r.stderr
    version = json.loads(r.stdout)
    assert (version["status"], version["example_count"], version["has_errors"]) == ("ready", 24, False)
    assert "Uploading good.jsonl" in r.stderr  # the progress display (plain lines: stderr is not a terminal)

    listed = json.loads(cli("datasets", "list", "--json").stdout)
    mine = [d for d in listed if d["name"] == "sdk good"]
    assert len(mine) == 1 and mine[0]["latest_version"]["id"] == version["id"]
    assert [v["id"] for v in hub.datasets.versions(mine[0]["id"])] == [version["id"]]

    r = cli("datasets", "validate", str(version["id"]), "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == 0 and report["has_errors"] is False and report["error_total"] == 0

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(chat_jsonl(20) + b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    v = hub.datasets.upload(bad, name="sdk bad")
    assert v["status"] == "ready" and v["has_errors"]
    issues = {(e["line"], e["code"]) for e in hub.datasets.validate(v["id"])["errors"]}
    assert issues == {(21, "no_assistant"), (22, "invalid_json")}
    r = cli("datasets", "validate", "--dataset", "sdk bad")
    assert r.exit_code == 1  # errors block training
    assert "2 errors" in r.stdout and "line 21" in r.stdout and "line 22" in r.stdout


def test_a_refused_run_is_a_typed_error_with_field_messages_and_creates_nothing(cli, hub, arith_version):
    before = len(hub.runs.list(limit=500))
    with pytest.raises(ValidationError) as caught:
        hub.runs.create(dataset_version_id=arith_version["id"], base_model="tiny", learning_rate=-1, warmup_ratio=7)
    exc = caught.value
    assert exc.status == 422 and exc.code == "invalid"
    assert set(exc.field_errors) == {"hyperparameters.learning_rate", "hyperparameters.warmup_ratio"}
    assert "(got -1)" in exc.field_errors["hyperparameters.learning_rate"][0]

    r = cli("runs", "create", "--dataset-version", str(arith_version["id"]), "--base-model", "tiny", "--lr", "-1")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines()[0] == "Error: Invalid run"
    assert any(line.startswith("  hyperparameters.learning_rate: ") for line in r.stderr.splitlines())
    assert len(hub.runs.list(limit=500)) == before
    with pytest.raises(NotFound):
        hub.runs.get(987654)


def test_runs_create_watch_follows_the_run_to_its_end(trained, cli, hub):
    result, run = trained
    assert run["status"] == "succeeded" and run["model_version_id"]
    assert run["current_step"] == run["total_steps"] == 4
    assert run["hyperparameters"]["eval_max_new_tokens"] == 4  # -p key=value, parsed as JSON
    losses = [p["loss"] for p in run["metrics"] if p["kind"] == "train" and p.get("loss") is not None]
    assert len(losses) >= 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"Run {run['id']} queued (sdk watch)."
    assert lines[-1].startswith("succeeded: step 4/4  loss ") and "elapsed" in lines[-1]

    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert {"id": run["id"], "status": "succeeded"}.items() <= next(x for x in listed if x["id"] == run["id"]).items()
    states = []
    again = hub.runs.watch(run["id"], on_update=states.append)  # already finished: returns at once
    assert again["status"] == "succeeded" and [s["status"] for s in states] == ["succeeded"]


def test_cancel_and_watch_a_cancelled_run(cli, hub, arith_version):
    run = hub.runs.create(dataset_version_id=arith_version["id"], base_model="tiny", max_steps=500, batch_size=1)
    r = cli("runs", "cancel", str(run["id"]), "--json")
    assert r.exit_code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["status"] == "cancelled" or body["cancel_requested"] is True
    states = []
    final = hub.runs.watch(run["id"], on_update=states.append, interval=0.5, timeout=120)
    assert final["status"] == "cancelled" and states[-1]["status"] == "cancelled"
    with pytest.raises(JobFailed, match="cancelled"):
        hub.runs.watch(run["id"], raise_on_failure=True)
    r = cli("runs", "watch", str(run["id"]))
    assert r.exit_code == 1 and re.search(r"^status:\s+cancelled$", r.stdout, re.M), r.stdout


def test_deploy_chat_rollback_and_export(trained, cli, hub, tmp_path):
    version_id = trained[1]["model_version_id"]
    assert any(m["id"] == version_id for m in json.loads(cli("models", "list", "--json").stdout))

    r = cli("models", "deploy", str(version_id), "sdk-test", "--reason", "sdk test")
    assert r.exit_code == 0 and r.stdout.strip() == f"sdk-test now serves version {version_id}."
    aliases = {a["name"]: a for a in json.loads(cli("models", "aliases", "--json").stdout)}
    assert aliases["sdk-test"]["model_version_id"] == version_id

    r = cli("chat", "sdk-test", "What is 1 plus 2?", "--max-tokens", "4", "--json")
    answer = json.loads(r.stdout)
    assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] >= 1

    r = cli("models", "rollback", "sdk-test")  # it never served another version
    assert r.exit_code == 1 and r.stderr.startswith("Error: Alias 'sdk-test' has no earlier version")

    r = cli("models", "export", str(version_id), "--format", "adapter", "--download", str(tmp_path), "--json")
    assert r.exit_code == 0, r.stderr
    export = json.loads(r.stdout)
    assert export["status"] == "succeeded" and export["format"] == "adapter"
    saved = Path(export["downloaded_to"])
    assert saved.parent == tmp_path and zipfile.is_zipfile(saved)
    assert any(n.endswith("adapter_config.json") for n in zipfile.ZipFile(saved).namelist())
    assert "Export adapter" in r.stderr and f"Downloading {saved.name}" in r.stderr


def test_generate_from_a_repository(cli, hub, tmp_path):
    repo = Repo(tmp_path / "calc")
    repo.commit("a calculator", {"calc.py": CALC})
    r = cli("generate", str(repo.path), "--max-examples", "5", "--json")
    assert r.exit_code == 0, r.stderr
    gen = json.loads(r.stdout)
    assert gen["status"] == "succeeded" and gen["dataset_version_id"]
    assert hub.datasets.version(gen["dataset_version_id"])["example_count"] == 5
    sources = json.loads(cli("sources", "list", "--json").stdout)
    assert [s["location"] for s in sources if s["id"] == gen["source_id"]] == [str(repo.path)]
    assert "Analysis" in r.stderr and "Generation" in r.stderr


def test_start_and_list_a_review(cli, arith_version):
    r = cli("reviews", "start", str(arith_version["id"]), "--name", "sdk review", "--assignee", "admin", "--json")
    assert r.exit_code == 0, r.stderr
    task = json.loads(r.stdout)
    assert task["assignees"] == ["admin"] and task["dataset_version_id"] == arith_version["id"]
    assert task["progress"]["total"] == arith_version["example_count"] and task["progress"]["done"] == 0
    listed = json.loads(cli("reviews", "list", "--json").stdout)
    assert [t["name"] for t in listed if t["id"] == task["id"]] == ["sdk review"]


def test_hub_do_with_stdin_not_a_terminal_prints_and_does_nothing(stack, hub, arith_version):
    """The installed `hub` console script, as a script would run it (stdin from /dev/null)."""
    script = Path(sys.executable).with_name("hub")
    assert script.exists(), "the SDK is not installed into the venv: run `make setup`"
    before = len(hub.runs.list(limit=500))
    env = {**os.environ, "HUB_URL": stack.url, "HUB_API_KEY": stack.api_key}
    text = f"train {arith_version['dataset_name']} with lr 1e-5 and 3 epochs"
    out = subprocess.run([str(script), "do", text], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         env=env, timeout=60)
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    if "does not understand plain-language commands" in out.stderr:  # a hub without the parser
        assert out.returncode == 1
    else:
        assert out.returncode == 0, out.stdout + out.stderr
        first = out.stdout.splitlines()[0]
        assert first.startswith("Would: Train") and arith_version["dataset_name"] in first, out.stdout
        assert re.search(r"^  learning_rate: +1e-5$", out.stdout, re.M) and "= POST /api/runs " in out.stdout
        assert "nothing was done" in out.stderr
    assert len(hub.runs.list(limit=500)) == before
