"""The command bar's deterministic parser: a plain-language command (the first seed's phrasing and its
neighbours) becomes an action and the parameters the text states. No model and no database: names stay names
here; apps.commands.services resolves them for the caller (with permissions) and builds the /api call.

Contract: `parse(text) -> Parsed(action, params, notes)`.
- `action` is one of ACTIONS, or "unknown".
- `params` holds only what the text says, keyed as the API names things where one exists (`learning_rate`,
  `epochs`, `batch_size`, `method`, `max_examples`, `include_tests`, `alias`, `temperature`, `max_tokens`,
  `timeout_s`, ...) and by reference otherwise (`dataset` = a name, `version_id`, `run_id`, `remote_job_id`,
  `latest`, `source` = a name, ...). Numbers are parsed in any common notation (1e-5, 1E-05, 0.00001,
  1x10^-5, 10^-5; "three epochs").
- `notes` are phrases understood but not used by this hub (the seed's `workspace ./dir`, `cleanup`, ...).
The action comes from the first words (`detect`), else from the strongest keyword anywhere; each action's
parameters are read by apps.commands.extract. The same text always gives the same result.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.commands.extract import PARSERS
from apps.commands.text import T, clean, number  # noqa: F401  (number: part of the contract)

ACTIONS = ("generate", "train", "status", "deploy", "rollback", "configure", "review", "cancel")

# Phrasings shown in the bar's empty state, the README and the suggestions for an unknown command. The first
# seed's examples are among them, verbatim.
EXAMPLES = (
    "train demo with lr 1e-5 and 3 epochs",
    "Train model with learning rate 0.00001 and 3 epochs",
    "Fine-tune model meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo with suffix my-elizaos-model learning rate "
    "0.0001 epochs 5 batch size 2",
    "train demo with dpo, beta 0.1 and batch size 4",
    "Train a model using the generated training data",
    "Generate training data for ElizaOS with max 1000 scenarios",
    "Generate training data with max 500 scenarios",
    "generate from my-repo with categories docstring and fim, include tests",
    "Check training status",
    "Check training status for job ft-abc123",
    "status of the latest run",
    "deploy version 3 to production",
    "deploy the latest model to staging as a 10% canary",
    "roll back production",
    "Setup auto-coder with temperature 0.1",
    "configure production with max tokens 4000 and fallback model gemini-pro",
    "start a review of demo",
    "cancel run 12",
)

@dataclass
class Parsed:
    text: str
    action: str
    params: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


_LEADING = (  # the first words decide when they can
    ("status", r"^(?:check|show|get|what(?:'s|\s+is)?|how(?:'s|\s+is)?|is|monitor|watch|status|progress)\b"),
    ("rollback", r"^(?:roll(?:ed)?[\s-]*back|rollback|revert|undo|roll\s+\S+\s+back)\b"),
    ("deploy", r"^(?:deploy|promote|ship|release|publish)\b"),
    ("cancel", r"^(?:cancel|stop|abort|kill)\b"),
    ("review", r"^(?:review|(?:start|create|open|begin|set\s+up)\s+(?:a\s+|the\s+)?review)\b"),
    ("train", r"^(?:train|fine[\s-]?tune|finetune|retrain|continue\s+training"
              r"|(?:start|launch|begin|kick\s+off|run)\s+(?:a\s+)?"
              r"(?:training|fine[\s-]?tun\w*|run|train)|(?:create|make)\s+(?:a\s+)?(?:run|model|fine[\s-]?tun\w*))\b"),
    ("generate", r"^(?:generate|(?:create|build|make|produce)\s+(?:the\s+|some\s+|a\s+)?(?:training\s+)?"
                 r"(?:data|dataset|scenarios))\b"),
    ("configure", r"^(?:configure|config|setup|set\s+up|set|change|update|use)\b"),
)
_ANYWHERE = (  # otherwise the strongest keyword wins, in this order
    ("status", r"\b(?:status|progress)\b"),
    ("rollback", r"\broll(?:ed)?[\s-]*back\b|\brollback\b"),
    ("deploy", r"\bdeploy\b"),
    ("review", r"\breview\b"),
    ("generate", r"\bgenerat\w*\b.*\b(?:data|scenarios|dataset)\b|\bgenerate\b"),
    ("train", r"\btrain\b|\bfine[\s-]?tune\b|\bfinetune\b|\btraining\s+run\b"),
    ("configure", r"\b(?:proxy|auto[\s-]?coder|fallback|chain)\b|\btemperature\b|\bmax\s+tokens\b"),
)
_POLITE = (r"^(?:(?:please|pls|can\s+you|could\s+you|would\s+you|i\s+want\s+to|i'd\s+like\s+to|let's|lets|now|ok"
           r"|okay|hey)[\s,]+)+")


def detect(text: str) -> str:
    low = re.sub(_POLITE, "", text.lower())
    for action, pattern in _LEADING:
        if re.search(pattern, low):
            return action
    for action, pattern in _ANYWHERE:
        if re.search(pattern, low):
            return action
    return "unknown"


def parse(text: str) -> Parsed:
    """The action and parameters of a command (see the module docstring)."""
    cleaned = clean(text or "")
    body = re.sub(_POLITE, "", cleaned, flags=re.IGNORECASE)
    action = detect(body)
    parsed = Parsed(text=cleaned, action=action)
    if action in PARSERS:
        PARSERS[action](T(body), parsed.params, parsed.notes)
    return parsed
