"""The shape of a row of the hyperparameter table: its fields, numeric bounds and how it reaches
Together.ai, and the vocabulary rows use (methods, backends, form groups). Knows nothing of Django.

Contract: `Hyperparameter` (frozen) is one row; `applies(method, backend)`, `default_for(method,
continuing=, limit=)`, `together_bounds()` / `together_type()`, `widget`, `step` and `sample()` derive
what the API, form, validation and docs need from it. `Bounds` is a numeric range (inclusive or
exclusive on each side) with its JSON-schema keywords and its messages; `Together` says how a row is
sent in Together's POST /fine-tunes body (field, section, aliases, Together's own type, bounds, default,
required message, wire transform)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

METHODS = ("lora", "full", "scratch", "dpo", "kto", "grpo", "grow")  # dpo, kto: preference pairs, a LoRA adapter
# (workers/engine/dpo, workers/engine/kto; kto trains locally only); grpo: verifiable tasks and reward
# components (workers/engine/grpo; locally only)
# grow: a from-scratch model version grown into a larger size, then trained on (workers/engine/grow; locally only)
BACKENDS = ("local", "together")
# Together cannot train from scratch; dpo there sends training_method {"method": "dpo", dpo_beta} (a LoRA job)
BACKEND_METHODS = {"local": METHODS, "together": ("lora", "full", "dpo")}
CONTINUE_LR_FACTOR = 0.5  # continued training starts gentler than a fresh run
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
# keys of the hyperparameters object that are options of the run, not hyperparameters (run_create owns them)
RUN_OPTIONS = ("stages", "allow_truncation")

# (key, title): the form's sections, in order
GROUPS = (
    ("basics", "Basics"),
    ("optimizer", "Optimizer"),
    ("lora", "LoRA"),
    ("preference", "Preference (DPO) · KL (GRPO)"),
    ("rewards", "Rewards (GRPO)"),
    ("scratch", "From scratch"),
    ("grow", "Grow"),
    ("evaluation", "Evaluation"),
    ("advanced", "Checkpoints and advanced"),
)
_MISSING = object()


@dataclass(frozen=True)
class Bounds:
    """A numeric range; None is unbounded on that side."""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False

    def contains(self, x: float) -> bool:
        if self.min is not None and (x <= self.min if self.min_exclusive else x < self.min):
            return False
        if self.max is not None and (x >= self.max if self.max_exclusive else x > self.max):
            return False
        return True

    def json_schema(self) -> dict:
        out: dict[str, float] = {}
        if self.min is not None:
            out["exclusiveMinimum" if self.min_exclusive else "minimum"] = self.min
        if self.max is not None:
            out["exclusiveMaximum" if self.max_exclusive else "maximum"] = self.max
        return out

    def describe(self) -> str:
        """'from 1 to 100', 'above 0 and at most 1', 'of at least 1' (for Together's messages)."""
        if self.min is not None and self.max is not None and not self.min_exclusive and not self.max_exclusive:
            return f"from {self.min:g} to {self.max:g}"
        parts = []
        if self.min is not None:
            parts.append(f"above {self.min:g}" if self.min_exclusive else f"of at least {self.min:g}")
        if self.max is not None:
            parts.append(f"below {self.max:g}" if self.max_exclusive else f"at most {self.max:g}")
        return " and ".join(parts)

    def describe_local(self) -> str:
        """'at least 1 and at most 4096', 'greater than 0 and at most 1' (the local messages)."""
        parts = []
        if self.min is not None:
            parts.append(f"greater than {self.min:g}" if self.min_exclusive else f"at least {self.min:g}")
        if self.max is not None:
            parts.append(f"less than {self.max:g}" if self.max_exclusive else f"at most {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Together:
    """How a hyperparameter reaches Together's POST /fine-tunes body."""
    field: str  # its name there
    section: str = "body"  # "body", "training_type" (the LoRA settings object) or "training_method" (dpo_beta)
    aliases: tuple[str, ...] = ()  # other names accepted in a run's hyperparameters
    type: str | None = None  # Together's type when it differs from the local one
    bounds: Bounds | None = None  # Together's bounds when they differ from the local ones
    also: tuple[str, ...] = ()  # literal values accepted besides numbers (batch_size "max")
    default: Any = _MISSING  # sent when the user gives nothing (a callable gets the section built so far);
    #                          _MISSING: sent only when given
    required: str = ""  # the message when it is missing (and there is no default)
    transform: Callable[[Any], Any] | None = None  # clean value -> wire value

    @property
    def sends_default(self) -> bool:
        return self.default is not _MISSING


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str  # int | float | bool | choice | str | modules | prompts | weights ({name: number})
    #            | size (one of `choices`, or {dimension: int}: grow's target_size)
    label: str
    help: str
    group: str
    default: Any = None  # the local default: one value, or {method: value}; None: no default
    methods: tuple[str, ...] = METHODS
    backends: tuple[str, ...] = ("local",)
    bounds: Bounds | None = None
    choices: tuple[str, ...] = ()
    together: Together | None = None
    continuing_factor: float | None = None  # continued runs scale the default by this
    model_limit: str = ""  # a base-model attribute the value may not exceed (and the default is capped at)
    limit_message: str = ""  # "{value}" / "{limit}" are filled in
    invalid: str = ""  # the message for a bad value of a non-numeric type ("{choices}" filled in)
    pattern: str = ""  # str: the whole value must match
    max_items: int | None = None  # prompts: the first N are kept
    in_form: bool = True  # the new-run form has an input for it (model comes from the remote-model field)
    rows: int = 3  # prompts: textarea rows
    example: Any = None  # a valid value, for tests and docs (defaults to the default)

    # -- derived ------------------------------------------------------------------------------------
    def applies(self, method: str, backend: str = "local") -> bool:
        return (method in self.methods and backend in self.backends
                and method in BACKEND_METHODS.get(backend, ()))

    def default_for(self, method: str, *, continuing: bool = False, limit: int | None = None) -> Any:
        value = self.default.get(method) if isinstance(self.default, dict) else self.default
        if value is None:
            return None
        if continuing and self.continuing_factor is not None and method != "scratch":
            value = value * self.continuing_factor
        if limit and self.model_limit and isinstance(value, (int, float)):
            value = min(value, limit)
        if isinstance(value, dict):  # weights (a per-method default holds {method: {name: weight}})
            return dict(value)
        return list(value) if isinstance(value, list) else value

    def together_bounds(self) -> Bounds | None:
        return (self.together.bounds if self.together and self.together.bounds else self.bounds)

    def together_type(self) -> str:
        return (self.together.type if self.together and self.together.type else self.type)

    @property
    def widget(self) -> str:
        return {"int": "number", "float": "number", "bool": "checkbox", "choice": "select", "size": "select",
                "prompts": "textarea"}.get(self.type, "text")

    @property
    def step(self) -> str:
        return "1" if self.type == "int" else "any"

    def sample(self) -> Any:
        """A valid local value (a Together-only one for Together-only rows)."""
        if self.example is not None:
            return self.example
        value = self.default_for(self.methods[0])
        return value
