"""The grow run's pre-step (like method scratch's `scratch_prepare`): the parent grown into the target size,
checked against the parent on the validation split, then saved as the model the training loop starts from.
Knows nothing of Django.

Contract: `grow_prepare(job, report=None)` builds `<output_dir>/grow-base/` once (idempotent: a resumed run
reuses it) from `job.base_model_path` (the parent's folder) and `job.hp["target_size"]`; it holds the grown
weights (safetensors), config, the parent's tokenizer and `grow.json` (the report); it returns the folder.
It raises `GrowError` when the target does not fit the parent or when the grown model's validation loss is
further from the parent's than `REL_TOLERANCE` (relative). `grow_report(folder)` reads the report: source and
target dims, parameters before and after, the check (split, examples, tokens, parent_loss, grown_loss,
grown_loss_exact before the symmetry noise, rel_diff, max_abs_logit_diff, tolerance) and the noise used."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from workers.engine.data import tokenize_examples
from workers.engine.grow.check import REL_TOLERANCE, compare, within
from workers.engine.grow.expand import break_symmetry, grow_model
from workers.engine.grow.plan import GrowError, describe, grow_plan, parameters

GROW_DIR = "grow-base"
REPORT = "grow.json"
CHECK_EXAMPLES = 256  # at most this many validation examples are compared


def _check_items(job, tokenizer) -> tuple[list[dict], str]:
    stage = job.stages[0]
    examples, split = (stage.validation, "validation") if stage.validation else (stage.train, "train")
    ds, _ = tokenize_examples(tokenizer, examples[:CHECK_EXAMPLES], max_len=int(job.hp["max_seq_len"]))
    return list(ds.items), split


def _failed(result: dict, what: str) -> GrowError:
    return GrowError(f"The grown model ({what}) does not compute what its parent computes: validation loss "
                     f"{result['grown_loss']:.6f} against the parent's {result['parent_loss']:.6f} (relative "
                     f"difference {result['rel_diff']:.2e}, tolerance {REL_TOLERANCE:.0e}).")


def grow_prepare(job, report=None) -> str:
    import torch
    from transformers import AutoTokenizer

    from workers.engine.sft.models import load_causal_lm

    folder = Path(job.output_dir) / GROW_DIR
    if (folder / REPORT).exists():
        return str(folder)
    if report:
        report(0, {"kind": "phase", "phase": "growing"})
    t0 = time.perf_counter()
    source = str(job.base_model_path)
    config = json.loads((Path(source) / "config.json").read_text())
    plan = grow_plan(config, job.hp["target_size"])
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    small = load_causal_lm(source, trainable_base=True).eval()
    grown = grow_model(small, plan)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    small.to(device)
    grown.to(device)
    items, split = _check_items(job, tokenizer)
    batch = int(job.hp.get("batch_size") or 4)
    exact = compare(small, grown, items, batch_size=batch, pad_id=tokenizer.pad_token_id)
    if not within(exact):
        raise _failed(exact, "before the symmetry noise")
    noise = float(job.hp.get("grow_noise") or 0.0)
    result = exact
    if noise > 0:  # only after the exact copy was checked; the noise keeps the function too (checked again)
        grown.to("cpu")
        break_symmetry(grown, plan, noise=noise, seed=int(job.hp.get("seed") or 0))
        grown.to(device)
        result = compare(small, grown, items, batch_size=batch, pad_id=tokenizer.pad_token_id)
        if not within(result):
            raise _failed(result, f"with grow_noise {noise:g}")
    vocab = int(config["vocab_size"])
    tied = bool(config.get("tie_word_embeddings"))
    info = {
        "size": plan.size_name, "source": plan.source, "target": plan.target,
        "source_text": describe(plan.source), "target_text": describe(plan.target),
        "hidden_multiple": plan.k, "head_size_multiple": plan.r,
        "layers_added": plan.target["num_hidden_layers"] - plan.source["num_hidden_layers"],
        "parameters_before": parameters(plan.source, vocab, tied=tied),
        "parameters_after": parameters(plan.target, vocab, tied=tied),
        "split": split, **result, "grown_loss_exact": exact["grown_loss"],
        "max_abs_logit_diff_exact": exact["max_abs_logit_diff"], "tolerance": REL_TOLERANCE, "noise": noise,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    tmp = Path(job.output_dir) / ".grow-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    grown.to("cpu").save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / REPORT).write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    del small, grown
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return str(folder)


def grow_report(folder: str | Path) -> dict:
    return json.loads((Path(folder) / REPORT).read_text())
