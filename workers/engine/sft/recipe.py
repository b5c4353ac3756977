"""What differs between training methods, behind the one training loop (loop.py). Knows nothing of Django.

Contract: a `Recipe` says how a method turns examples into a training dataset (`tokenize` -> (dataset,
stats with examples / truncated / dropped / tokens / trained_tokens)), which model a stage trains
(`model`), which Trainer trains it (`trainer`, given the loop's TrainingArguments keywords and its
callback) and what a finished stage adds to its result (`stage_summary`, `eval_summary`; the run's result
repeats the last stage's `result_keys`). `metric_keys` are the logged metrics the progress callback
forwards besides the loss; `lm_loss` says whether the loss is a language-model loss (then validation
reports a perplexity). `recipe_for(method)` picks it: the supervised recipe here (lora, full, scratch),
DPO's from workers.engine.dpo, KTO's from workers.engine.kto (imported only when used, so the supervised
path never loads TRL)."""
from __future__ import annotations

from workers.engine.data import PadCollator, tokenize_examples
from workers.engine.sft.models import stage_model


class Recipe:
    """Supervised fine-tuning: loss on the assistant tokens, the transformers Trainer."""

    metric_keys: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()  # keys of the last stage's result that the run's result repeats
    lm_loss = True
    empty_message = "No example has an assistant turn to train on (all weight 0 or empty)."

    def tokenize(self, tokenizer, examples: list[dict], *, max_len: int):
        return tokenize_examples(tokenizer, examples, max_len=max_len)

    def model(self, job, stage_index: int, start_from: str | None):
        return stage_model(job, stage_index, start_from)

    def trainer(self, job, *, model, args: dict, train_ds, val_ds, tokenizer, callback, on_cuda: bool):
        from transformers import Trainer, TrainingArguments

        return Trainer(model=model, args=TrainingArguments(**args), train_dataset=train_ds, eval_dataset=val_ds,
                       data_collator=PadCollator(tokenizer.pad_token_id, 8 if on_cuda else None),
                       processing_class=tokenizer, callbacks=[callback])

    def stage_summary(self, trainer) -> dict:
        return {}

    def eval_summary(self, metrics: dict) -> dict:
        return {}


def recipe_for(method: str) -> Recipe:
    if method == "dpo":
        from workers.engine.dpo.recipe import DPORecipe

        return DPORecipe()
    if method == "kto":
        from workers.engine.kto.recipe import KTORecipe

        return KTORecipe()
    return Recipe()
