"""DPO's recipe for the one training loop (workers/engine/sft/loop.py): preference pairs, a LoRA adapter,
TRL's DPOTrainer. Knows nothing of Django.

Contract: `DPORecipe` is what `recipe_for("dpo")` returns. The model is the base model in one copy:
- a new adapter (no parent): TRL adds it from `peft_config`, and the reference is the same model with
  the adapter disabled;
- continuing an adapter version (`job.adapter_path`): the adapter is loaded trainable and TRL keeps a
  frozen copy of it as the reference ("ref" adapter), so the reference is the parent version itself.
The DPOConfig is the loop's TrainingArguments (steps, schedule, checkpoints, precision, length-grouped
batches, non-padding token count) plus beta, loss_type and max_length from the run's hyperparameters;
gradient checkpointing only when the run asks for it. The progress callback forwards TRL's metric names
(`METRIC_KEYS`: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/*); a finished
stage records the last logged ones under "preference" and the validation split's under
"eval_preference". Saved adapters (checkpoints and the final folder) hold only the trained adapter, never
the reference copy."""
from __future__ import annotations

import shutil
from pathlib import Path

from workers.engine.dpo.data import tokenize_pairs
from workers.engine.sft.models import load_causal_lm, lora_config
from workers.engine.sft.recipe import Recipe

METRIC_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
               "logps/chosen", "logps/rejected")


def _trainer_class():
    from trl import DPOTrainer

    class HubDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer fed pairs the hub tokenized itself (workers.engine.dpo.data)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:  # already rendered and tokenized by the hub
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            ref = Path(output_dir or self.args.output_dir) / "ref"
            if "ref" in (getattr(self.model, "peft_config", None) or {}) and ref.is_dir():
                shutil.rmtree(ref, ignore_errors=True)  # the frozen reference is not part of the result

    return HubDPOTrainer


class DPORecipe(Recipe):
    metric_keys = METRIC_KEYS
    result_keys = ("preference", "eval_preference")
    lm_loss = False
    empty_message = ("No preference pair to train on: every pair lacks a chosen or a rejected answer, has two "
                     "identical answers, or has a prompt longer than max_seq_len.")

    def tokenize(self, tokenizer, examples: list[dict], *, max_len: int):
        return tokenize_pairs(tokenizer, examples, max_len=max_len)

    def model(self, job, stage_index: int, start_from: str | None):
        if job.hp.get("full_weights"):  # every weight trained; TRL loads the reference from the same folder
            return load_causal_lm(start_from or job.base_model_path, trainable_base=True)
        model = load_causal_lm(job.base_model_path)
        adapter = start_from or job.adapter_path
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        return model

    def trainer(self, job, *, model, args: dict, train_ds, val_ds, tokenizer, callback, on_cuda: bool):
        from trl import DPOConfig

        hp = job.hp
        config = DPOConfig(
            **args, beta=float(hp["beta"]), loss_type=[str(hp["loss_type"])], max_length=int(hp["max_seq_len"]),
            truncation_mode="keep_start", pad_to_multiple_of=8 if on_cuda else None,
            gradient_checkpointing=bool(hp.get("gradient_checkpointing")))
        peft_config = (None if hasattr(model, "peft_config") or hp.get("full_weights")
                       else lora_config({**hp, "lora_dropout": 0.0}))
        return _trainer_class()(model=model, args=config, train_dataset=train_ds, eval_dataset=val_ds,
                                processing_class=tokenizer, callbacks=[callback], peft_config=peft_config)

    def stage_summary(self, trainer) -> dict:
        last = next((e for e in reversed(trainer.state.log_history) if "rewards/margins" in e), None)
        return {"preference": {k: float(last[k]) for k in METRIC_KEYS if k in last}} if last else {}

    def eval_summary(self, metrics: dict) -> dict:
        found = {k: float(metrics[f"eval_{k}"]) for k in METRIC_KEYS if metrics.get(f"eval_{k}") is not None}
        return {"eval_preference": found} if found else {}
