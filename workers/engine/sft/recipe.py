"""What differs between training methods, behind the one training loop (loop.py). Knows nothing of Django.

Contract: a `Recipe` says how a method turns examples into a training dataset (`tokenize` -> (dataset,
stats with examples / truncated / dropped / tokens / trained_tokens)), which model a stage trains
(`model`), which Trainer trains it (`trainer`, given the loop's TrainingArguments keywords and its
callback) and what a finished stage adds to its result (`stage_summary`, `eval_summary`; the run's result
repeats the last stage's `result_keys`). `metric_keys` are the logged metrics the progress callback
forwards besides the loss; `lm_loss` says whether the loss is a language-model loss (then validation
reports a perplexity). `prepare(job)` runs once before anything is tokenized; `steps(n_examples, hp,
stage)` is a stage's optimizer steps (GRPO trains on several sampled completions per task).
`recipe_for(method)` picks it: the supervised recipe here (lora, full, scratch), DPO's from
workers.engine.dpo, KTO's from workers.engine.kto, GRPO's from workers.engine.grpo (imported only when used,
so the supervised path never loads TRL)."""
from __future__ import annotations

from workers.engine.data import PadCollator, tokenize_examples
from workers.engine.sft.job import steps_for
from workers.engine.sft.models import stage_model


class Recipe:
    """Supervised fine-tuning: loss on the assistant tokens, the transformers Trainer."""

    metric_keys: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()  # keys of the last stage's result that the run's result repeats
    lm_loss = True
    empty_message = "No example has an assistant turn to train on (all weight 0 or empty)."

    def prepare(self, job) -> None:
        """Called once, before the stages are tokenized."""

    def steps(self, n_examples: int, hp: dict, stage) -> int:
        return steps_for(n_examples, hp, stage)

    def tokenize(self, tokenizer, examples: list[dict], *, max_len: int):
        return tokenize_examples(tokenizer, examples, max_len=max_len)

    def model(self, job, stage_index: int, start_from: str | None):
        return stage_model(job, stage_index, start_from)

    def trainer(self, job, *, model, args: dict, train_ds, val_ds, tokenizer, callback, on_cuda: bool):
        from transformers import Trainer, TrainingArguments

        return _trainer_class()(model=model, args=TrainingArguments(**args), train_dataset=train_ds,
                                eval_dataset=val_ds,
                                data_collator=PadCollator(tokenizer.pad_token_id, 8 if on_cuda else None),
                                processing_class=tokenizer, callbacks=[callback])

    def stage_summary(self, trainer) -> dict:
        return {}

    def eval_summary(self, metrics: dict) -> dict:
        return {}


LOSS_CHUNK_TOKENS = 1024  # target tokens per piece of the output layer + cross-entropy (see _trainer_class)


def _trainer_class():
    """The transformers Trainer with the supervised loss computed where it counts.

    The stock causal-LM forward turns every position's hidden state into fp32 logits over the whole vocabulary
    (49,152 for SmolLM2) and keeps them, their log-softmax and their gradient until the backward pass — most of it
    for prompt and padding positions whose label is -100. Here the model runs without its output layer
    (`logits_to_keep` empty, the final hidden states taken from `hidden_states[-1]`), only the positions with a
    target (labels shifted by one) go through the output layer, and that in pieces of LOSS_CHUNK_TOKENS whose logits
    are recomputed in the backward pass instead of kept (torch.utils.checkpoint): the loss and gradients are the
    same, the peak holds one piece's logits. Normalised as the Trainer's own causal-LM loss: summed and divided by
    `num_items_in_batch` (the targets of the whole accumulated batch) when the Trainer passes it, a mean otherwise.
    """
    import torch
    from torch.utils.checkpoint import checkpoint
    from transformers import Trainer

    def _piece_loss(head, hidden, target):
        logits = head(hidden).float()
        return torch.nn.functional.cross_entropy(logits, target, reduction="sum")

    class TargetsOnlyTrainer(Trainer):
        targets_only: bool | None = None  # decided on the first batch: does this model's path give the same loss?

        def _targets_only_agrees(self, model, inputs) -> bool:
            """Once, on the first batch's first row, without gradients: the stock loss and this one must agree (the final
            hidden states must be what the output layer reads — true of Llama-style models; any other is
            trained the stock way)."""
            row = {k: v[:1] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in inputs.items()}  # one row: cheap
            with torch.no_grad():
                stock = super().compute_loss(model, dict(row)).float()
                ours = self._loss(model, dict(row), None).float()
            return bool(torch.isfinite(stock)) and abs(stock.item() - ours.item()) <= 1e-3 * max(1.0, abs(stock.item()))

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or return_outputs or self.targets_only is False:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            if self.targets_only is None:
                try:
                    self.targets_only = self._targets_only_agrees(model, inputs)
                except Exception:  # noqa: BLE001 - an architecture this path does not fit: the stock path
                    self.targets_only = False
                if not self.targets_only:
                    return super().compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            return self._loss(model, dict(inputs), num_items_in_batch)

        def _loss(self, model, inputs, num_items_in_batch):
            labels = inputs.pop("labels")
            outputs = model(**inputs, logits_to_keep=torch.zeros(0, dtype=torch.long, device=labels.device),
                            output_hidden_states=True, use_cache=False)
            hidden = outputs.hidden_states[-1][:, :-1]
            target = labels[:, 1:]
            keep = target.ne(-100)
            hidden, target = hidden[keep], target[keep]
            head = self.accelerator.unwrap_model(model).get_output_embeddings()
            if target.numel() == 0:
                total = hidden.sum() * 0.0  # keeps the graph (and DDP's reducer) whole
            else:
                grad = torch.is_grad_enabled()
                total = sum(
                    checkpoint(_piece_loss, head, hidden[i:i + LOSS_CHUNK_TOKENS], target[i:i + LOSS_CHUNK_TOKENS],
                               use_reentrant=False) if grad else
                    _piece_loss(head, hidden[i:i + LOSS_CHUNK_TOKENS], target[i:i + LOSS_CHUNK_TOKENS])
                    for i in range(0, target.numel(), LOSS_CHUNK_TOKENS))
            if num_items_in_batch is not None:
                loss = total / num_items_in_batch
                if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                    loss = loss * self.accelerator.num_processes  # as the Trainer scales a model-computed loss
                self.loss_is_scaled_for_ga = True
            else:
                loss = total / max(target.numel(), 1)
                self.loss_is_scaled_for_ga = False
            return loss

    return TargetsOnlyTrainer


def recipe_for(method: str) -> Recipe:
    if method == "dpo":
        from workers.engine.dpo.recipe import DPORecipe

        return DPORecipe()
    if method == "kto":
        from workers.engine.kto.recipe import KTORecipe

        return KTORecipe()
    if method == "grpo":
        from workers.engine.grpo.recipe import GRPORecipe

        return GRPORecipe()
    return Recipe()
