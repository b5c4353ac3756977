"""Writes for training runs, by concern:

- `runs`: what a user asks for — create (validated, estimated, queued after commit), cancel, relaunch from
  a checkpoint, promote a checkpoint to a model version;
- `lifecycle`: what the worker and the reconciler call — enqueue, claim, resume point, progress,
  heartbeat, should_stop, checkpoints, succeed / fail / cancelled, reconcile after a crash;
- `estimates`: every before-launch estimate (tokens, steps, time, price) and the throughput history;
- `hyperparameters`: validation and defaults of a run's hyperparameters;
- `preferences`: a dataset version's preference pairs (DPO runs) and whether it holds only pairs;
- `rewards`: a dataset version's tasks (GRPO runs), the reward weights and whether a weighted component can
  verify the tasks;
- `grow`: grow runs before launch: the parent version (from scratch, full weights) and the target size checked
  with the engine's rules (workers/engine/grow/plan.py).

Callers import this package (`from apps.training import services; services.run_create(...)`): the names
below are its public surface. Actors are queued and events broadcast only after commit."""
from apps.training.services.estimates import (
    DEFAULT_TOKENS_PER_S,
    dataset_estimates,
    remote_run_estimate,
    run_estimate,
    throughput_for_parameters,
    token_lengths,
    tokens_per_second,
    version_examples,
)
from apps.training.services.hyperparameters import (
    CONTINUE_LR_FACTOR,
    DEFAULT_LR,
    LR_SCHEDULERS,
    run_default_hyperparameters,
)
from apps.training.services.lifecycle import (
    HEARTBEAT_STALE_S,
    checkpoint_record,
    run_claim,
    run_enqueue,
    run_fail,
    run_heartbeat,
    run_job_id,
    run_mark_cancelled,
    run_progress_record,
    run_reconcile,
    run_resume_point,
    run_send,
    run_set_phase,
    run_should_stop,
    run_succeed,
)
from apps.training.services.preferences import preference_problem, version_preference_pairs
from apps.training.services.rewards import grpo_problems, grpo_task_problem, grpo_weights, version_tasks
from apps.training.services.runs import (
    checkpoint_promote,
    run_create,
    run_output_dir,
    run_relaunch,
    run_request_cancel,
)

__all__ = [
    "CONTINUE_LR_FACTOR", "DEFAULT_LR", "DEFAULT_TOKENS_PER_S", "HEARTBEAT_STALE_S", "LR_SCHEDULERS",
    "checkpoint_promote", "checkpoint_record", "dataset_estimates", "preference_problem", "remote_run_estimate", "run_claim",
    "run_create", "run_default_hyperparameters", "run_enqueue", "run_estimate", "run_fail", "run_heartbeat",
    "run_job_id", "run_mark_cancelled", "run_output_dir", "run_progress_record", "run_reconcile", "run_relaunch",
    "run_request_cancel", "run_resume_point", "run_send", "run_set_phase", "run_should_stop", "run_succeed",
    "throughput_for_parameters", "token_lengths", "tokens_per_second", "version_examples",
    "version_preference_pairs", "grpo_problems", "grpo_task_problem", "grpo_weights", "version_tasks",
]
