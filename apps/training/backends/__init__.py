"""Where runs train. `together/`: remotely on Together.ai (jobs of kind "training.together").

The local backend needs no module of its own: runs train on the hub's own workers (Dramatiq queue `gpu`, actor `train_run` in
workers/training.py), as jobs of kind "training.local" (apps/training/jobs.py): `run_enqueue` creates the
job and sends it by actor name after commit.

Cancel is cooperative, in every phase: `run_request_cancel` sets the job's cancel flag; the engine's
`should_stop()` sees it after the current optimizer step (it saves a checkpoint and stops) or during the
evaluation after training (the trained weights are kept). Multi-GPU runs (hyperparameter `gpus`) go
through `workers.engine.launch` (torchrun) on the same code path."""

