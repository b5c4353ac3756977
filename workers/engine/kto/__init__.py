"""Preference training with KTO on TRL's KTOTrainer and a LoRA adapter. Knows nothing of Django.

A KTO job is a `workers.engine.sft.Job` with method "kto" whose stage examples are the same preference
pairs DPO trains on (`{"messages": prompt + chosen answer, "rejected": [assistant messages], "tools"}`,
workers/engine/dpo); it runs through the same `workers.engine.sft.run_training`, with KTO's recipe:

- `data`: each pair becomes two unpaired rows, prompt + chosen (label True) and prompt + rejected
  (label False), rendered and tokenized the way DPO's pairs are (prompt / completion ids);
- `recipe`: the model (one copy, the reference being the adapter disabled or the parent adapter's frozen
  copy), TRL's KTOTrainer and the metrics it logs (rewards/chosen, rewards/rejected, rewards/margins, kl,
  logps/*), reported under TRL's names.
"""
from workers.engine.kto.data import pair_rows, tokenize_unpaired
from workers.engine.kto.recipe import METRIC_KEYS, KTORecipe

__all__ = ["KTORecipe", "METRIC_KEYS", "pair_rows", "tokenize_unpaired"]
