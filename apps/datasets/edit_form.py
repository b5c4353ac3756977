"""The structured example editor (templates/datasets/edit.html): one row per message — a role select, a
content textarea and, only where needed, the tool calls as JSON and the id of the call a tool turn answers —
plus one blank row to add a message. `rows_for(messages)` gives the rows to show; `parse(post)` turns the posted
rows back into messages, or field errors keyed by row. The raw JSON textarea stays, as the "advanced" mode.

Posted names: `m-count`, then for each row i: `m-i-role` ("" on the blank row: nothing added), `m-i-content`,
`m-i-tool_calls` (a JSON list; empty: none), `m-i-tool_call_id`, `m-i-name`, `m-i-weight` ("", "0" or "1"),
`m-i-remove` (checked: the message is dropped). Keys a row does not show (weight, name) travel as hidden fields,
so an unedited example comes back unchanged."""
from __future__ import annotations

import json

ROLES = ("system", "user", "assistant", "tool")
MAX_ROWS = 2000


def rows_for(messages: list[dict], *, blank: bool = True) -> list[dict]:
    rows = []
    for i, m in enumerate(messages or []):
        calls = m.get("tool_calls")
        rows.append({
            "i": i, "role": m.get("role") or "user", "content": m.get("content") or "",
            "tool_calls": json.dumps(calls, indent=2, ensure_ascii=False) if calls else "",
            "tool_call_id": m.get("tool_call_id") or "", "name": m.get("name") or "",
            "weight": "" if m.get("weight") is None else str(m.get("weight")), "remove": False, "error": "",
        })
    if blank:
        rows.append({"i": len(rows), "role": "", "content": "", "tool_calls": "", "tool_call_id": "", "name": "",
                     "weight": "", "remove": False, "error": "", "new": True})
    return rows


def _count(post) -> int:
    try:
        n = int(post.get("m-count", "0"))
    except ValueError:
        return 0
    return max(0, min(n, MAX_ROWS))


def posted_rows(post) -> list[dict]:
    """The rows as posted (to show them again after an error), the blank row last."""
    rows = []
    n = _count(post)
    for i in range(n):
        def g(k, i=i):
            return post.get(f"m-{i}-{k}", "")

        rows.append({"i": i, "role": g("role"), "content": g("content"), "tool_calls": g("tool_calls"),
                     "tool_call_id": g("tool_call_id"), "name": g("name"), "weight": g("weight"),
                     "remove": bool(post.get(f"m-{i}-remove")), "error": "", "new": i == n - 1 and not g("role")})
    if not rows or rows[-1]["role"]:
        rows.append({"i": n, "role": "", "content": "", "tool_calls": "", "tool_call_id": "", "name": "",
                     "weight": "", "remove": False, "error": "", "new": True})
    return rows


def parse(post) -> tuple[list[dict], list[dict]]:
    """(messages, rows): the messages built from the posted rows, and the rows with an `error` on each bad one
    (messages is meaningful only when no row has an error)."""
    rows = posted_rows(post)
    messages = []
    for r in rows:
        if r["remove"]:
            continue
        role = r["role"]
        if not role:  # the blank row, left blank
            if r["content"].strip() or r["tool_calls"].strip():
                r["error"] = "Choose a role for the new message."
            continue
        if role not in ROLES:
            r["error"] = f"Unknown role {role!r}."
            continue
        m: dict = {"role": role, "content": r["content"].replace("\r\n", "\n")}
        calls_text = r["tool_calls"].strip()
        if calls_text:
            try:
                calls = json.loads(calls_text)
            except ValueError as exc:
                r["error"] = f"The tool calls are not valid JSON: {exc}"
                continue
            if not isinstance(calls, list):
                r["error"] = "The tool calls must be a JSON list."
                continue
            if calls:
                m["tool_calls"] = calls
                if not m["content"]:
                    m["content"] = None  # an assistant turn that only calls tools (OpenAI's shape)
        if r["tool_call_id"].strip():
            m["tool_call_id"] = r["tool_call_id"].strip()
        if r["name"].strip():
            m["name"] = r["name"].strip()
        if r["weight"] in ("0", "1"):
            m["weight"] = int(r["weight"])
        messages.append(m)
    return messages, rows
