"""The body of the job "evaluation.run": each version answers every task, each answer is scored, the summary is
written.

Contract: `evaluation_process(*, evaluation_id) -> Evaluation | None` (the worker's actor calls it; tests call it
inline). Idempotent: it claims the evaluation's job first (returns at once for a finished job or one a live process
holds); answers already saved are kept, so a resumed run answers only what is missing. Per side ("a": the version,
"b": the one compared with): the weights are loaded (workers.engine.export.write.load_source: an adapter merged into
its base; on CUDA when there is one), then tasks go in chunks of CHUNK: each answer is generated greedily
(workers.engine.evaluate._generate, the chat layout training used; the prompt must leave room for at least one new
token in the model's context, else that answer is an error), then the chunk is scored at once
(workers.engine.rewards.score_many; the tool registry's schemas are given as `metadata.tool_schemas`) and saved.
A cancel is honoured between answers (what the chunk answered so far is scored and kept). A component that raises or times out scores 0 with its error (the rewards
module); a generation that fails is saved with its error and left out of the means. Summary: stats.summarize.
"""
from __future__ import annotations

import gc
import logging
import time

from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.evaluations import stats
from apps.evaluations.models import Evaluation, EvaluationAnswer, EvaluationTask
from workers.engine import rewards

log = logging.getLogger(__name__)
CHUNK = 8


class Cancelled(Exception):
    pass


class GenerationError(Exception):
    """A task this model cannot answer (its prompt does not fit the context): the message is for the user."""


def _load(version):
    import torch

    from apps.registry.exports.services import source_of
    from workers.engine.export.write import load_source

    model, tokenizer = load_source(source_of(version))
    if torch.cuda.is_available():
        model.to("cuda")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _context_length(model) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "max_position_embeddings", None) if cfg is not None else None


def generate(model, tokenizer, task: dict, max_new_tokens: int) -> str:
    from workers.engine.chat_format import render_chat
    from workers.engine.evaluate import _generate

    messages = task["prompt"] if isinstance(task["prompt"], list) else [{"role": "user", "content": task["prompt"]}]
    tools = task.get("tools") or None
    ctx = _context_length(model)
    if ctx:
        text = render_chat(tokenizer, messages, tools, add_generation_prompt=True)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        room = ctx - n
        if room < 1:
            raise GenerationError(f"The prompt has {n} tokens; the model's context holds {ctx}.")
        max_new_tokens = min(max_new_tokens, room)
    return _generate(model, tokenizer, messages, max_new_tokens=max_new_tokens, tools=tools)


def _registry_schemas() -> dict:
    from apps.registry.models import Tool

    return {t.name: t.parameters or {} for t in Tool.objects.all()}


def _for_scoring(task: dict, schemas: dict) -> dict:
    if not schemas:
        return task
    meta = dict(task.get("metadata") or {})
    meta["tool_schemas"] = {**schemas, **(meta.get("tool_schemas") or {})}
    return {**task, "metadata": meta}


class _Job:
    def __init__(self, job_id: int):
        self.job_id = job_id
        self._stop_checker = job_services.job_stop_checker(job_id=job_id)

    def should_stop(self) -> bool:
        return self._stop_checker()

    def phase(self, name: str) -> None:
        job_services.job_set_phase(job_id=self.job_id, phase=name)

    def progress(self, done: int, total: int, message: str) -> None:
        job_services.job_progress(job_id=self.job_id, current=done, total=total, unit="answers", message=message)


def _answer_side(ev: Evaluation, side: str, version, tasks: list[EvaluationTask], job: _Job, counter: list[int],
                 total: int) -> None:
    done = set(EvaluationAnswer.objects.filter(task__evaluation=ev, side=side).values_list("task_id", flat=True))
    todo = [t for t in tasks if t.pk not in done]
    if not todo:
        return
    label = f"{version.name} (mv-{version.pk})"
    job.phase("loading")
    model, tokenizer = _load(version)
    schemas = _registry_schemas() if ev.weights.get("tool_calls") else {}
    max_new = int((ev.params or {}).get("max_new_tokens") or 256)
    job.phase("generating")
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            texts, errors, took = [], [], []
            stop = False
            for t in chunk:
                if job.should_stop():
                    stop = True  # score and keep what this chunk answered so far, then stop
                    break
                t0 = time.monotonic()
                try:
                    texts.append(generate(model, tokenizer, t.task, max_new))
                    errors.append("")
                except Exception as exc:  # one task's failure is data; the rest go on
                    texts.append("")
                    why = str(exc) if isinstance(exc, GenerationError) else f"{type(exc).__name__}: {exc}"
                    errors.append(job_services.error_line(why))
                took.append(round(time.monotonic() - t0, 3))
            chunk = chunk[:len(texts)]
            ok = [i for i, e in enumerate(errors) if not e]
            scored = rewards.score_many([texts[i] for i in ok], [_for_scoring(chunk[i].task, schemas) for i in ok],
                                        ev.weights) if ok else []
            by_index = dict(zip(ok, scored, strict=True))
            EvaluationAnswer.objects.bulk_create([
                EvaluationAnswer(task=t, side=side, text=texts[i], error=errors[i], generation_s=took[i],
                                 total=by_index[i]["total"] if i in by_index else None,
                                 components=by_index[i]["components"] if i in by_index else {})
                for i, t in enumerate(chunk)], ignore_conflicts=True)
            counter[0] += len(chunk)
            job.progress(counter[0], total, f"{label}: {start + len(chunk)}/{len(todo)}")
            if stop:
                raise Cancelled()
    finally:
        del model
        gc.collect()


def summary_of(ev: Evaluation) -> dict:
    rows = [{"task_id": a.task_id, "side": a.side, "total": a.total, "components": a.components, "error": a.error}
            for a in EvaluationAnswer.objects.filter(task__evaluation=ev)]
    return stats.summarize(rows, ev.weights, compare=bool(ev.compare_to_id))


def evaluation_process(*, evaluation_id: int) -> Evaluation | None:
    ev = Evaluation.objects.select_related("model_version__base_model", "compare_to__base_model").filter(
        pk=evaluation_id).first()
    if ev is None or ev.job_id is None:
        return ev
    holder = worker_id()
    if job_services.job_claim(job_id=ev.job_id, holder=holder) is None:
        return Evaluation.objects.filter(pk=evaluation_id).first()
    job = _Job(ev.job_id)
    tasks = list(ev.tasks.order_by("index"))
    sides = [("a", ev.model_version)] + ([("b", ev.compare_to)] if ev.compare_to_id else [])
    total = len(tasks) * len(sides)
    counter = [EvaluationAnswer.objects.filter(task__evaluation=ev).count()]
    try:
        with job_services.job_heartbeat_thread(job_id=ev.job_id, holder=holder):
            for side, version in sides:
                _answer_side(ev, side, version, tasks, job, counter, total)
            job.phase("summarizing")
            summary = summary_of(ev)
        job_services.job_finish(job_id=ev.job_id, status="succeeded", result={"summary": summary})
    except Cancelled:
        job_services.job_finish(job_id=ev.job_id, status="cancelled", result={"summary": summary_of(ev)})
    except Exception as exc:
        log.exception("evaluation %s failed", evaluation_id)
        from workers.engine.export import ExportError

        message = exc.message if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        job_services.job_finish(job_id=ev.job_id, status="failed", error=message, error_code="E_EVALUATION_FAILED")
    return Evaluation.objects.filter(pk=evaluation_id).first()
