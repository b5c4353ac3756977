"""The tasks of a dataset version, for GRPO runs: what the engine trains on and what run_create checks.

A GRPO task is an example's prompt (its messages before the last assistant turn) with what a reward component
can check it against, from the example's meta: `meta.answer` (answer_match), `meta.tests` and
`meta.language` (tests_pass; a `tests_to_impl` generation's tests are the fenced test file of its request).
It is derived by the evaluations' rule (apps/evaluations/tasks.task_from_messages), so a model is trained and
evaluated on the same task; the shapes are documented in workers/engine/grpo/data.py.

Contract: `version_tasks(version)` returns (train, validation) examples in the engine's shape ({"messages",
"tools", "meta", "task"}); `grpo_problems(hp)` the field errors run_create adds for a GRPO run's configuration
(bad or unknown reward weights on `hyperparameters.reward_weights`, a batch that does not hold whole groups of
completions on `hyperparameters.num_generations`); `grpo_task_problem(version, weights)` the message for the
dataset field when no task of the version can be verified by a weighted component; `grpo_weights(hp)` the
weights the run trains with (stored in its hyperparameters, so the run keeps them should a preset change);
`grpo_token_stats(version, ...)` the train split's token counts for the estimate (prompt plus
max_completion_length, per sampled completion). Reads only."""
from __future__ import annotations

from apps.training.services.preferences import _message


def _task(e) -> dict | None:
    from apps.evaluations.tasks import task_from_messages

    return task_from_messages(e.messages, e.tools or None, e.meta or {})


def _examples(version, split: str) -> list[dict]:
    qs = version.examples.filter(split=split).order_by("index").only("messages", "tools", "meta", "index")
    return [{"messages": [_message(m) for m in e.messages], "tools": e.tools or None, "meta": dict(e.meta or {}),
             "task": _task(e)} for e in qs.iterator(chunk_size=2000)]


def version_tasks(version) -> tuple[list[dict], list[dict]]:
    """(train, validation) examples of a dataset version, in order, with their meta (the tasks' answers/tests)."""
    return _examples(version, "train"), _examples(version, "validation")


def grpo_weights(hp: dict) -> dict[str, float]:
    from workers.engine.grpo.rewards import run_weights

    return run_weights(hp)


def _weight_problems(hp: dict) -> list[dict]:
    from workers.engine import rewards

    given = hp.get("reward_weights") or {}
    if not given:
        return []  # the preset's weights (the table checked its name)
    out = []
    for p in rewards.validate_weights(given):
        name = p["field"].split(".", 1)[1] if "." in p["field"] else ""
        message = p["message"] if not name or name in p["message"] else f"{name}: {p['message']}"
        out.append({"field": "hyperparameters.reward_weights", "message": message})
    return out


def grpo_task_problem(version, weights: dict[str, float]) -> str | None:
    """Why no task of the version can be verified with these weights (None when one can): the message
    run_create shows on the dataset field."""
    from workers.engine import rewards

    total = 0
    for e in version.examples.order_by("index").only("messages", "tools", "meta").iterator(chunk_size=2000):
        total += 1
        task = _task(e)
        if task is not None and rewards.verifiable(task, weights):
            return None
    if total == 0:
        return None  # "no training examples" is reported by the estimate
    verifiers = {n: c for n, c in rewards.COMPONENTS.items() if c.verifier}
    needs = "; ".join(f"{n} needs meta.{', meta.'.join(c.needs)}" if c.needs else n for n, c in verifiers.items())
    weighted = [n for n in weights if n in verifiers]
    if not weighted:
        return (f"GRPO trains on verifiable tasks, and none of the weighted reward components "
                f"({', '.join(weights)}) verifies an answer: weight a verifier ({needs}).")
    return (f"GRPO trains on verifiable tasks, and none of the {total} examples of this version can be verified by "
            f"the weighted verifiers ({', '.join(weighted)}): {needs}. Add those fields to the examples' meta, or "
            f"weight a verifier their fields fit.")


def grpo_problems(hp: dict) -> list[dict]:
    """Field errors of a GRPO run's configuration: its reward weights, whole groups of completions per step."""
    errors = _weight_problems(hp)
    g, bs, ga = hp.get("num_generations"), hp.get("batch_size"), hp.get("grad_accum")
    if all(isinstance(x, int) and x > 0 for x in (g, bs, ga)) and (bs * ga) % g:
        errors.append({"field": "hyperparameters.num_generations",
                       "message": f"batch_size × grad_accum ({bs} × {ga} = {bs * ga}) must be a multiple of "
                                  f"num_generations ({g}): each step trains on whole groups of completions."})
    return errors


def grpo_token_stats(version, *, tokenizer_path: str, max_len: int, max_completion_length: int,
                     generations: int) -> dict:
    """{examples (sampled completions), too_long, longest, tokens} of the train split's tasks: each task is
    answered `generations` times, each answer up to max_completion_length tokens after the prompt."""
    from apps.training.services.estimates import _tokenizer
    from workers.engine.grpo.data import prompt_lengths

    train, _ = version_tasks(version)
    lengths = [n + max_completion_length for n in prompt_lengths(_tokenizer(tokenizer_path), train) if n is not None]
    return {"examples": generations * len(lengths), "too_long": sum(1 for n in lengths if n > max_len),
            "longest": max(lengths, default=0), "tokens": generations * sum(min(n, max_len) for n in lengths),
            "source": "tokenized"}
