"""Remote fine-tuning on Together.ai through its HTTP API (httpx).

The package, by concern: `client` (HTTP, retries), `mapping` (hyperparameters -> job request, price,
statuses and events), `lifecycle` (submit, poll, finish, cancel; reconciled by apps.core.jobs). Import from the package.

One run moves through short steps, each one a Dramatiq message (`workers.together.together_run`), never a
sleeping loop:

    queued, no remote job        export the pinned dataset version to JSONL, POST /files/upload,
                                 POST /fine-tunes, store remote_job_id          -> poll again later
    queued/running + remote job  GET /fine-tunes/{id} and /fine-tunes/{id}/events, map the state, record the
                                 events as metric points, send a pending cancel -> poll again later, or finish
    completed                    register a ModelVersion(kind="remote", remote_model_id=<model_output_name>)

Endpoints and field names follow Together's API reference (docs.together.ai/reference: "upload file",
"create fine-tuning job") and its Python SDK (together-python: resources/finetune.py, types/finetune.py):
the job body carries `training_type` = {"type": "Lora", lora_r, lora_alpha, lora_dropout,
lora_trainable_modules} or {"type": "Full"}; a job reports `status` (pending, queued, running, compressing,
uploading, cancel_requested, cancelled, error, user_error, completed), `model_output_name`, `steps_completed`,
`total_steps`, `epochs_completed`, `queue_depth`, `token_count`, `total_price`.

Hyperparameters: the Together columns of the hyperparameter table (workers/engine/hyperparameters/table.py;
the README's "Hyperparameters" table lists each one's Together field, aliases, bounds and default). LoRA
settings go into `training_type` for method lora; method full sends {"type": "Full"}. `training_method` is
{"method": "sft"}, or for method dpo {"method": "dpo", "dpo_beta": β} with a LoRA `training_type` and the train
split's preference pairs uploaded in Together's preference format (mapping.py, submit.py).

Failure policy: a failed upload or job creation fails the run at once (the client has already retried
429/5xx/network errors with bounded backoff); a failed status poll is retried at the next poll and fails the
run after TOGETHER_MAX_POLL_FAILURES in a row; authentication errors fail at once. Whatever happens, the run
ends in succeeded/failed/cancelled with a message a person can act on: nothing is left in `running`.
"""
from apps.training.backends.together.client import TogetherClient, TogetherError
from apps.training.backends.together.lifecycle import (
    together_remote_cancel,
    together_run_cancel,
    together_run_fail,
    together_run_step,
)
from apps.training.backends.together.mapping import (
    REMOTE_STATUS_MAP,
    estimate_cost,
    parse_event_metrics,
    together_check_configured,
    together_job_request,
)

__all__ = [
    "REMOTE_STATUS_MAP", "TogetherClient", "TogetherError", "estimate_cost", "parse_event_metrics",
    "together_check_configured", "together_job_request", "together_remote_cancel", "together_run_cancel",
    "together_run_fail", "together_run_step",
]
