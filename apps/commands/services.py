"""A command, understood: the parser's action and parameters resolved against the database for one user.

Contract: `command_parse(*, user, text) -> dict`, the body of POST /api/commands/parse and what the command
bar shows. Nothing is written and nothing runs. Keys:
- `action`: generate | train | status | deploy | rollback | configure | review | cancel | unknown;
- `summary`: one sentence saying what would happen (or what is missing);
- `params`: the resolved values, flat (names as the API and the forms name them);
- `api`: `{method, path, body}`, the exact /api request that performs it, or null while something is missing
  or unresolved; a client performs it after its user confirms (the dashboard's command bar, `hub do`);
- `allowed`: false when this user may not perform it (`problems` says why; the service that executes
  checks again and answers 403);
- `form_url`: the dashboard page with the form for it (prefilled through the query string where the page
  reads one), or null; `result_url`: where the created object lives, `{field}` filled from the API's answer;
- `missing`: the fields the user must still give; `problems`: `[{field, message}]` (unknown names,
  permissions); `suggestions`: complete commands to try instead; `notes`: phrases understood but not used;
- `confirm`: the label of the confirming button; `hub_do`: the same command for the `hub` CLI.
Empty text (or one with a NUL byte, or longer than MAX_TEXT) is a ValidationFailed on `text` (422).
"""
from __future__ import annotations

import difflib
import re
import shlex

from apps.commands import parser
from apps.core.exceptions import ValidationFailed

MAX_TEXT = 1000
VERBS = ("generate", "train", "fine-tune", "check", "status", "deploy", "rollback", "roll", "configure", "setup",
         "review", "cancel", "start")


def fmt(value) -> str:
    """A number as people write it: 3, 0.1, 1e-5 (not 1e-05 or 3.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{value:g}").replace("e+", "e")


def hub_do(text: str) -> str:
    if not re.search(r"[\"$`\\!]", text):
        return f'hub do "{text}"'
    return f"hub do {shlex.quote(text)}"


class Result:
    def __init__(self, text: str, action: str):
        self.text, self.action = text, action
        self.summary = ""
        self.params: dict = {}
        self.api: dict | None = None
        self.allowed = True
        self.form_url: str | None = None
        self.result_url: str | None = None
        self.missing: list[str] = []
        self.problems: list[dict] = []
        self.suggestions: list[str] = []
        self.notes: list[str] = []
        self.confirm = "Confirm"

    def need(self, field: str, message: str) -> None:
        if field not in self.missing:
            self.missing.append(field)
        self.problem(field, message)

    def problem(self, field: str | None, message: str) -> None:
        self.problems.append({"field": field, "message": message})

    def deny(self, message: str) -> None:
        self.allowed = False
        self.problem(None, message)

    def suggest(self, *texts: str) -> None:
        for t in texts:
            if t and t not in self.suggestions and t != self.text and len(self.suggestions) < 5:
                self.suggestions.append(t)

    def call(self, method: str, path: str, body: dict | None = None) -> None:
        """The API call, kept only when nothing is missing or unresolved (a permission problem keeps it)."""
        blocking = self.missing or any(p["field"] is not None for p in self.problems)
        self.api = None if blocking else {"method": method, "path": path, "body": body}

    def as_dict(self) -> dict:
        return {"text": self.text, "action": self.action, "summary": self.summary, "params": self.params,
                "api": self.api, "allowed": self.allowed, "form_url": self.form_url,
                "result_url": self.result_url, "missing": self.missing, "problems": self.problems,
                "suggestions": self.suggestions, "notes": self.notes, "confirm": self.confirm,
                "hub_do": hub_do(self.text)}


def closest(name: str, names, n: int = 3) -> list[str]:
    """The known names nearest to `name` (case-insensitive), best first."""
    by_lower = {}
    for candidate in names:
        by_lower.setdefault(candidate.lower(), candidate)
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)]


def quoted(name: str) -> str:
    """A name as the parser reads it back: bare when it is one word, else in quotes ("dataset 1")."""
    if re.fullmatch(r"[A-Za-z0-9_@][\w./:@+-]*", name):
        return name
    return f'"{name}"' if '"' not in name else f"'{name}'"


def replace_word(text: str, old: str, new: str) -> str:
    new = quoted(new)
    for pattern in (rf"\"{re.escape(old)}\"", rf"'{re.escape(old)}'", rf"(?<![\w-]){re.escape(old)}(?![\w-])"):
        if re.search(pattern, text):
            return re.sub(pattern, new.replace("\\", r"\\"), text, count=1)
    return text


def _unknown(user, text: str, out: Result) -> None:
    words = text.split()
    for i, word in enumerate(words[:3]):  # a misspelt verb: "trian demo ..." -> "train demo ..."
        match = difflib.get_close_matches(word.lower(), VERBS, n=1, cutoff=0.7)
        if match and match[0] != word.lower():
            fixed = " ".join(words[:i] + [match[0]] + words[i + 1:])
            if parser.detect(fixed) != "unknown":
                out.suggest(fixed)
    ranked = sorted(parser.EXAMPLES, key=lambda e: -difflib.SequenceMatcher(None, text.lower(), e.lower()).ratio())
    out.suggest(*ranked[:4 - len(out.suggestions)])
    out.summary = ("Not a command the bar knows. Start with generate, train, check status, deploy, roll back, "
                   "configure, review or cancel.")


def command_parse(*, user, text) -> dict:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("Type a command, e.g. “train demo with lr 1e-5 and 3 epochs”.", field="text")
    if "\x00" in text:
        raise ValidationFailed("The command must not contain NUL bytes.", field="text")
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"A command is at most {MAX_TEXT} characters.", field="text")
    from apps.commands import actions

    parsed = parser.parse(text)
    out = Result(parsed.text, parsed.action)
    out.notes.extend(parsed.notes)
    resolve = actions.RESOLVERS.get(parsed.action)
    if resolve is None:
        _unknown(user, parsed.text, out)
    else:
        resolve(user, parsed.params, out)
    if not out.summary:  # a resolver that stopped at a problem says it
        out.summary = out.problems[0]["message"] if out.problems else "Nothing to do."
    return out.as_dict()
