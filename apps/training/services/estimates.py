"""Before-launch estimates, in one place: tokens, steps, time and price of a run or of a dataset.

Contract: `run_estimate(...)` (local runs) and `remote_run_estimate(...)` (Together runs) are what
`run_create` stores in `summary["estimate"]` and returns on a dry run; `dataset_estimates(...)` is the
time/price table a dataset version's page shows. Time comes from `throughput(base_model_id)` (its figure, the
spread, the overhead outside training steps and a `basis` line saying where it comes from): the
median non-padding tokens/s the last succeeded local runs on that base model measured
(`summary["tokens_per_s"]`); without history, DEFAULT_TOKENS_PER_S (LoRA on SmolLM2-135M on 2 CPU cores:
bench/bench_train.py measured 169 tokens/s on a quiet machine, 34 under heavy load) scaled by parameter
count (`throughput_for_parameters`); DPO runs use their own history (else the supervised one's ×
DPO_THROUGHPUT_FACTOR), GRPO runs theirs (else × GRPO_THROUGHPUT_FACTOR; their tokens are prompt plus
max_completion_length per sampled answer, services/rewards.py). Token counts come from the counts the
datasets import stored when they were made with the run's tokenizer, else from tokenizing now
(`token_lengths`), else chars/3.5; a DPO run's from its pairs, chosen and rejected sequence both
(services/preferences.py).
Prices: Together's rule is `apps.training.backends.together.estimate_cost`. Reads only; writes nothing."""
from __future__ import annotations

import math
import statistics
from functools import lru_cache
from typing import Any

DEFAULT_TOKENS_PER_S = 160.0  # LoRA, SmolLM2-135M, 2 CPU cores (bench/bench_train.py)
# DPO processes each pair's chosen and rejected sequence with a forward and backward pass plus the
# reference's forward (no gradients): with LoRA about 6·N FLOPs per token against a supervised step's 4·N
DPO_THROUGHPUT_FACTOR = 4 / 6
# GRPO samples its answers token by token before it trains on them (and, with beta > 0, runs the reference's
# forward): until a GRPO run has succeeded here, the supervised throughput times this (its tokens are prompt plus
# completion per sampled answer). Measured once on 2 shared CPU cores (load ~8), a random "small" model (35M),
# LoRA, 6 steps of 8: supervised 33 tokens/s, GRPO (4 answers of 64 tokens per prompt) 14 tokens/s
GRPO_THROUGHPUT_FACTOR = 0.4
_REFERENCE_PARAMS = 135_000_000
_HISTORY = 10


def throughput_for_parameters(params: int | None) -> float:
    """The default tokens/s for a model of `params` parameters: smaller models run faster, roughly in
    proportion (capped both ways: overheads dominate tiny models)."""
    if not params:
        return DEFAULT_TOKENS_PER_S
    return DEFAULT_TOKENS_PER_S * min(50.0, max(0.01, _REFERENCE_PARAMS / max(params, 1)))


def tokens_per_second(base_model_id: str | None, *, method: str | None = None) -> float:
    """Throughput measured on this device by earlier runs on that base model (else the default). DPO runs
    and supervised runs are measured apart (method "dpo": the DPO runs' history, else the supervised one's
    times DPO_THROUGHPUT_FACTOR; "kto" likewise with the KTO runs' history)."""
    return throughput(base_model_id, method=method)["tokens_per_s"]


def throughput(base_model_id: str | None, *, method: str | None = None) -> dict:
    """{tokens_per_s, measured (bool), runs (how many past runs it comes from), low, high (the spread of
    those runs' figures), overhead_s (median seconds the past runs spent outside training steps: loading,
    tokenizing, saving, evaluating, registering; None without history), basis (one line saying where the
    figure comes from)}."""
    from apps.registry.models import BaseModel
    from apps.training.models import TrainingRun

    qs = TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, backend=TrainingRun.Backend.LOCAL)
    if base_model_id:
        qs = qs.filter(base_model_id=base_model_id)
    preference = (TrainingRun.Method.DPO, TrainingRun.Method.KTO)  # each measured on its own history
    if method in preference or method == TrainingRun.Method.GRPO:
        own = _history(qs.filter(method=method))
        if own["runs"]:
            return {**own, "measured": True,
                    "basis": f"measured on this machine: median of the last {own['runs']} {method} run"
                             f"{'s' if own['runs'] != 1 else ''}"}
        factor = GRPO_THROUGHPUT_FACTOR if method == TrainingRun.Method.GRPO else DPO_THROUGHPUT_FACTOR
        sup = throughput(base_model_id)
        return {**sup, "tokens_per_s": sup["tokens_per_s"] * factor, "low": sup["low"] * factor,
                "high": sup["high"] * factor,
                "basis": f"no {method} run here yet: the supervised figure ({sup['basis']}) × {factor:.2f}"}
    hist = _history(qs.exclude(method__in=(*preference, TrainingRun.Method.GRPO)))
    if hist["runs"]:
        return {**hist, "measured": True,
                "basis": f"measured on this machine: median of the last {hist['runs']} run"
                         f"{'s' if hist['runs'] != 1 else ''}{' on this base model' if base_model_id else ''}"}
    params = None
    if base_model_id:
        params = BaseModel.objects.filter(pk=base_model_id).values_list("parameters", flat=True).first()
    return default_throughput(params)


def default_throughput(params: int | None) -> dict:
    """The stated default (no run measured here yet), scaled by parameter count, with a wide range."""
    tps = throughput_for_parameters(params)
    scaled = (f", scaled to {_human(params)} parameters" if params and params != _REFERENCE_PARAMS else "")
    return {"tokens_per_s": tps, "measured": False, "runs": 0, "low": tps / 3, "high": tps * 1.5,
            "overhead_s": None,
            "basis": f"default, not measured here: {DEFAULT_TOKENS_PER_S:.0f} tokens/s for LoRA on a 135M model on "
                     f"2 CPU cores{scaled}"}


def _human(n: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def _history(qs) -> dict:
    """The last runs of `qs`: median tokens/s, its spread, and the median overhead (wall time minus the
    stages' training seconds: loading, tokenizing, saving, the final evaluation, registering)."""
    measured, overheads = [], []
    rows = qs.order_by("-finished_at").values_list("summary", "started_at", "finished_at")[:_HISTORY]
    for summary, started, finished in rows:
        summary = summary or {}
        value = summary.get("tokens_per_s")
        if isinstance(value, (int, float)) and value > 0:
            measured.append(float(value))
        trained = sum(float(st.get("seconds") or 0) for st in (summary.get("stages") or []) if isinstance(st, dict))
        if started and finished and trained > 0:
            overheads.append(max(0.0, (finished - started).total_seconds() - trained))
    if not measured:
        return {"runs": 0, "tokens_per_s": None, "low": None, "high": None, "overhead_s": None}
    mid = float(statistics.median(measured))
    return {"runs": len(measured), "tokens_per_s": mid,
            "low": min(min(measured), mid * 0.8), "high": max(max(measured), mid * 1.2),
            "overhead_s": float(statistics.median(overheads)) if overheads else None}


def _measured(qs) -> float | None:
    """The median tokens/s of the last runs in `qs` (None without any)."""
    return _history(qs)["tokens_per_s"]


def version_examples(version) -> tuple[list[dict], list[dict]]:
    """(train, validation) examples of a dataset version as plain dicts {messages, tools}."""
    from apps.datasets.selectors import version_training_examples

    train = list(version_training_examples(version=version, split="train"))
    validation = list(version_training_examples(version=version, split="validation"))
    return train, validation



@lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def token_lengths(tokenizer_path: str | None, examples: list[dict]) -> list[int]:
    """Token counts of each example through the chat template (≈ chars/3.5 without a tokenizer)."""
    from workers.engine.data import assistant_spans, normalize_messages

    if tokenizer_path is None:
        return [max(1, int(sum(len(m["content"]) for m in normalize_messages(ex["messages"], None)) / 3.5) + 8)
                for ex in examples]
    tok = _tokenizer(tokenizer_path)
    texts = [assistant_spans(tok, ex["messages"], ex.get("tools"))[0] for ex in examples]
    if not texts:
        return []
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def _stored_token_stats(version, *, base_model, tokenizer_path: str | None, max_len: int) -> dict | None:
    """Aggregates of the per-example token counts the datasets app stored at import (train split), when
    they were made with this run's tokenizer and chat template: the version was counted with the same
    base model and the run tokenizes with that base model's own folder (not a continued full model's
    copy). None when they were not, or when some example has no count: the caller then tokenizes."""
    from django.db.models import Count, Max, Q, Sum, Value
    from django.db.models.functions import Least

    if base_model is None or not tokenizer_path or str(tokenizer_path) != str(base_model.path):
        return None
    counted_with = ((version.stats or {}).get("tokens") or {}).get("base_model")
    if not counted_with or counted_with != base_model.pk:
        return None
    agg = version.examples.filter(split="train").aggregate(
        examples=Count("pk"), counted=Count("token_count"), longest=Max("token_count"),
        too_long=Count("pk", filter=Q(token_count__gt=max_len)),
        capped=Sum(Least("token_count", Value(max_len))))
    if agg["examples"] != agg["counted"]:
        return None
    return {"examples": agg["examples"], "too_long": agg["too_long"], "longest": agg["longest"] or 0,
            "tokens": agg["capped"] or 0}


def _token_stats(version, *, base_model, tokenizer_path: str | None, max_len: int) -> dict:
    """{examples, too_long, longest, tokens (each capped at max_len)} of a version's train split: from the
    stored counts when they match the run's tokenizer, else by tokenizing every example now."""
    stored = _stored_token_stats(version, base_model=base_model, tokenizer_path=tokenizer_path, max_len=max_len)
    if stored is not None:
        return {**stored, "source": "stored"}
    train, _ = version_examples(version)
    lengths = token_lengths(tokenizer_path, train)
    return {"examples": len(lengths), "too_long": sum(1 for n in lengths if n > max_len),
            "longest": max(lengths, default=0), "tokens": sum(min(n, max_len) for n in lengths),
            "source": "tokenized" if tokenizer_path else "approximate"}



def remote_run_estimate(*, hyperparameters: dict, version) -> dict:
    """A Together run: its dataset's tokens (chars/3.5: Together tokenizes on its side) and price."""
    from apps.training.backends.together import estimate_cost

    hp = hyperparameters
    train, _ = version_examples(version)
    tokens = sum(token_lengths(None, train))
    epochs = int(hp.get("n_epochs") or hp.get("epochs") or 1)
    return {"dataset_tokens": tokens, "steps": None, "seconds": None,
            "cost": estimate_cost(tokens=tokens, epochs=epochs, model=str(hp.get("model", "")))}


def _grown_parameters(parent_dir: str, target_size) -> int | None:
    """Parameters of the model a grow run trains (None when its target does not fit: run_create says why)."""
    import json
    from pathlib import Path

    from workers.engine.grow import GrowError, grow_plan, parameters

    try:
        config = json.loads((Path(parent_dir) / "config.json").read_text())
        plan = grow_plan(config, target_size)
    except (OSError, ValueError, GrowError):
        return None
    return parameters(plan.target, int(config["vocab_size"]), tied=bool(config.get("tie_word_embeddings")))


def run_estimate(*, method: str, base_model, hyperparameters: dict, stages: list[tuple[Any, dict]],
                 tokenizer_path: str | None) -> dict:
    """Estimated tokens, steps and time (from throughput measured on this device) before launch."""
    from workers.engine.tiny import count_parameters

    hp = hyperparameters
    max_len = int(hp.get("max_seq_len", 512))
    eff_batch = int(hp.get("batch_size", 4)) * int(hp.get("grad_accum", 1))
    total_steps, total_tokens, processed, too_long, longest = 0, 0, 0.0, 0, 0
    sources = set()
    for version, stage_hp in stages:
        if method in ("dpo", "kto"):  # pairs: the chosen and the rejected sequence both count
            from apps.training.services.preferences import preference_token_stats

            st = preference_token_stats(version, tokenizer_path=tokenizer_path, max_len=max_len)
            if method == "kto":  # KTO trains each pair as two rows (workers/engine/kto/data.py)
                st = {**st, "examples": 2 * st["examples"]}
        elif method == "grpo":  # num_generations sampled answers per task (workers/engine/grpo)
            from apps.training.services.rewards import grpo_token_stats

            st = grpo_token_stats(version, tokenizer_path=tokenizer_path, max_len=max_len,
                                  max_completion_length=int(hp.get("max_completion_length", 64)),
                                  generations=int(hp.get("num_generations", 4)))
        else:
            st = _token_stats(version, base_model=base_model, tokenizer_path=tokenizer_path, max_len=max_len)
        sources.add(st["source"])
        too_long += st["too_long"]
        longest = max(longest, st["longest"])
        n_examples, tokens = st["examples"], st["tokens"]
        per_epoch = max(1, math.ceil(n_examples / eff_batch)) if n_examples else 0
        max_steps = int(stage_hp.get("max_steps") or hp.get("max_steps") or 0)
        epochs = float(stage_hp.get("epochs") or hp.get("epochs") or 1.0)
        steps = max_steps if max_steps > 0 else math.ceil(per_epoch * epochs)
        total_steps += steps
        total_tokens += tokens
        avg = tokens / n_examples if n_examples else 0
        processed += steps * eff_batch * avg
    params = None
    if method == "scratch":  # a new model: no measured history, scale the default by its size
        params = count_parameters(hp.get("size", "nano"), int(hp.get("vocab_size", 2000)))
        basis = default_throughput(params)
    elif method == "grow" and tokenizer_path:  # the grown size (the parent's folder holds its config)
        params = _grown_parameters(tokenizer_path, hp.get("target_size"))
        basis = default_throughput(params)
    else:
        basis = throughput(base_model.pk if base_model is not None else None, method=method)
        if base_model is not None:
            params = base_model.parameters
    tps, low, high = basis["tokens_per_s"], basis["low"], basis["high"]
    if method == "full" and params:  # all weights get gradients and optimizer state
        tps, low, high = tps / 3.0, low / 3.0, high / 3.0
        basis = {**basis, "basis": basis["basis"] + ", ÷ 3 for full fine-tuning"}
    training_s = processed / tps if tps else None
    overhead = basis.get("overhead_s")
    return {
        "dataset_tokens": total_tokens,
        "tokens_processed": int(processed),
        "steps": total_steps,
        "tokens_per_s": round(tps, 1),
        # training steps only (what tokens/s covers)
        "seconds": round(training_s, 2) if training_s is not None else None,
        # the whole run, a range: training at the spread of the throughput, plus the time past runs spent
        # outside training steps (loading, tokenizing, saving, final evaluation, registering) when measured
        "seconds_low": round(processed / high + (overhead or 0), 2) if high else None,
        "seconds_high": round(processed / low + (overhead or 0), 2) if low else None,
        "overhead_s": round(overhead, 1) if overhead is not None else None,
        "throughput_measured": basis["measured"],
        "throughput_basis": basis["basis"],
        "parameters": params,
        "examples_too_long": too_long,
        "longest_example_tokens": longest,
        # where the token counts came from: stored at import, tokenized now, or approximated (chars/3.5)
        "token_counts": ",".join(sorted(sources)),
    }


def dataset_estimates(*, tokens: list[int] | int, context_length: int | None, epochs: int = 3,
                      base_model_id: str | None = None) -> dict:
    """Training time (local) and cost (Together / OpenAI) of a dataset for `epochs` epochs, as its page
    shows them. Billed tokens ≈ Σ min(context, tokens(example)) × epochs."""
    from django.conf import settings

    if isinstance(tokens, int):
        trained = tokens
    else:
        ctx = context_length or 10**9
        trained = int(sum(min(ctx, t) for t in tokens))
    billed = trained * epochs
    try:
        basis = throughput(base_model_id or "smollm2-135m-instruct")
        tps, source = float(basis["tokens_per_s"]), basis["basis"]
    except Exception:  # no database (the validate_dataset CLI) or no table yet
        tps, source = DEFAULT_TOKENS_PER_S, "default (160 tokens/s: LoRA on a 135M model, 2 CPU cores)"
    return {
        "epochs": epochs,
        "trained_tokens_per_epoch": trained,
        "billed_tokens": billed,
        "local": {"tokens_per_second": round(tps, 1), "seconds": round(billed / tps, 1) if tps else None,
                  "source": source},
        "together": {"price_per_mtok": settings.TOGETHER_PRICE_PER_MTOK,
                     "usd": round(billed / 1e6 * settings.TOGETHER_PRICE_PER_MTOK, 4)},
        "openai": {"price_per_mtok": settings.HUB_PRICE_OPENAI_PER_MTOK,
                   "usd": round(billed / 1e6 * settings.HUB_PRICE_OPENAI_PER_MTOK, 4)},
    }
