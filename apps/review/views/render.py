"""Example content for the review templates: a conversation's turns (text, code blocks, folded thinking and
file blocks, tool calls linked to their results and back, the inline diff of an edited turn), a turn rebuilt
from its edit box, and the colour classes of the kappa heatmap. Nothing here is marked safe: the templates
escape every string."""
from __future__ import annotations

import json
import re

from apps.core.exceptions import ValidationFailed
from apps.datasets.render import segments as block_segments


# -- rendering an example as a conversation ------------------------------------------------------------
FENCE_RE = re.compile(r"```([\w+.#-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.S)


def _text_pieces(text: str) -> list[dict]:
    """Plain text and fenced code blocks (```lang ... ```), in order."""
    out, pos = [], 0
    for m in FENCE_RE.finditer(text):
        if text[pos:m.start()].strip():
            out.append({"kind": "text", "text": text[pos:m.start()].strip("\n")})
        out.append({"kind": "code", "lang": m.group(1), "text": m.group(2).rstrip("\n")})
        pos = m.end()
    if text[pos:].strip():
        out.append({"kind": "text", "text": text[pos:].strip("\n")})
    return out


def content_text(content) -> str:
    """What the edit box shows for a turn's content: the text, or JSON for structured content."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, indent=1, ensure_ascii=False)


def content_segments(content) -> list[dict]:
    """Display segments of a turn: text, code, thinking and file blocks (folded by the template)."""
    if content is None:
        return []
    if not isinstance(content, str):
        parts = content if isinstance(content, list) else [content]
        if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
            content = "\n".join(str(p.get("text") or "") for p in parts)
        else:
            return [{"kind": "code", "lang": "json", "text": content_text(content)}]
    out = []
    for seg in block_segments(content):
        out.extend(_text_pieces(seg["text"]) if seg["kind"] == "text" else [seg])
    return out


def _pretty_json(raw) -> str:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    return json.dumps(raw, indent=1, ensure_ascii=False)


def diff_rows(lines) -> list[dict]:
    """Unified diff lines as rows the template colours (the ---/+++ header is dropped)."""
    rows = []
    for line in lines or []:
        if line.startswith(("---", "+++")):
            continue
        kind = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else \
            "del" if line.startswith("-") else "same"
        rows.append({"kind": kind, "text": line})
    return rows


def conversation(msgs: list, *, turn_info=None, marks=None) -> list[dict]:
    """Turns ready for templates/review/review.html#turn: role, segments, tool calls linked to their
    results (and back), the inline diff of an edited turn, the reviewer's mark on it. Nothing is marked safe:
    the template escapes every string."""
    info = {t.get("index"): t for t in (turn_info or []) if isinstance(t, dict)}
    marks = {str(k): v for k, v in (marks or {}).items()}
    calls: dict[str, dict] = {}
    for i, m in enumerate(msgs or []):
        for k, c in enumerate((m or {}).get("tool_calls") or []):
            if isinstance(c, dict) and c.get("id") is not None:
                calls[str(c["id"])] = {"turn": i, "anchor": f"call-{i}-{k}",
                                       "name": (c.get("function") or {}).get("name") or c.get("name")}
    results: dict[str, int] = {}
    for i, m in enumerate(msgs or []):
        if isinstance(m, dict) and m.get("role") == "tool" and m.get("tool_call_id") is not None:
            results.setdefault(str(m["tool_call_id"]), i)
    turns = []
    for i, m in enumerate(msgs or []):
        m = m if isinstance(m, dict) else {"role": "?", "content": content_text(m)}
        tool_calls = []
        for k, c in enumerate(m.get("tool_calls") or []):
            c = c if isinstance(c, dict) else {}
            fn = c.get("function") or {}
            cid = c.get("id")
            tool_calls.append({"id": cid, "anchor": f"call-{i}-{k}", "name": fn.get("name") or c.get("name") or "?",
                               "arguments": _pretty_json(fn.get("arguments", c.get("arguments", ""))),
                               "result_turn": results.get(str(cid)) if cid is not None else None})
        answers = calls.get(str(m.get("tool_call_id"))) if m.get("tool_call_id") is not None else None
        ti = info.get(i) or {}
        turns.append({
            "index": i, "number": i + 1, "role": str(m.get("role") or "?"), "name": m.get("name"),
            "weight": m.get("weight"), "segments": content_segments(m.get("content")),
            "tool_calls": tool_calls, "tool_call_id": m.get("tool_call_id"), "answers": answers,
            "mark": marks.get(str(i), ""), "changed": bool(ti.get("changed")), "edited_by": ti.get("edited_by"),
            "diff": diff_rows(ti.get("diff")), "edit_content": content_text(m.get("content")),
            "has_tool_calls": bool(m.get("tool_calls")),
            "edit_tool_calls": json.dumps(m.get("tool_calls"), indent=1, ensure_ascii=False) if m.get("tool_calls") else "",
            "editing": False, "errors": [], "conflict": None,
        })
    return turns


def message_from_post(original: dict, post) -> dict:
    """A turn as edited in the inline form: the content (and tool calls, as JSON) replaced, every other key
    (role, name, tool_call_id, weight) kept. 422 (field `message`) when the tool calls are not JSON."""
    msg = dict(original)
    raw = (post.get("content") or "").replace("\r\n", "\n")
    old = original.get("content")
    if old is None and raw == "":
        pass  # a tool-call turn without text stays without text
    elif old is not None and not isinstance(old, str):
        try:
            msg["content"] = json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed(f"This turn's content is structured: write it as JSON ({exc}).",
                                   field="message") from None
    else:
        msg["content"] = raw
    if "tool_calls" in post:
        tc = (post.get("tool_calls") or "").strip()
        if not tc:
            msg.pop("tool_calls", None)
        else:
            try:
                msg["tool_calls"] = json.loads(tc)
            except ValueError as exc:
                raise ValidationFailed(f"The tool calls are not valid JSON: {exc}.", field="message") from None
    return msg



# -- agreement colours ----------------------------------------------------------------------------------
KAPPA_BUCKETS = 11  # colour classes k-0 (-1) .. k-10 (+1)


def kappa_class(value) -> str:
    if value is None:
        return "k-na"
    v = max(-1.0, min(1.0, float(value)))
    return f"k-{round((v + 1) / 2 * (KAPPA_BUCKETS - 1))}"


def kappa_matrix(pairs: list[dict]) -> dict:
    """Rows of a reviewer x reviewer table from the pair list (symmetric; the diagonal is blank)."""
    names = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    cell = {}
    for p in pairs:
        cell[(p["a"], p["b"])] = cell[(p["b"], p["a"])] = p
    rows = []
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append({"diag": True})
                continue
            p = cell.get((a, b))
            k = p.get("cohen_kappa") if p else None
            cells.append({"kappa": k, "n": p.get("n", 0) if p else 0, "css": kappa_class(k)})
        rows.append({"name": a, "cells": cells})
    return {"names": names, "rows": rows}
