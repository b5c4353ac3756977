"""The model a stage trains: the base (or the previous stage's result) loaded for training, a LoRA
adapter added or continued, and, for method "scratch", a tokenizer and a randomly initialised model built
once. Knows nothing of Django.

Contract: `load_causal_lm(path, trainable_base=)` loads a causal LM (frozen bases in bf16/fp16 on CUDA,
trained weights in fp32; SDPA attention unless HUB_ATTN_IMPLEMENTATION names another); `lora_config(hp)` is the adapter's peft config; `stage_model(job, stage_index,
start_from)` is the model to train in a stage (`start_from`: the previous stage's final folder);
`scratch_prepare(job)` builds `scratch-base/` under the job's output dir (idempotent) and returns its path."""
from __future__ import annotations

import os
import shutil

from workers.engine.data import example_texts
from workers.engine.sft.job import Job


def load_causal_lm(path: str, *, trainable_base: bool = False):
    """On CUDA a frozen base (LoRA) is loaded in bf16/fp16 (peft keeps the adapters in fp32); weights that
    are trained themselves (full, scratch) stay fp32 masters and the Trainer autocasts to bf16/fp16."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32
    if torch.cuda.is_available() and not trainable_base:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    impl = os.environ.get("HUB_ATTN_IMPLEMENTATION") or "sdpa"  # eager on a CPU measured slower and no leaner
    kwargs = {"dtype": dtype, "attn_implementation": impl}
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (ValueError, ImportError):
        kwargs.pop("attn_implementation", None)
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def lora_config(hp: dict):
    """The peft LoraConfig of a job's hyperparameters (lora_r, lora_alpha, lora_dropout, target_modules)."""
    from peft import LoraConfig

    targets = hp.get("target_modules") or "all-linear"
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=int(hp["lora_r"]), lora_alpha=int(hp["lora_alpha"]), lora_dropout=float(hp["lora_dropout"]),
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def stage_model(job: Job, stage_index: int, start_from: str | None):
    """The model to train in a stage. `start_from` is the previous stage's final folder."""
    from peft import PeftModel, get_peft_model

    if job.method == "lora":
        model = load_causal_lm(job.base_model_path)
        adapter = start_from or job.adapter_path
        if adapter:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            model = get_peft_model(model, lora_config(job.hp))
    else:  # full / scratch: start_from is a full model folder
        model = load_causal_lm(start_from or job.base_model_path, trainable_base=True)
    apply_checkpointing(model, job.hp)
    return model


def apply_checkpointing(model, hp: dict) -> int:
    """Gradient checkpointing as the hyperparameters ask: every decoder layer (`gradient_checkpointing`), or a share
    of them (`checkpoint_layers`, 0–1, spread evenly through the stack). A checkpointed layer keeps only its input
    and recomputes the rest in the backward pass, so each one trades its activation memory for one more forward
    of that layer. Returns how many layers are checkpointed."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    share = 1.0 if hp.get("gradient_checkpointing") else float(hp.get("checkpoint_layers") or 0.0)
    if share <= 0:
        return 0
    model.gradient_checkpointing_enable()
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    k = min(len(layers), max(1, round(share * len(layers))))
    chosen = {int(i * len(layers) / k) for i in range(k)}
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i in chosen
    return len(chosen)


def scratch_prepare(job: Job) -> str:
    """Train a BPE tokenizer on the job's data and build a model of a named size (once)."""
    from workers.engine.tiny import build_model

    folder = job.output_dir / "scratch-base"
    if (folder / "config.json").exists():
        return str(folder)
    texts = []
    for st in job.stages:
        texts += example_texts(st.train)
    tmp = job.output_dir / ".scratch-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_model(tmp, size=job.hp.get("size", "nano"), texts=texts, vocab_size=int(job.hp.get("vocab_size", 2000)),
                context_length=int(job.hp["max_seq_len"]), seed=int(job.hp.get("seed", 42)))
    os.replace(tmp, folder)
    return str(folder)
