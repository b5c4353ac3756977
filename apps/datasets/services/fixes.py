"""One-click fixes: each makes a NEW version from a ready one (the old one is never changed).

Contract: `version_fix(user=, version_id=, fix=)` applies one of FIXES (merge consecutive turns, drop
exact duplicates, drop empty turns, convert `User:/Assistant:` text to chat) to every example of a ready
version the user may write, streaming them into a new version that is validated again; unknown fixes
are a field error. The transforms are pure functions of one normalized example."""
from __future__ import annotations

import re

from apps.core.exceptions import ValidationFailed
from apps.datasets.models import DatasetVersion
from apps.datasets.services.versions import _derive_version, _example_dict, _writable_ready_version

FIXES = {
    "merge_consecutive_turns": "Merge consecutive turns of the same role into one",
    "drop_exact_duplicates": "Drop exact duplicates (keep the first)",
    "drop_empty_turns": "Drop empty turns (and examples left without an answer)",
    "convert_text_to_chat": "Convert text rows holding `User:/Assistant:` or `Q:/A:` turns into chat",
}


def _merge_consecutive(ex):
    out = []
    for m in ex["messages"]:
        if (out and out[-1]["role"] == m["role"] and m["role"] in ("user", "assistant", "system")
                and not out[-1].get("tool_calls") and not m.get("tool_calls")):
            prev = dict(out[-1])
            prev["content"] = ((prev.get("content") or "").rstrip() + "\n\n" + (m.get("content") or "").lstrip()).strip()
            if "weight" in prev or "weight" in m:
                prev["weight"] = max(prev.get("weight", 1), m.get("weight", 1))
            out[-1] = prev
        else:
            out.append(dict(m))
    ex["messages"] = out
    return ex


def _drop_empty(ex):
    ex["messages"] = [m for m in ex["messages"] if (m.get("content") or "").strip() or m.get("tool_calls")
                      or m["role"] == "tool"]
    return ex if any(m["role"] == "assistant" for m in ex["messages"]) else None


_TURN = re.compile(r"^(Q|A|Question|Answer|User|Assistant|Human|AI|System)\s*:\s?", re.I | re.M)
_TURN_ROLE = {"q": "user", "question": "user", "user": "user", "human": "user", "a": "assistant",
              "answer": "assistant", "assistant": "assistant", "ai": "assistant", "system": "system"}


def _text_to_chat(ex):
    if ex.get("meta", {}).get("kind") not in ("text", "prompt_completion"):
        return ex
    if ex["meta"]["kind"] == "prompt_completion":
        ex["meta"] = {**ex["meta"], "kind": "chat"}
        return ex
    text = ex["messages"][0]["content"] if ex["messages"] else ""
    parts = list(_TURN.finditer(text))
    if len(parts) < 2:
        return ex
    msgs = []
    for i, m in enumerate(parts):
        end = parts[i + 1].start() if i + 1 < len(parts) else len(text)
        msgs.append({"role": _TURN_ROLE[m.group(1).lower()], "content": text[m.end():end].strip()})
    if not any(m["role"] == "assistant" for m in msgs):
        return ex
    ex["messages"] = msgs
    ex["meta"] = {**ex["meta"], "kind": "chat"}
    return ex


def version_fix(*, user, version_id: int, fix: str) -> DatasetVersion:
    """Apply a one-click fix to a version: a NEW version is created; the old one is never changed."""
    if fix not in FIXES:
        raise ValidationFailed(f"Unknown fix `{fix}` (choose {', '.join(FIXES)}).", field="fix")
    parent = _writable_ready_version(user, version_id, "fix")

    def transformed():
        seen = set()
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            ex = _example_dict(e)
            if fix == "drop_exact_duplicates":
                if e.content_hash in seen:
                    continue
                seen.add(e.content_hash)
            elif fix == "merge_consecutive_turns":
                ex = _merge_consecutive(ex)
            elif fix == "drop_empty_turns":
                ex = _drop_empty(ex)
            elif fix == "convert_text_to_chat":
                ex = _text_to_chat(ex)
            if ex is not None:
                yield ex

    return _derive_version(user=user, parent=parent, note=FIXES[fix], examples=transformed(),
                           stage={"stage": "fixing", "fix": fix})
