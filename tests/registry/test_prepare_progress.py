"""`manage.py prepare_base_model` shows its steps (issue 14): a rich bar over them on a terminal (locate the GGUF,
load it and save safetensors, register; or check, read, register a --path folder), one line per step elsewhere,
nothing with -v 0."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.registry.models import BaseModel

pytestmark = pytest.mark.django_db


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # what apps.core.cli_progress asks before drawing a rich bar
        return True


@pytest.fixture
def fake_gguf(tmp_path, settings, monkeypatch):
    """The packaged GGUF and its conversion, stood in for (the real one loads torch and takes seconds)."""
    from workers.engine import base_models as engine

    settings.HUB_MODEL_CACHE = tmp_path / "cache"
    gguf = tmp_path / engine.GGUF_FILENAME
    gguf.write_bytes(b"GGUF")
    calls = []

    def prepare(path, target, *, display_name):
        calls.append((path, target))
        return {"name": display_name, "source": str(path), "architecture": "LlamaForCausalLM",
                "parameters": 134_515_008, "context_length": 8192, "hidden_size": 576}

    monkeypatch.setattr(engine, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(engine, "prepare_from_gguf", prepare)
    return calls


def _run(*args, stderr):
    out = io.StringIO()
    call_command("prepare_base_model", *args, stdout=out, stderr=stderr)
    return out.getvalue()


def test_a_terminal_gets_a_bar_over_the_steps(fake_gguf):
    err = _Terminal()
    out = _run(stderr=err)
    assert "Base model smollm2-135m-instruct" in out and len(fake_gguf) == 1
    text = err.getvalue()
    assert "\x1b[" in text and "3/3" in text and "Base model · done" in text  # the rich bar, full at the end
    assert BaseModel.objects.get(pk="smollm2-135m-instruct").is_default


def test_the_steps_are_reported_in_order(fake_gguf):
    from apps.registry import services

    seen = []
    services.base_model_prepare_default(on_step=seen.append)
    assert seen == ["locating the packaged GGUF", "loading SmolLM2-135M-Instruct.Q4_1.gguf and saving safetensors",
                    "registering"] and len(seen) == services.PREPARE_STEPS


def test_without_a_terminal_one_line_per_step(tiny_model_dir):
    err = io.StringIO()
    out = _run("--id", "tiny", "--path", str(tiny_model_dir), stderr=err)
    assert "Base model tiny:" in out
    assert err.getvalue().splitlines() == ["Base model · checking the folder (1/3)",
                                           "Base model · reading its config and tokenizer (2/3)",
                                           "Base model · registering (3/3)"]


def test_a_failing_step_stops_the_bar_and_says_why(tmp_path):
    err = _Terminal()
    with pytest.raises(CommandError, match="is not a folder"):
        _run("--id", "tiny", "--path", str(tmp_path / "missing"), stderr=err)
    text = err.getvalue()
    assert "Base model · failed while checking the folder" in text and "0/3" in text and "done" not in text


@pytest.mark.parametrize("args", [(), ("--id", "tiny")])
def test_verbosity_0_is_silent(fake_gguf, tiny_model_dir, args):
    err = _Terminal()
    args = args + (("--path", str(tiny_model_dir)) if args else ())
    out = _run(*args, "-v", "0", stderr=err)
    assert out.startswith("Base model ") and err.getvalue() == ""
