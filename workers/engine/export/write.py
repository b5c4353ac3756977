"""Writing an export's files: the PEFT adapter folder, merged full weights, and the staging folder they are written
into (renamed into place only when everything succeeded; removed on any failure, a full disk included).

Contract:
- `staging(final)`: a context manager yielding `<parent>/.<name>.partial`; on a clean exit it is renamed to
  `final` (an older `final` is replaced), on an exception it is removed and the exception re-raised (an
  OSError ENOSPC/EDQUOT becomes ExportError(code="no_space")).
- `write_adapter(source, out_dir)`: the version's adapter folder (adapter_config.json + weights, README) and the
  tokenizer files (from the adapter folder, else the base model's); trainer state is left out.
- `load_source(source, role=)` -> (model, tokenizer): transformers, float32, an adapter merged in (peft merge_and_unload).
- `write_merged(model, tokenizer, out_dir, max_shard_size=..., dtype=None)`: safetensors shards, config, tokenizer
  with its chat template (chat_template.jinja), generation_config.json (`generation_config`).
- `folder_size(path)`, `PeakMemory` (this process's peak RSS while it is open, sampled with psutil).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from workers.engine.export import ExportError, Source, no_space

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model")
# what a trainer leaves beside an adapter that an export does not ship
TRAINER_STATE = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json", "training_args.bin",
                 "checkpoint-*", "runs", "*.partial")
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
DEFAULT_SAMPLING = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 512}
NO_SPACE = "No space left on the disk while writing the export; the partial files were removed."


def _no_space_error(exc: OSError) -> ExportError:
    return ExportError(NO_SPACE, code="no_space", detail=str(exc))


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if no_space(exc):
            raise _no_space_error(exc) from exc
        raise


def folder_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _copy_file(src: Path, dest: Path) -> None:
    shutil.copy2(src, dest)


def write_adapter(source: Source, out_dir: Path) -> dict:
    """Copy the adapter folder and its tokenizer into `out_dir` (created). Returns {"files": n}."""
    adapter = Path(source.adapter_path or "")
    if not source.has_adapter or not (adapter / "adapter_config.json").is_file():
        raise ExportError("This version has no PEFT adapter folder (adapter_config.json) to export.",
                          code="no_adapter")
    out_dir = Path(out_dir)
    shutil.copytree(adapter, out_dir, ignore=shutil.ignore_patterns(*TRAINER_STATE), copy_function=_copy_file,
                    dirs_exist_ok=True)
    if not any((out_dir / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        base = Path(source.base_model_path or "")
        for name in TOKENIZER_FILES:
            if (base / name).is_file():
                _copy_file(base / name, out_dir / name)
    return {"files": sum(1 for p in out_dir.rglob("*") if p.is_file())}


def load_source(source: Source, *, role: str = "source"):
    """The version as transformers sees it (float32; an adapter merged into its base). role="export": an export
    loaded back (a failure is ExportError(code="export_unloadable") with the loader's message)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if source.kind == "full":
            model = AutoModelForCausalLM.from_pretrained(source.model_path, dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(source.base_model_path, dtype=torch.float32)
            if source.has_adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, source.adapter_path).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_dir)
    except Exception as exc:  # missing or broken weights: the version itself cannot be loaded
        what = "the export" if role == "export" else "the model version"
        raise ExportError(f"Could not load {what}: {type(exc).__name__}: {exc}", code=f"{role}_unloadable") from exc
    model.eval()
    return model, tokenizer


def _stored_dtype(model):
    """The dtype the weights were published in (config.dtype / torch_dtype), when it is a float type."""
    import torch

    raw = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    if isinstance(raw, str):
        raw = getattr(torch, raw, None)
    return raw if raw in (torch.float16, torch.bfloat16, torch.float32) else None


def end_of_turn_ids(tokenizer, config=None) -> list[int]:
    """Every id that ends an answer: the model's eos ids, the tokenizer's, and the chat end-of-turn tokens."""
    ids: list[int] = []

    def add(value):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(getattr(config, "eos_token_id", None) if config is not None else None)
    add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in vocab:
            add(vocab[token])
    return ids


def generation_config(model, tokenizer, *, base_dir: str | None = None) -> dict:
    """generation_config.json of a merged export: the base's (when it has one), with every end-of-turn id as
    eos_token_id, pad and bos ids, and sampling defaults for the keys it does not set."""
    cfg: dict = {}
    path = Path(base_dir) / "generation_config.json" if base_dir else None
    if path is not None and path.is_file():
        try:
            loaded = json.loads(path.read_text())
            cfg = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            cfg = {}
    eos = end_of_turn_ids(tokenizer, model.config)
    cfg["eos_token_id"] = eos if len(eos) > 1 else (eos[0] if eos else None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else getattr(model.config, "pad_token_id", None)
    if pad is None and eos:
        pad = eos[0]
    cfg["pad_token_id"] = pad
    bos = getattr(model.config, "bos_token_id", None)
    if bos is not None:
        cfg["bos_token_id"] = bos
    for key, value in DEFAULT_SAMPLING.items():
        cfg.setdefault(key, value)
    cfg.pop("_from_model_config", None)
    return {k: v for k, v in cfg.items() if v is not None}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_merged(model, tokenizer, out_dir: Path, *, max_shard_size: str = "2GB", base_dir: str | None = None) -> dict:
    """Save merged full weights as an ordinary Hugging Face folder. Returns {"shards": n, "dtype": "..."}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = _stored_dtype(model)
    if dtype is not None and next(model.parameters()).dtype != dtype:
        model = model.to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out_dir)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template and not (out_dir / "chat_template.jinja").is_file():
        (out_dir / "chat_template.jinja").write_text(template)
    _write_json(out_dir / "generation_config.json", generation_config(model, tokenizer, base_dir=base_dir))
    shards = sorted(p.name for p in out_dir.glob("*.safetensors"))
    if not shards:
        raise ExportError("Saving the merged weights wrote no safetensors file.", code="merge_failed")
    return {"shards": len(shards), "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}


class PeakMemory:
    """This process's peak resident memory (MB) while the block runs, sampled every `every_s` (psutil), at least
    the value at entry; falls back to getrusage's lifetime peak without psutil."""

    def __init__(self, every_s: float = 0.2):
        self.every_s, self.peak_mb = every_s, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> float:
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except Exception:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def sample(self) -> None:
        self.peak_mb = max(self.peak_mb, self._rss())

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> "PeakMemory":
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="export-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sample()
