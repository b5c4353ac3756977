"""Exports of a model version, and their round-trip checks. No Django: the registry's job
(apps/registry/exports/services.py) calls these with plain paths, a `report` callback and `should_stop`.

Modules:
- `write`: the files — the PEFT adapter folder (`write_adapter`), merged full weights (`load_source` +
  `write_merged`: safetensors sharded above `max_shard_size`, tokenizer with its chat template,
  generation_config.json with every end-of-turn id), `staging` (a folder written under a temporary name and
  renamed at the end; removed on any failure), sizes and peak memory.
- `probe`: what the checks compare — greedy answers and perplexity of a transformers model (the source, or an
  adapter/merged export loaded back) or of a GGUF file (llama-server + llama-perplexity, workers.engine.llamacpp).

Contract:
- `Source(kind, base_model_path, adapter_path, model_path)` says where a version's weights are
  (kind "adapter": base + optional PEFT adapter; "full": a Hugging Face folder).
- Failures a user can act on raise `ExportError(message, code=..., detail=...)` (message: one clear sentence;
  detail: e.g. a converter's last lines). A disk that fills up is `ExportError(code="no_space")`. A cancel is
  `Cancelled` (the same class as workers.engine.llamacpp.toolchain.Cancelled).
"""
from __future__ import annotations

import errno
from pathlib import Path
from dataclasses import dataclass

from workers.engine.llamacpp.toolchain import Cancelled  # noqa: F401  (one cancel type for every export phase)


class ExportError(Exception):
    """An export that cannot be made or cannot be loaded back: `message` for the user, `code` for the job's
    error code (E_<CODE>), `detail` the tool's last lines when there are some."""

    def __init__(self, message: str, *, code: str = "export_failed", detail: str = ""):
        super().__init__(message)
        self.message, self.code, self.detail = message, code, detail


@dataclass(frozen=True)
class Source:
    """Where a model version's weights are on this machine."""

    kind: str  # "adapter" | "full"
    base_model_path: str | None = None
    adapter_path: str | None = None
    model_path: str | None = None

    @property
    def has_adapter(self) -> bool:
        return self.kind == "adapter" and bool(self.adapter_path)

    @property
    def tokenizer_dir(self) -> str | None:
        """Its tokenizer's folder: the full weights' folder; an adapter's own when it saved one, else the base's."""
        if self.kind == "full":
            return self.model_path
        if self.has_adapter and (Path(self.adapter_path) / "tokenizer_config.json").is_file():
            return self.adapter_path
        return self.base_model_path


def no_space(exc: BaseException) -> bool:
    """True for an OSError that says the disk is full (ENOSPC, or EDQUOT for a quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled()
