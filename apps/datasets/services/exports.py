"""Exports: a version's examples as OpenAI or Together JSONL, a Markdown report, a zip per category.

Contract: `version_export_lines` streams JSONL lines (each ending in a newline) from the database in the
chosen format (`openai`, or `together` in one of TOGETHER_FORMATS), optionally one split or category;
`example_export_obj` is the mapping of one example; `version_report_text` is the validation + statistics
report; `version_export_zip_file` writes one JSONL per category + stats.json + report.md into a temporary
file under ARTIFACT_ROOT/EXPORT_TMP_DIR that the caller serves and deletes (removed here on failure).
Bad options are field errors. Reads only."""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
from django.conf import settings

from apps.core.exceptions import ValidationFailed
from apps.datasets.models import DatasetVersion
from apps.datasets.services.versions import _example_dict, safe_filename

def _openai_message(m: dict) -> dict:
    out = {"role": m["role"], "content": m.get("content")}
    for k in ("weight", "tool_calls", "tool_call_id", "name"):
        if m.get(k) is not None:
            out[k] = m[k]
    if out.get("tool_calls") and not out["content"]:
        out["content"] = None
    return out


def _together_messages(msgs: list[dict]) -> list[dict]:
    """Together's conversation format has system/user/assistant only: tool calls and results are folded
    into the text of the surrounding turns."""
    out: list[dict] = []
    for m in msgs:
        role, content = m["role"], m.get("content") or ""
        if m.get("tool_calls"):
            calls = "\n".join(f"<tool_call>{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}</tool_call>"
                              for c in m["tool_calls"])
            content = (content + "\n" + calls).strip()
        if role == "tool":
            role, content = "user", f"<tool_result>{content}</tool_result>"
        item = {"role": role, "content": content}
        if m.get("weight") is not None and role == "assistant":
            item["weight"] = m["weight"]
        if out and out[-1]["role"] == role and role != "system":
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + content}
        else:
            out.append(item)
    return out


def _render_text(msgs: list[dict]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
    return "\n".join(f"{names.get(m['role'], m['role'])}: {m.get('content') or ''}" for m in msgs)


def example_export_obj(ex: dict, *, fmt: str = "openai", together_format: str = "messages") -> dict:
    msgs, kind = ex["messages"], (ex.get("meta") or {}).get("kind", "chat")
    if fmt == "openai":
        obj = {"messages": [_openai_message(m) for m in msgs]}
        if ex.get("tools"):
            obj["tools"] = ex["tools"]
        return obj
    tf = together_format
    if tf == "auto":
        tf = {"text": "text", "prompt_completion": "prompt_completion", "preference": "preference"}.get(kind, "messages")
    if tf == "text":
        return {"text": msgs[0]["content"] if kind == "text" else _render_text(msgs)}
    if tf == "prompt_completion":
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prompt = msgs[0]["content"] if last == 1 and msgs[0]["role"] == "user" else _render_text(msgs[:last])
        return {"prompt": prompt, "completion": msgs[last].get("content") or ""}
    if tf == "preference":
        non_pref = (ex.get("meta") or {}).get("non_preferred_output")
        if not non_pref:
            raise ValidationFailed("This version has no preference pairs (non-preferred outputs) to export.",
                                   field="together_format")
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        return {"input": {"messages": _together_messages(msgs[:last])},
                "preferred_output": [{"role": "assistant", "content": msgs[last]["content"]}],
                "non_preferred_output": non_pref}
    return {"messages": _together_messages(msgs)}


EXPORT_FORMATS = ("openai", "together")
TOGETHER_FORMATS = ("messages", "text", "prompt_completion", "preference", "auto")


def version_export_lines(*, version: DatasetVersion, fmt: str = "openai", split: str | None = None,
                         together_format: str = "messages", category: str | None = None) -> Iterator[str]:
    """The version's examples as JSONL lines (each ends with a newline), streamed from the database."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(f"Unknown export format `{fmt}` (choose openai or together).", field="format")
    if together_format not in TOGETHER_FORMATS:
        raise ValidationFailed(f"Unknown Together format `{together_format}`.", field="together_format")
    if split not in (None, "", "train", "validation"):
        raise ValidationFailed("split must be train or validation.", field="split")
    qs = version.examples.order_by("index")
    if split:
        qs = qs.filter(split=split)
    if category is not None:
        qs = qs.filter(category=category)
    for e in qs.iterator(chunk_size=2000):
        obj = example_export_obj(_example_dict(e), fmt=fmt, together_format=together_format)
        yield orjson.dumps(obj).decode() + "\n"


def version_report_text(version: DatasetVersion) -> str:
    """A readable validation + statistics report (Markdown)."""
    v, s = version.validation or {}, version.stats or {}
    lines = [f"# {version.dataset.name} — version {version.number}", "",
             f"- status: {version.status}", f"- format: {version.format}", f"- target: {version.target}",
             f"- examples: {version.example_count}", f"- content hash: {version.content_hash}",
             f"- source: {version.source_name}", ""]
    tok = s.get("tokens") or {}
    if tok:
        lines += ["## Tokens", f"- base model: {tok.get('base_model')} (context {tok.get('context_length')})",
                  f"- total: {tok.get('total')}, mean {tok.get('mean')}, p95 {tok.get('p95')}, max {tok.get('max')}",
                  f"- per role: {json.dumps(tok.get('per_role'))}", f"- longer than context: {tok.get('too_long')}", ""]
    est = s.get("estimates") or {}
    if est:
        lines += ["## Estimates", f"- epochs: {est['epochs']}, billed tokens: {est['billed_tokens']}",
                  f"- local training: ~{est['local']['seconds']} s at {est['local']['tokens_per_second']} tokens/s "
                  f"({est['local']['source']})",
                  f"- Together: ${est['together']['usd']} (${est['together']['price_per_mtok']}/M tokens)",
                  f"- OpenAI: ${est['openai']['usd']} (${est['openai']['price_per_mtok']}/M tokens)", ""]
    if s.get("categories"):
        lines += ["## Categories"] + [f"- {k}: {n}" for k, n in s["categories"].items()] + [""]
    if s.get("duplicates"):
        lines += ["## Duplicates", f"- {json.dumps(s['duplicates'])}", ""]
    for sev in ("errors", "warnings"):
        items = v.get(sev) or []
        lines += [f"## {sev.title()} ({v.get(sev[:-1] + '_total', len(items))})"]
        for i in items:
            where = f"{i.get('file') or ''}:{i['line']}" if i.get("line") else (i.get("file") or "file")
            lines.append(f"- [{i['code']}] {where}: {i['message']}")
        lines.append("")
    return "\n".join(lines)


EXPORT_TMP_DIR = "tmp/exports"  # under ARTIFACT_ROOT


def version_export_zip_file(*, version: DatasetVersion, fmt: str = "openai",
                            together_format: str = "messages") -> Path:
    """One JSONL per category + stats.json + report.md, zipped into a temporary file under
    ARTIFACT_ROOT/tmp/exports (streamed from the database row by row, never held in memory). The caller
    owns the file and deletes it once it is served."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(f"Unknown export format `{fmt}` (choose openai or together).", field="format")
    if together_format not in TOGETHER_FORMATS:
        raise ValidationFailed(f"Unknown Together format `{together_format}`.", field="together_format")
    tmp_dir = Path(settings.ARTIFACT_ROOT) / EXPORT_TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"v{version.pk}-", suffix=".zip", dir=tmp_dir)
    path = Path(name)
    cats = sorted(version.examples.order_by().values_list("category", flat=True).distinct())
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            used: set[str] = set()
            for cat in cats:
                stem = safe_filename(cat or "uncategorized")
                entry, n = f"{stem}.jsonl", 1
                while entry in used:  # two categories that make the same safe file name
                    n += 1
                    entry = f"{stem}-{n}.jsonl"
                used.add(entry)
                with zf.open(entry, "w", force_zip64=True) as out:
                    for line in version_export_lines(version=version, fmt=fmt, category=cat,
                                                     together_format=together_format):
                        out.write(line.encode())
            zf.writestr("stats.json", json.dumps(version.stats, indent=2))
            zf.writestr("report.md", version_report_text(version))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
