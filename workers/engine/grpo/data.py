"""Dataset examples -> GRPO tasks, and tasks -> the prompt dataset TRL's GRPOTrainer samples from. Knows
nothing of Django.

An example is ``{"messages": [...], "tools": [...] | None, "meta": {...}, "task"?: {...} | None}``. The hub
gives every example its ``task`` (apps/training/services/rewards.py derives it with the evaluations' rule,
apps/evaluations/tasks.task_from_messages, so a task is the same when a model trains on it and when it is
evaluated on it; None: no prompt to answer). Without one, `example_task` derives it here by the same basic rule:

- the prompt is the conversation before its last assistant turn (an example with no assistant turn is a prompt
  as it is); the cut answer is a reference only: GRPO samples its own answers and never trains on it;
- ``meta.answer`` (a string or a number) is the expected final answer: the `answer_match` component compares
  the completion's final number (numerically) or final line with it;
- ``meta.tests`` (source code of Python tests that import the answer's code) is what the `tests_pass`
  component runs against the completion's code; ``meta.language`` the language of the expected code;
- ``tools`` become the task's tools.

A task is the reward registry's dict (workers/engine/rewards): ``{"prompt": messages, "answer"?, "tests"?,
"language"?, "tools"?, "metadata"?}``.

Contract: `example_task(example)` -> task or None; `tasks_dataset(tokenizer, examples, max_len=,
max_completion_length=)` -> (a `datasets.Dataset` with a "prompt" column (the prompt rendered with the hub's
chat layout and the generation prompt: chat_format.render_chat, as everywhere) and a "task" column (the task
as JSON, handed to the reward functions), stats {examples, truncated, dropped, tokens, trained_tokens});
an example without a prompt is dropped, and so is a task whose prompt plus max_completion_length does not
fit in max_len (TRL does not truncate prompts; counted in `truncated` too). `prompt_lengths(tokenizer,
examples)` the prompt token counts (None: no prompt), for the estimate before launch.
"""
from __future__ import annotations

import json

from workers.engine.chat_format import render_chat

TASK_FIELDS = ("answer", "tests", "language")  # read from the example's meta


def example_task(example: dict) -> dict | None:
    """The reward registry's task of a dataset example (see the module's docstring)."""
    if "task" in example:
        return example["task"]
    messages = list(example.get("messages") or [])
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    prompt = messages[:last] if last is not None else messages
    if not prompt:
        return None
    meta = dict(example.get("meta") or {})
    task: dict = {"prompt": prompt, "metadata": {}}
    for key in TASK_FIELDS:
        value = meta.get(key)
        if value not in (None, "") and not isinstance(value, bool):
            task[key] = str(value).strip() if key == "answer" else value
    if example.get("tools"):
        task["tools"] = example["tools"]
    return task


def _prompt_text(tokenizer, task: dict) -> str:
    prompt = task["prompt"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return render_chat(tokenizer, messages, task.get("tools"), add_generation_prompt=True)


def prompt_lengths(tokenizer, examples: list[dict]) -> list[int | None]:
    """Token count of each example's prompt (None: no prompt to answer)."""
    out: list[int | None] = []
    for ex in examples:
        task = example_task(ex)
        if not task or not task.get("prompt"):
            out.append(None)
            continue
        out.append(len(tokenizer(_prompt_text(tokenizer, task), add_special_tokens=False)["input_ids"]))
    return out


def tasks_dataset(tokenizer, examples: list[dict], *, max_len: int, max_completion_length: int):
    """The prompts TRL samples completions for, with their tasks. Returns (datasets.Dataset, stats)."""
    from datasets import Dataset

    cols: dict[str, list] = {"prompt": [], "task": []}
    dropped = truncated = tokens = 0
    for ex in examples:
        task = example_task(ex)
        if not task or not task.get("prompt"):
            dropped += 1
            continue
        text = _prompt_text(tokenizer, task)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n + max_completion_length > max_len:
            dropped += 1
            truncated += 1
            continue
        tokens += n
        cols["prompt"].append(text)
        cols["task"].append(json.dumps(task, ensure_ascii=False, default=str))
    stats = {"examples": len(cols["prompt"]), "truncated": truncated, "dropped": dropped, "tokens": tokens,
             "trained_tokens": 0}  # the trained tokens are the sampled completions, counted while training
    return Dataset.from_dict(cols), stats
