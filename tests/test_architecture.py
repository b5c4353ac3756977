"""The layering contracts in pyproject.toml's [tool.importlinter], checked with import-linter:

- `workers.engine` (torch/transformers/peft code) imports neither Django, nor the apps, nor Dramatiq;
- `apps` never imports a worker actor module: actors are enqueued by name (apps.core.jobs.enqueue).

The second test is the control: the same contracts, run over a tiny project that breaks both, must fail,
so a passing first test means the contracts hold (not that the check cannot fail)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (test extra)")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(cwd / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _toml(config: dict) -> str:
    """The [tool.importlinter] table back as TOML (its values are strings, booleans and lists of strings)."""
    def line(key, value):
        return f"{key} = {json.dumps(value)}"

    out = ["[tool.importlinter]"] + [line(k, v) for k, v in config.items() if k != "contracts"]
    for contract in config["contracts"]:
        out += ["", "[[tool.importlinter.contracts]]"] + [line(k, v) for k, v in contract.items()]
    return "\n".join(out) + "\n"


def test_import_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert len(_config()["contracts"]) == 2
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_broken_contract_fails(tmp_path):
    """A module of `apps` that imports an actor (even inside a function) and an engine module that imports
    Django each break a contract."""
    config = _config()
    _write(tmp_path / "pyproject.toml", _toml(config))
    for pkg in ("apps", "apps/core", "workers", "workers/engine", "training_hub"):
        _write(tmp_path / pkg / "__init__.py")
    for contract in config["contracts"]:  # import-linter wants every named module to exist
        for name in contract["forbidden_modules"]:
            if name.split(".")[0] in config["root_packages"]:
                _write(tmp_path / (name.replace(".", "/") + ".py"))
    _write(tmp_path / "workers/training.py", "def train_run(run_id):\n    return run_id\n")
    _write(tmp_path / "apps/core/services.py",
           "def run_create():\n    from workers.training import train_run\n\n    train_run(1)\n")
    _write(tmp_path / "workers/engine/sft.py", "import django\n")
    out = _lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Contracts: 0 kept, 2 broken." in out.stdout
    assert "apps.core.services -> workers.training" in out.stdout
    assert "workers.engine.sft -> django" in out.stdout
