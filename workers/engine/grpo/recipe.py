"""GRPO's recipe for the one training loop (workers/engine/sft/loop.py): verifiable tasks (grpo/data.py), reward
functions built from the run's weights on the reward registry (grpo/rewards.py), TRL's GRPOTrainer, a LoRA
adapter by default or every weight. Knows nothing of Django.

Contract: `GRPORecipe` is what `recipe_for("grpo")` returns.
- The model: without `full_weights` (the default) the base model in one copy, a new adapter added by TRL from
  `peft_config` (the KL reference is the adapter disabled) or, continuing an adapter version, that adapter
  loaded trainable (TRL keeps a frozen "ref" copy of it as the reference when beta > 0); with it the
  weights themselves (the base, or a continued full version), TRL loading a second, frozen copy as the
  reference when beta > 0.
- Steps: GRPO samples `num_generations` completions per prompt, and a step trains on batch_size ×
  grad_accum completions, so an epoch over N tasks is N × num_generations / (batch_size × grad_accum) steps
  (`steps`). batch_size × grad_accum must be a multiple of num_generations (run_create says so before launch).
- The GRPOConfig is the loop's TrainingArguments (steps, schedule, checkpoints, precision) plus
  num_generations, max_completion_length, beta, temperature and the reward weights (normalised to sum 1,
  one per component function) from the run's hyperparameters; TRL counts the prompt and completion tokens
  itself. Validation (when the run has a validation split) samples completions for the held-out tasks and
  logs their reward (`eval_reward`, `eval_rewards/<name>/mean`); the best checkpoint is the one with the
  highest validation reward.
- The progress callback forwards TRL's metric names (`METRIC_KEYS`; patterns with * match every component):
  reward, reward_std, rewards/<name>/mean, reward_errors/<name>, kl (beta > 0), entropy,
  completions/mean_length, completions/clipped_ratio, frac_reward_zero_std. A finished stage records the last
  logged ones under "rewards", the validation's under "eval_rewards", and the components' errors (count and
  last message) under "reward_errors".
- Saved adapters (checkpoints, the final folder) hold only the trained adapter, never the reference copy.
"""
from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from workers.engine.grpo.data import tasks_dataset
from workers.engine.grpo.rewards import RewardTally, reward_functions, run_weights, trl_weights
from workers.engine.sft.job import steps_for
from workers.engine.sft.models import load_causal_lm, lora_config
from workers.engine.sft.recipe import Recipe

METRIC_KEYS = ("reward", "reward_std", "rewards/*/mean", "reward_errors/*", "kl", "entropy",
               "completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std")


def _matches(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in METRIC_KEYS)


def _trainer_class():
    from trl import GRPOTrainer

    class HubGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer fed prompts the hub rendered itself (workers.engine.grpo.data)."""

        def _tokenize_prompts(self, prompts: list):
            if prompts and isinstance(prompts[0], str):  # rendered with the chat template: no extra special tokens
                return self.processing_class(text=prompts, add_special_tokens=False)["input_ids"], None, {}
            return super()._tokenize_prompts(prompts)

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            ref = Path(output_dir or self.args.output_dir) / "ref"
            if "ref" in (getattr(self.model, "peft_config", None) or {}) and ref.is_dir():
                shutil.rmtree(ref, ignore_errors=True)  # the frozen reference is not part of the result

    return HubGRPOTrainer


class GRPORecipe(Recipe):
    metric_keys = METRIC_KEYS
    result_keys = ("rewards", "eval_rewards", "reward_errors")
    lm_loss = False
    empty_message = ("No task to train on: every example lacks a prompt (a user turn before its answer), or its "
                     "prompt plus max_completion_length is longer than max_seq_len.")

    def __init__(self):
        self.tally = RewardTally()
        self.max_completion_length = 64

    def steps(self, n_examples: int, hp: dict, stage) -> int:
        return steps_for(n_examples * int(hp["num_generations"]), hp, stage)

    def tokenize(self, tokenizer, examples: list[dict], *, max_len: int):
        return tasks_dataset(tokenizer, examples, max_len=max_len, max_completion_length=self.max_completion_length)

    def prepare(self, job) -> None:
        from workers.engine import rewards

        self.max_completion_length = int(job.hp["max_completion_length"])
        weights = run_weights(job.hp)
        if not weights:
            raise ValueError("A GRPO run needs reward weights: give reward_weights or a reward_preset.")
        problems = rewards.validate_weights(weights)  # e.g. a plugin this worker did not load (HUB_REWARD_PLUGINS)
        if problems:
            raise ValueError("Reward weights: " + "; ".join(p["message"] for p in problems))

    def model(self, job, stage_index: int, start_from: str | None):
        if job.hp.get("full_weights"):
            return load_causal_lm(start_from or job.base_model_path, trainable_base=True)
        model = load_causal_lm(job.base_model_path)
        adapter = start_from or job.adapter_path
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        return model

    def trainer(self, job, *, model, args: dict, train_ds, val_ds, tokenizer, callback, on_cuda: bool):
        from trl import GRPOConfig

        hp = job.hp
        weights = run_weights(hp)
        generations = int(hp["num_generations"])
        eval_batch = generations * max(1, int(hp["batch_size"]) // generations)
        has_val = val_ds is not None
        config = GRPOConfig(
            **{**args, "include_num_input_tokens_seen": "no",  # TRL counts prompt + completion tokens itself
               "train_sampling_strategy": "random", "per_device_eval_batch_size": eval_batch,
               "metric_for_best_model": "reward" if has_val else None, "greater_is_better": True if has_val else None},
            num_generations=generations, max_completion_length=int(hp["max_completion_length"]),
            beta=float(hp["beta"]), temperature=float(hp["temperature"]), reward_weights=trl_weights(weights),
            disable_dropout=True, gradient_checkpointing=bool(hp.get("gradient_checkpointing")),
            log_completions=False)
        peft_config = None
        if not hp.get("full_weights") and not hasattr(model, "peft_config"):
            peft_config = lora_config({**hp, "lora_dropout": 0.0})
        return _trainer_class()(model=model, reward_funcs=reward_functions(weights, self.tally), args=config,
                                train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
                                callbacks=[callback], peft_config=peft_config)

    def stage_summary(self, trainer) -> dict:
        out: dict = {}
        last = next((e for e in reversed(trainer.state.log_history) if "reward" in e and "loss" in e), None)
        if last:
            out["rewards"] = {k: float(v) for k, v in last.items() if _matches(k) and v is not None}
        errors = self.tally.summary()
        if errors:
            out["reward_errors"] = errors
        return out

    def eval_summary(self, metrics: dict) -> dict:
        found = {k[len("eval_"):]: float(v) for k, v in metrics.items()
                 if k.startswith("eval_") and _matches(k[len("eval_"):]) and v is not None}
        return {"eval_rewards": found} if found else {}
