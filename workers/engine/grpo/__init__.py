"""Reward-based RL on verifiable tasks (GRPO) on TRL's GRPOTrainer, a LoRA adapter by default. Knows nothing of
Django.

A GRPO job is a `workers.engine.sft.Job` with method "grpo" whose stage examples are tasks (`{"messages",
"tools", "meta", "task"?}`: a prompt and what a reward component checks an answer against, grpo/data.py); it
runs through the same `workers.engine.sft.run_training` as supervised fine-tuning (the same phases, report /
should_stop / on_checkpoint callbacks, checkpoints, resume, cancel and output layout), with GRPO's recipe:

- `data`: tasks from examples, prompts rendered with the hub's chat layout;
- `rewards`: the run's weights (reward_weights, else the reward_preset's) and one TRL reward function per
  weighted component of the reward registry (workers/engine/rewards); a component that raises or hangs scores 0;
- `recipe`: the model, TRL's GRPOTrainer, the steps (num_generations completions per task) and the metrics it
  logs (reward, reward_std, rewards/<name>/mean, reward_errors/<name>, kl, completions/mean_length, ...),
  reported under TRL's names.
"""
from workers.engine.grpo.data import example_task, prompt_lengths, tasks_dataset
from workers.engine.grpo.recipe import METRIC_KEYS, GRPORecipe
from workers.engine.grpo.rewards import RewardTally, reward_functions, run_weights, trl_weights

__all__ = ["GRPORecipe", "METRIC_KEYS", "RewardTally", "example_task", "prompt_lengths", "reward_functions",
           "run_weights", "tasks_dataset", "trl_weights"]
