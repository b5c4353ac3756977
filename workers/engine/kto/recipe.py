"""KTO's recipe for the one training loop (workers/engine/sft/loop.py): preference pairs unpaired into
desirable and undesirable answers (kto/data.py), a LoRA adapter, TRL's KTOTrainer. Knows nothing of Django.

Contract: `KTORecipe` is what `recipe_for("kto")` returns. The model is the one copy DPO uses
(`DPORecipe.model`): a new adapter is added by TRL from `peft_config` (the reference is the adapter
disabled); a continued adapter version is loaded trainable and TRL keeps a frozen "ref" copy of it. The
KTOConfig is the loop's TrainingArguments plus beta, desirable_weight, undesirable_weight and max_length
from the run's hyperparameters, with a sequential sampler (TRL's KL estimate pairs each row with its
neighbour's completion; the rows come interleaved from kto/data.py). The progress callback forwards TRL's
metric names (`METRIC_KEYS`: rewards/chosen, rewards/rejected, rewards/margins, kl, logps/*); a finished
stage records the last logged ones under "preference" and the validation split's under "eval_preference"
(as DPO does). Saved adapters hold only the trained adapter, never the reference copy."""
from __future__ import annotations

import shutil
from pathlib import Path

from workers.engine.dpo.recipe import DPORecipe
from workers.engine.kto.data import tokenize_unpaired
from workers.engine.sft.models import lora_config

METRIC_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl", "logps/chosen", "logps/rejected")


def _trainer_class():
    from trl import KTOTrainer

    class HubKTOTrainer(KTOTrainer):
        """TRL's KTOTrainer fed rows the hub tokenized itself (workers.engine.kto.data)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if not self.calculate_KL:  # already rendered and tokenized by the hub
                return dataset
            size = args.per_device_train_batch_size

            def add_kl_completion_ids(batch):  # TRL's own rule: completions rotated by one within a batch
                batch["KL_completion_ids"] = [batch["completion_ids"][-1]] + batch["completion_ids"][:-1]
                return batch

            return dataset.map(add_kl_completion_ids, batched=True, batch_size=size)

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            ref = Path(output_dir or self.args.output_dir) / "ref"
            if "ref" in (getattr(self.model, "peft_config", None) or {}) and ref.is_dir():
                shutil.rmtree(ref, ignore_errors=True)  # the frozen reference is not part of the result

    return HubKTOTrainer


class KTORecipe(DPORecipe):
    metric_keys = METRIC_KEYS
    empty_message = ("No preference pair to train on: every pair lacks a chosen or a rejected answer, has two "
                     "identical answers, or has a prompt longer than max_seq_len.")

    def tokenize(self, tokenizer, examples: list[dict], *, max_len: int):
        return tokenize_unpaired(tokenizer, examples, max_len=max_len)

    def trainer(self, job, *, model, args: dict, train_ds, val_ds, tokenizer, callback, on_cuda: bool):
        from trl import KTOConfig

        hp = job.hp
        config = KTOConfig(
            **{**args, "train_sampling_strategy": "sequential"}, beta=float(hp["beta"]),
            desirable_weight=float(hp["desirable_weight"]), undesirable_weight=float(hp["undesirable_weight"]),
            max_length=int(hp["max_seq_len"]),
            pad_to_multiple_of=8 if on_cuda else None, gradient_checkpointing=bool(hp.get("gradient_checkpointing")))
        peft_config = (None if hasattr(model, "peft_config") or hp.get("full_weights")
                       else lora_config({**hp, "lora_dropout": 0.0}))
        return _trainer_class()(model=model, args=config, train_dataset=train_ds, eval_dataset=val_ds,
                                processing_class=tokenizer, callbacks=[callback], peft_config=peft_config)

    def stage_summary(self, trainer) -> dict:
        last = next((e for e in reversed(trainer.state.log_history) if "kl" in e and "loss" in e), None)
        return {"preference": {k: float(last[k]) for k in METRIC_KEYS if k in last}} if last else {}
