"""Reward components: a registry of reward functions, weighted and combined into one score in [0, 1].
Knows nothing of Django; used by evaluations (apps/evaluations, workers/evaluations.py) and by GRPO training.

Contract:
- ``Component`` (name, label, description, category, fn, timeout_s, needs, verifier, in_process): see base.py.
  ``fn(completion, task) -> float | (float, detail)``; it may raise ``NotApplicable``.
- ``COMPONENTS``: name → Component, the builtins (builtin.py) and plugins.
- ``register(component)`` (a Component, or a function plus keyword fields); ``load_plugins(modules)`` imports each
  module: it calls ``register`` itself or defines ``REWARDS = [Component | function, ...]``. The modules named in
  ``HUB_REWARD_PLUGINS`` ("pkg.mod,other.mod") load when this package is imported; a module that fails to import
  is recorded in ``PLUGIN_ERRORS`` (shown with the registry) instead of breaking the import.
- ``score(completion, task, weights, *, timeout_s=None) -> {"total", "components": {name: {"score", "weight",
  "error", "detail", "skipped", "duration_s"}}}``. Only components with a weight > 0 run. Each runs with its
  timeout (``timeout_s`` caps them all): builtins in a thread of this process, plugins (``in_process=False``) in a
  forked child that is killed at the timeout. A component that raises or times out scores 0 with the error; one
  that is not applicable (missing ``needs``, ``NotApplicable``) is ``skipped`` and left out of the total.
  ``total`` = Σ weight·score / Σ weight over the components that were not skipped (0 when all were).
- ``score_many(completions, tasks, weights)``: the same for a batch, tasks scored in parallel threads (the slow
  components are subprocesses, so threads overlap them).
- ``verifiable(task, weights)``: some weighted verifier component (answer_match with task["answer"], tests_pass
  with task["tests"], a plugin declared ``verifier=True`` with its needs) can judge this task.
- ``validate_weights(weights) -> [{"field", "message"}]``: unknown names, non-numbers, negative / NaN / infinite
  weights, all zero.
- ``PRESETS``: name → weights. ``PRESET_NOTES``: name → what the preset measures, in words.

Task: ``{"prompt": str | [chat messages], "answer"?: str, "tests"?: python code, "language"?: str,
"tools"?: [OpenAI tool definitions], "metadata"?: {expected_tool, expect_tool_call, expects_files, target_chars,
tool_schemas: {name: JSON schema}, ...}}``.
"""
from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from workers.engine.rewards.base import CATEGORIES, Component, NotApplicable, _set_deadline, time_left
from workers.engine.rewards.builtin import BUILTINS

__all__ = ["CATEGORIES", "COMPONENTS", "Component", "NotApplicable", "PLUGIN_ERRORS", "PRESETS", "PRESET_NOTES",
           "describe", "load_plugins", "register", "score", "score_many", "time_left", "validate_weights",
           "verifiable"]

COMPONENTS: dict[str, Component] = {c.name: c for c in BUILTINS}
PLUGIN_ERRORS: list[dict] = []
_BY_MODULE: dict[str, dict[str, Component]] = {}   # what each module registered (load_plugins again: the same)
MAX_PARALLEL = 8

# The autonomous-agent seed's weights, each category mapped onto components that exist (README: "Reward components
# and evaluation"). Learning and innovation have no per-answer measure; see PRESET_NOTES.
PRESETS: dict[str, dict[str, float]] = {
    "autonomous-agent": {
        "lint": 0.15, "code_parses": 0.10,          # code quality 25 %
        "tests_pass": 0.30,                         # functionality 20 % + learning 10 % (held-out tests)
        "complexity": 0.20,                         # architecture 20 %
        "tool_calls": 0.10, "file_blocks": 0.05,    # autonomy 15 %
        "length": 0.10,                             # efficiency 10 %
        "distinct_ngrams": 0.05,                    # innovation 5 %
    },
    "code": {"tests_pass": 0.5, "code_parses": 0.2, "lint": 0.2, "complexity": 0.1},
    "arithmetic": {"answer_match": 0.9, "length": 0.1},
    "tool-use": {"tool_calls": 0.8, "length": 0.1, "distinct_ngrams": 0.1},
}
PRESET_NOTES: dict[str, str] = {
    "autonomous-agent": (
        "The seed's categories mapped onto real components: code quality 25 % = lint 15 % + code parses 10 %; "
        "functionality 20 % = tests pass; architecture 20 % = complexity (the one structural measure of a single "
        "answer); autonomy 15 % = tool calls valid 10 % + <file> blocks well-formed 5 %; learning 10 % has no "
        "per-answer measure, so it goes to tests pass too (held-out tests: generalisation) — improvement over the "
        "parent is what the comparison shows; efficiency 10 % = length within target; innovation 5 % = no "
        "repetition (the absence of loops, not novelty). The seed's percentages add up to 105 %: the total is a "
        "weighted mean, so each acts as its share of 105. Components a task cannot use (no tests, no tool call) "
        "drop out of that task's total."),
    "code": "Tests pass 50 %, code parses 20 %, lint 20 %, complexity 10 %.",
    "arithmetic": "Answer matches 90 % (the final number equals the task's answer), length 10 %.",
    "tool-use": "Tool calls valid 80 %, length 10 %, no repetition 10 %.",
}


def register(component, **fields) -> Component:
    """Add (or replace) a component. ``register(Component(...))`` or ``register(fn, name=..., label=...,
    description=..., category=..., timeout_s=..., needs=..., verifier=...)``."""
    if not isinstance(component, Component):
        if not callable(component):
            raise TypeError("register() takes a Component or a function")
        fn = component
        component = Component(name=fields.pop("name", fn.__name__), label=fields.pop("label", fn.__name__),
                              description=fields.pop("description", (fn.__doc__ or "").strip()),
                              category=fields.pop("category", "custom"), fn=fn, **fields)
    if not component.name or not component.name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"a component name is letters, digits, _ and -: {component.name!r}")
    if not (isinstance(component.timeout_s, (int, float)) and component.timeout_s > 0):
        raise ValueError(f"{component.name}: timeout_s must be a positive number")
    component.needs = tuple(component.needs)
    COMPONENTS[component.name] = component
    _BY_MODULE.setdefault(getattr(component.fn, "__module__", "") or "", {})[component.name] = component
    return component


def load_plugins(modules: list[str]) -> list[str]:
    """Import each module and register what it defines; the names registered. Raises ImportError (naming the
    module) when one cannot be imported."""
    added: list[str] = []
    for mod_name in [m.strip() for m in modules if m and m.strip()]:
        before = set(COMPONENTS)
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:
            raise ImportError(f"reward plugin {mod_name!r} could not be imported: {exc}") from exc
        for comp in list(_BY_MODULE.get(mod_name, {}).values()):  # imported before: register its components again
            register(comp)
        for item in getattr(module, "REWARDS", None) or []:
            register(item)
        added += [n for n in COMPONENTS if n not in before or n in _BY_MODULE.get(mod_name, {})]
    return list(dict.fromkeys(added))


def describe() -> list[dict]:
    return [c.describe() for c in COMPONENTS.values()]


def _load_env_plugins() -> None:
    names = [m for m in os.environ.get("HUB_REWARD_PLUGINS", "").split(",") if m.strip()]
    for name in names:
        try:
            load_plugins([name])
        except Exception as exc:  # recorded, shown by the registry API; the builtins keep working
            PLUGIN_ERRORS.append({"module": name.strip(), "error": str(exc)})


# -- running one component with a timeout ------------------------------------------------------------------------

def _normalize(result) -> tuple[float, str]:
    detail = ""
    if isinstance(result, tuple):
        result, detail = result[0], str(result[1]) if len(result) > 1 else ""
    if isinstance(result, bool):
        result = float(result)
    if not isinstance(result, (int, float)) or math.isnan(result):
        raise TypeError(f"returned {result!r}, not a number")
    return min(1.0, max(0.0, float(result))), detail


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _in_thread(comp: Component, completion: str, task: dict, timeout: float):
    box: dict = {}
    deadline = time.monotonic() + timeout

    def target():
        _set_deadline(deadline)
        try:
            box["ok"] = comp.fn(completion, task)
        except BaseException as exc:  # noqa: BLE001 - a component's failure is data
            box["exc"] = exc
            box["tb"] = traceback.format_exc(limit=3)

    th = threading.Thread(target=target, name=f"reward-{comp.name}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        return "timeout", None
    if "exc" in box:
        return "exc", box["exc"]
    return "ok", box["ok"]


def _child(conn, fn, completion, task, deadline):
    _set_deadline(deadline)
    try:
        out = fn(completion, task)
        conn.send(("ok", out))
    except NotApplicable as exc:
        conn.send(("na", str(exc)))
    except BaseException as exc:  # noqa: BLE001
        conn.send(("err", _error_text(exc)))
    finally:
        conn.close()


_fork_lock = threading.Lock()


def _in_child(comp: Component, completion: str, task: dict, timeout: float):
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    deadline = time.monotonic() + timeout
    with _fork_lock:   # one fork at a time: no other scoring thread is mid-fork
        proc = ctx.Process(target=_child, args=(child, comp.fn, completion, task, deadline), daemon=True)
        proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                kind, value = parent.recv()
            except (EOFError, OSError):
                kind, value = "err", "the plugin's process died without a result"
        else:
            kind, value = "timeout", None
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if kind == "timeout" and proc.exitcode not in (None, 0, -9) and proc.exitcode < 0:
        return "exc", RuntimeError(f"the plugin's process was killed by signal {-proc.exitcode}")
    if kind == "na":
        return "exc", NotApplicable(value)
    if kind == "err":
        return "exc", RuntimeError(value)
    return kind, value


def run_component(comp: Component, completion: str, task: dict, *, timeout_s: float | None = None) -> dict:
    """One component on one answer: ``{"score", "error", "detail", "skipped", "duration_s"}``."""
    missing = [f for f in comp.needs if task.get(f) in (None, "", [], {})]
    if missing:
        return {"score": 0.0, "error": None, "detail": f"not applicable: the task has no {', '.join(missing)}",
                "skipped": True, "duration_s": 0.0}
    timeout = min(comp.timeout_s, timeout_s) if timeout_s else comp.timeout_s
    started = time.monotonic()
    kind, value = (_in_thread if comp.in_process else _in_child)(comp, completion, task, timeout)
    took = round(time.monotonic() - started, 4)
    if kind == "timeout":
        return {"score": 0.0, "error": f"timed out after {timeout:g} s", "detail": "", "skipped": False,
                "duration_s": took}
    if kind == "exc":
        if isinstance(value, NotApplicable):
            return {"score": 0.0, "error": None, "detail": f"not applicable: {value}", "skipped": True,
                    "duration_s": took}
        return {"score": 0.0, "error": _error_text(value) if isinstance(value, BaseException) else str(value),
                "detail": "", "skipped": False, "duration_s": took}
    try:
        s, detail = _normalize(value)
    except TypeError as exc:
        return {"score": 0.0, "error": str(exc), "detail": "", "skipped": False, "duration_s": took}
    return {"score": s, "error": None, "detail": detail, "skipped": False, "duration_s": took}


# -- scoring ----------------------------------------------------------------------------------------------------

def _active(weights: dict) -> dict[str, float]:
    problems = validate_weights(weights)
    if problems:
        raise ValueError("; ".join(f"{p['field']}: {p['message']}" for p in problems))
    return {k: float(v) for k, v in weights.items() if float(v) > 0}


def _combine(results: dict[str, dict], weights: dict[str, float]) -> dict:
    num = den = 0.0
    out = {}
    for name, r in results.items():
        w = weights[name]
        out[name] = {"score": r["score"], "weight": w, "error": r["error"], "detail": r["detail"],
                     "skipped": r["skipped"], "duration_s": r["duration_s"]}
        if not r["skipped"]:
            num += w * r["score"]
            den += w
    return {"total": num / den if den else 0.0, "components": out}


def score(completion: str, task: dict, weights: dict[str, float], *, timeout_s: float | None = None) -> dict:
    active = _active(weights)
    completion = completion if isinstance(completion, str) else str(completion or "")
    results = {name: run_component(COMPONENTS[name], completion, task, timeout_s=timeout_s) for name in active}
    return _combine(results, active)


def score_many(completions: list[str], tasks: list[dict], weights: dict[str, float], *,
               timeout_s: float | None = None, max_workers: int | None = None) -> list[dict]:
    """``score`` for each (completion, task) pair, in order. Every (answer, component) runs as its own job in a
    thread pool, so subprocess components (tests, ruff, node) overlap."""
    if len(completions) != len(tasks):
        raise ValueError(f"{len(completions)} completions for {len(tasks)} tasks")
    active = _active(weights)
    jobs = [(i, name) for i in range(len(tasks)) for name in active]
    if not jobs:
        return []
    texts = [c if isinstance(c, str) else str(c or "") for c in completions]
    workers = max(1, min(max_workers or MAX_PARALLEL, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward") as pool:
        futures = {(i, name): pool.submit(run_component, COMPONENTS[name], texts[i], tasks[i], timeout_s=timeout_s)
                   for i, name in jobs}
        per_task: list[dict[str, dict]] = [{} for _ in tasks]
        for (i, name), fut in futures.items():
            per_task[i][name] = fut.result()
    return [_combine({n: r[n] for n in active}, active) for r in per_task]


def verifiable(task: dict, weights: dict) -> bool:
    for name, w in (weights or {}).items():
        comp = COMPONENTS.get(name)
        try:
            wf = float(w)
        except (TypeError, ValueError):
            continue
        if comp is None or not comp.verifier or not wf > 0:
            continue
        if all(task.get(f) not in (None, "", [], {}) for f in comp.needs):
            return True
    return False


def validate_weights(weights) -> list[dict]:
    if not isinstance(weights, dict):
        return [{"field": "weights", "message": "Give weights as an object: component name → weight."}]
    problems = []
    positive = False
    for name, w in weights.items():
        field = f"weights.{name}"
        if name not in COMPONENTS:
            problems.append({"field": field, "message": f"Unknown reward component {str(name)[:60]!r}; known: "
                                                         f"{', '.join(sorted(COMPONENTS))}."})
            continue
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            problems.append({"field": field, "message": f"A weight is a number, not {str(w)[:40]!r}."})
            continue
        if math.isnan(w) or math.isinf(w):
            problems.append({"field": field, "message": "A weight must be a finite number."})
        elif w < 0:
            problems.append({"field": field, "message": "A weight cannot be negative."})
        elif w > 0:
            positive = True
    if not problems and not positive:
        problems.append({"field": "weights", "message": "Give at least one component a weight above 0."})
    return problems


_load_env_plugins()
