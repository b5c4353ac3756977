"""A GRPO run's reward: its weights (from the run's hyperparameters) and the TRL reward functions built on the
reward registry (workers/engine/rewards). Knows nothing of Django.

Contract:
- `run_weights(hp)` -> {component: weight}: the run's `reward_weights` when it gives any, else the weights of
  its `reward_preset` (rewards.PRESETS); components weighted 0 are left out. `trl_weights(weights)` are the
  same weights normalised to sum 1 (TRL's `reward_weights`, in the order of the functions).
- `reward_functions(weights, tally)` -> one TRL reward function per weighted component, named after it (so TRL
  logs `rewards/<name>/mean` and `rewards/<name>/std`), returning that component's score per completion in
  [0, 1], or None where the component does not apply to the task (TRL leaves it out of that completion's
  reward). The weighted mean TRL logs as `reward` is then Σ weight × score over the components that apply.
  The first function of a batch scores every component for the whole batch through `rewards.score_many`
  (each component with its own timeout, plugins in a child process killed at the timeout); the others read
  the same result. A component that raises or times out scores 0 and the run goes on: the share of the
  batch's completions it failed on is logged as `reward_errors/<name>`, and `tally` (a `RewardTally`) keeps
  the count and the last message per component for the run's result. Should the registry itself fail on a
  batch, every component scores 0 for that batch with that error.
"""
from __future__ import annotations

import json
import threading

from workers.engine import rewards


def run_weights(hp: dict) -> dict[str, float]:
    given = hp.get("reward_weights") or {}
    if not given:
        given = rewards.PRESETS.get(str(hp.get("reward_preset") or ""), {})
    return {name: float(w) for name, w in given.items() if float(w) > 0}


def trl_weights(weights: dict[str, float]) -> list[float]:
    total = sum(weights.values())
    return [w / total for w in weights.values()]


class RewardTally:
    """Errors per component over a run: {name: {"count", "last"}} (what a finished stage records)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.errors: dict[str, dict] = {}

    def add(self, name: str, message: str) -> None:
        with self._lock:
            entry = self.errors.setdefault(name, {"count": 0, "last": ""})
            entry["count"] += 1
            entry["last"] = message[:300]

    def summary(self) -> dict:
        with self._lock:
            return {name: dict(e) for name, e in self.errors.items()}


class _Batch:
    """The registry's scores of the batch being rewarded (computed once, read by every component's function)."""

    def __init__(self, weights: dict[str, float], tally: RewardTally):
        self.weights = weights
        self.tally = tally
        self.key = None
        self.results: list[dict] = []
        self.failure = ""

    def scores(self, completions: list, tasks: list) -> tuple[list[dict], str]:
        texts = [_text(c) for c in completions]
        key = (texts, [t if isinstance(t, str) else json.dumps(t, sort_keys=True, default=str) for t in tasks])
        if key != self.key:  # a new batch (the same answers to the same tasks score the same)
            parsed = [json.loads(t) if isinstance(t, str) else dict(t or {}) for t in tasks]
            try:
                self.results, self.failure = rewards.score_many(texts, parsed, self.weights), ""
            except Exception as exc:  # noqa: BLE001 - the run goes on: this batch scores 0
                self.results, self.failure = [], f"{type(exc).__name__}: {exc}"
            self.key = key
        return self.results, self.failure


def _text(completion) -> str:
    """A completion as text (conversational completions are lists of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def _component_function(name: str, batch: _Batch):
    def reward(prompts=None, completions=None, task=None, log_metric=None, **_):
        completions = list(completions or [])
        results, failure = batch.scores(completions, list(task or [{}] * len(completions)))
        out: list[float | None] = []
        failed = 0
        for i in range(len(completions)):
            if failure:
                out.append(0.0)
                failed += 1
                batch.tally.add(name, failure)
                continue
            r = results[i]["components"][name]
            if r.get("error"):
                failed += 1
                batch.tally.add(name, str(r["error"]))
                out.append(0.0)
            elif r.get("skipped"):
                out.append(None)
            else:
                out.append(float(r["score"]))
        if log_metric is not None and completions:
            log_metric(f"reward_errors/{name}", failed / len(completions))
        return out

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def reward_functions(weights: dict[str, float], tally: RewardTally) -> list:
    batch = _Batch(weights, tally)
    return [_component_function(name, batch) for name in weights]
