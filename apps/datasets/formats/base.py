"""What every importer produces: normalized examples (plain dicts) and issues in one Report.

A normalized example is a dict:
    {"messages": [{"role", "content", "weight"?, "tool_calls"?, "tool_call_id"?, "name"?}, ...],
     "tools": list | None, "source_file": str, "source_line": int | None,
     "category": str, "tags": list[str], "meta": dict}
`meta["kind"]` records the row shape it came from ("chat", "text", "prompt_completion", "preference")
so that exports can give it back in the same shape.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"

# Keep reports bounded: a 200k-line file full of errors must not produce a 200k-item JSON blob
# in one database row. Every occurrence is still counted in `counts`.
MAX_ISSUES_PER_CODE = 500
MAX_ISSUES = 5000

TARGETS = ("local", "openai", "together")


class FatalFormatError(Exception):
    """The file cannot be read at all (binary, unknown format, unsafe archive...)."""

    def __init__(self, code: str, message: str, *, line: int | None = None, file: str | None = None):
        super().__init__(message)
        self.code, self.message, self.line, self.file = code, message, line, file


@dataclass
class Report:
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    truncated: int = 0

    def add(self, code: str, message: str, *, line: int | None = None, file: str | None = None,
            severity: str = ERROR, example: int | None = None) -> None:
        self.counts[(severity, code)] += 1
        if self.counts[(severity, code)] > MAX_ISSUES_PER_CODE or len(self.errors) + len(self.warnings) >= MAX_ISSUES:
            self.truncated += 1
            return
        item = {"line": line, "code": code, "message": message, "severity": severity}
        if file:
            item["file"] = file
        if example is not None:
            item["example"] = example
        (self.errors if severity == ERROR else self.warnings).append(item)

    def error(self, code, message, **kw):
        self.add(code, message, severity=ERROR, **kw)

    def warn(self, code, message, **kw):
        self.add(code, message, severity=WARNING, **kw)

    @property
    def has_errors(self) -> bool:
        return any(sev == ERROR for (sev, _c) in self.counts)

    @property
    def error_total(self) -> int:
        return sum(n for (sev, _c), n in self.counts.items() if sev == ERROR)

    @property
    def warning_total(self) -> int:
        return sum(n for (sev, _c), n in self.counts.items() if sev == WARNING)

    def as_dict(self) -> dict:
        def _key(i):
            return (i.get("file") or "", i["line"] if i["line"] is not None else -1)

        return {
            "errors": sorted(self.errors, key=_key),
            "warnings": sorted(self.warnings, key=_key),
            "counts": {f"{sev}:{code}": n for (sev, code), n in sorted(self.counts.items())},
            "error_total": self.error_total,
            "warning_total": self.warning_total,
            "truncated": self.truncated,
        }


def make_example(messages, *, tools=None, source_file="", source_line=None, category="", tags=None,
                 kind="chat", **meta) -> dict:
    m = {"kind": kind}
    m.update({k: v for k, v in meta.items() if v is not None})
    return {"messages": messages, "tools": tools or None, "source_file": source_file, "source_line": source_line,
            "category": category or "", "tags": list(tags or []), "meta": m}
