"""Preference training (DPO) on TRL's DPOTrainer with a LoRA adapter. Knows nothing of Django.

A DPO job is a `workers.engine.sft.Job` with method "dpo" whose stage examples are preference pairs
(`{"messages": prompt + chosen answer, "rejected": [assistant messages], "tools"}`); it runs through the
same `workers.engine.sft.run_training` as supervised fine-tuning (the same phases, report / should_stop /
on_checkpoint callbacks, checkpoints, resume, cancel and output layout), with DPO's recipe:

- `data`: pairs rendered with the hub's chat layout and tokenized (prompt / chosen / rejected ids);
- `recipe`: the model (one copy: the reference is the adapter disabled, or the parent adapter's frozen
  copy), TRL's DPOTrainer and the metrics it logs (rewards/chosen, rewards/rejected, rewards/margins,
  rewards/accuracies, logps/*), reported under TRL's names.
"""
from workers.engine.dpo.data import encode_pair, pair_lengths, split_pair, tokenize_pairs
from workers.engine.dpo.recipe import METRIC_KEYS, DPORecipe

__all__ = ["DPORecipe", "METRIC_KEYS", "encode_pair", "pair_lengths", "split_pair", "tokenize_pairs"]
