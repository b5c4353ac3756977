"""Settings for the inference process, read from the environment (Django-free).

Defaults mirror training_hub/settings.py: HUB_DATA_DIR=./var, artifacts at $HUB_DATA_DIR/artifacts,
port HUB_PORT+1. Integers are read with training_hub.env (it imports only django.core.exceptions and
configures no settings), so a bad value raises ImproperlyConfigured, which `__main__` turns into an exit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from training_hub.env import env_int

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class InferenceConfig:
    host: str
    port: int
    artifact_root: Path
    max_loaded: int
    threads: int
    model_cache: Path  # where llama.cpp is built (HUB_MODEL_CACHE), or HUB_LLAMA_CPP_DIR is used
    engine: str  # auto (llama.cpp for versions with a GGUF, else transformers) | transformers | llama.cpp
    llama_ctx: int  # context per llama-server slot (capped by the model's own)
    llama_parallel: int  # concurrent sequences per llama-server

    @classmethod
    def from_env(cls) -> "InferenceConfig":
        data_dir = Path(os.environ.get("HUB_DATA_DIR") or REPO_ROOT / "var").expanduser()
        artifact_root = Path(os.environ.get("HUB_ARTIFACT_ROOT") or data_dir / "artifacts").expanduser()
        hub_port = env_int("HUB_PORT", 8000, min_value=1, max_value=65535)
        return cls(
            host=os.environ.get("HUB_INFERENCE_HOST") or os.environ.get("HUB_HOST") or "127.0.0.1",
            port=env_int("HUB_INFERENCE_PORT", hub_port + 1, min_value=1, max_value=65535),
            artifact_root=artifact_root.resolve(),
            max_loaded=env_int("HUB_INFERENCE_MAX_MODELS", 2, min_value=1, max_value=64),
            threads=env_int("HUB_INFERENCE_THREADS", 0, min_value=0, max_value=1024),
            model_cache=Path(os.environ.get("HUB_MODEL_CACHE") or "~/.cache/training-hub/models").expanduser(),
            engine=_engine(os.environ.get("HUB_INFERENCE_ENGINE") or "auto"),
            llama_ctx=env_int("HUB_LLAMA_CTX", 4096, min_value=256, max_value=1_048_576),
            llama_parallel=env_int("HUB_LLAMA_PARALLEL", 4, min_value=1, max_value=256),
        )


def _engine(value: str) -> str:
    if value not in ("auto", "transformers", "llama.cpp"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"HUB_INFERENCE_ENGINE must be auto, transformers or llama.cpp, not {value!r}.")
    return value
