"""The inference process's environment: defaults, and a loud failure on bad integers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from workers.inference.config import InferenceConfig

_VARS = ("HUB_PORT", "HUB_INFERENCE_PORT", "HUB_INFERENCE_MAX_MODELS", "HUB_INFERENCE_THREADS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_hub_port(monkeypatch):
    monkeypatch.setenv("HUB_PORT", "9100")
    cfg = InferenceConfig.from_env()
    assert (cfg.port, cfg.max_loaded, cfg.threads) == (9101, 2, 0)


@pytest.mark.parametrize("name,value,needle", [
    ("HUB_INFERENCE_PORT", "eighty", "is not an integer"),
    ("HUB_INFERENCE_PORT", "70000", "outside [1, 65535]"),
    ("HUB_INFERENCE_MAX_MODELS", "0", "outside [1, 64]"),
])
def test_bad_integer_raises(monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name) as info:
        InferenceConfig.from_env()
    assert needle in str(info.value)


def test_process_exits_loudly_on_bad_value():
    """`python -m workers.inference` with a bad value exits non-zero before serving, naming the variable,
    without DJANGO_SETTINGS_MODULE (the process is Django-free)."""
    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "HUB_INFERENCE_MAX_MODELS": "lots"}
    proc = subprocess.run([sys.executable, "-c", "from workers.inference.__main__ import main; main()"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "HUB_INFERENCE_MAX_MODELS='lots' is not an integer" in proc.stderr
    assert "Traceback" not in proc.stderr
