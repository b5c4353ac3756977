"""The real stack for the SDK, CLI and notebook tests: tests/e2e's launcher stack (embedded PostgreSQL and Redis,
uvicorn, Dramatiq workers, the inference process, a tiny base model `tiny`, an admin's API key), started once per
test session (`stack` in tests/conftest.py, shared with tests/e2e). `cli(...)` runs the `hub` command in-process
(typer's CliRunner: stdin is not a terminal) against it, with its own config folder, so nothing reads or writes the
developer's ~/.config."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import chat_jsonl


@pytest.fixture(scope="session")
def config_home(tmp_path_factory):
    return tmp_path_factory.mktemp("sdk-config")


@pytest.fixture(scope="session")
def cli(stack, config_home):
    """cli(*args, input=None, env=None) -> typer's Result; a traceback anywhere in the output fails the test."""
    from typer.testing import CliRunner

    from hub_sdk.cli import app

    base = {"HUB_URL": stack.url, "HUB_API_KEY": stack.api_key, "XDG_CONFIG_HOME": str(config_home),
            "COLUMNS": "200"}

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        result = CliRunner(env={**base, **(env or {})}).invoke(app, list(args), input=input)
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture(scope="session")
def hub(stack):
    from hub_sdk import Hub

    with Hub(url=stack.url, api_key=stack.api_key) as h:
        yield h


@pytest.fixture(scope="session")
def arith_version(hub, tmp_path_factory) -> dict:
    """A ready 40-example chat dataset, uploaded through the SDK."""
    path = tmp_path_factory.mktemp("sdk-data") / "arith.jsonl"
    path.write_bytes(chat_jsonl(40))
    version = hub.datasets.upload(path, name="sdkarith")
    assert version["status"] == "ready" and not version["has_errors"], version
    return version


TINY_RUN = ["--base-model", "tiny", "--max-steps", "4", "--batch-size", "4", "--lr", "3e-3", "--max-seq-len", "256",
            "--lora-r", "8", "-p", "eval_max_new_tokens=4", "-p", 'eval_prompts=["What is 1 plus 2?"]']


@pytest.fixture(scope="session")
def trained(cli, arith_version) -> tuple:
    """`hub runs create --watch --json` on the tiny model: (the CLI's result, the finished run)."""
    result = cli("runs", "create", "--dataset-version", str(arith_version["id"]), "--name", "sdk watch",
                 *TINY_RUN, "--watch", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    return result, json.loads(result.stdout)
