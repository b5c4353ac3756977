"""Settings for the inference process, read from the environment (Django-free).

Defaults mirror training_hub/settings.py: HUB_DATA_DIR=./var, artifacts at $HUB_DATA_DIR/artifacts,
port HUB_PORT+1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SystemExit(f"{name} must be between {lo} and {hi}, got {value}")
    return value


@dataclass(frozen=True)
class InferenceConfig:
    host: str
    port: int
    artifact_root: Path
    max_loaded: int
    threads: int

    @classmethod
    def from_env(cls) -> "InferenceConfig":
        data_dir = Path(os.environ.get("HUB_DATA_DIR") or REPO_ROOT / "var").expanduser()
        artifact_root = Path(os.environ.get("HUB_ARTIFACT_ROOT") or data_dir / "artifacts").expanduser()
        hub_port = _int("HUB_PORT", 8000, 1, 65535)
        return cls(
            host=os.environ.get("HUB_INFERENCE_HOST") or os.environ.get("HUB_HOST") or "127.0.0.1",
            port=_int("HUB_INFERENCE_PORT", hub_port + 1, 1, 65535),
            artifact_root=artifact_root.resolve(),
            max_loaded=_int("HUB_INFERENCE_MAX_MODELS", 2, 1, 64),
            threads=_int("HUB_INFERENCE_THREADS", 0, 0, 1024),
        )
