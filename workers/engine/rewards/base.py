"""The shape of one reward component, and the categories the results are grouped by. Knows nothing of Django."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# The autonomous-agent seed's categories (and "custom" for plugins that name none). A component belongs to one;
# the evaluation page shows the weighted mean per category.
CATEGORIES: dict[str, str] = {
    "code_quality": "Code quality",
    "functionality": "Functionality",
    "architecture": "Architecture",
    "autonomy": "Autonomy",
    "learning": "Learning",
    "efficiency": "Efficiency",
    "innovation": "Innovation",
    "custom": "Custom",
}


class NotApplicable(Exception):
    """Raised by a component when the task or answer gives it nothing to judge (a Python linter on a shell
    answer, a tool-call check on an answer without a call to a task without tools): the component is left out
    of the weighted mean for that task instead of scoring 0."""


@dataclass
class Component:
    """One reward function. ``fn(completion, task)`` returns a score in [0, 1], or ``(score, detail)``; it may
    raise :class:`NotApplicable`. Anything else it raises, or running past ``timeout_s``, scores 0 with the error
    recorded. ``needs`` are task fields it requires (missing → not applicable). ``verifier``: it checks
    correctness (GRPO refuses tasks with no weighted verifier). ``in_process``: run in a thread of the calling
    process (the builtins, whose own subprocesses have timeouts); otherwise (plugins, by default) in a forked
    child that is killed at the timeout, so a hanging plugin cannot hang or burn the caller."""
    name: str
    label: str
    description: str
    category: str
    fn: Callable[[str, dict], float | tuple[float, str]]
    timeout_s: float = 5.0
    needs: tuple[str, ...] = ()
    verifier: bool = False
    in_process: bool = False
    builtin: bool = False

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "description": self.description, "category": self.category,
                "category_label": CATEGORIES.get(self.category, self.category.replace("_", " ").capitalize()),
                "timeout_s": self.timeout_s, "needs": list(self.needs), "verifier": self.verifier,
                "builtin": self.builtin}


_deadline = threading.local()


def time_left(default: float = 10.0) -> float:
    """Seconds left to the component running in this thread (its timeout); ``default`` outside a scoring call.
    Components that start subprocesses give them this much time, so the subprocess ends with the component."""
    end = getattr(_deadline, "at", None)
    return default if end is None else max(0.05, end - time.monotonic())


def _set_deadline(at: float | None) -> None:
    _deadline.at = at
