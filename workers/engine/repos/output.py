"""The first seed's bundle: Together JSONL, scenarios JSON with metadata, generation-statistics.json,
generation-report.json and by-category JSONL files. Pure functions of their inputs (no clock inside),
so the same examples give the same bytes."""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

from workers.engine.repos.generators.base import parse_file_blocks

DEFAULT_PRICE_PER_MTOK = 0.48   # USD per million trained tokens; the app passes settings.TOGETHER_PRICE_PER_MTOK
THINK_RE = re.compile(r"<thinking>\n?(.*?)\n?</thinking>", re.S)


def token_counter(tokenizer=None):
    """``text -> tokens``: a tokenizer (anything with ``encode``), a callable, or ≈ chars/4 when None."""
    if tokenizer is None:
        return lambda text: math.ceil(len(text) / 4)
    if hasattr(tokenizer, "encode"):
        def enc(text):
            try:
                return len(tokenizer.encode(text, add_special_tokens=False))
            except TypeError:
                return len(tokenizer.encode(text))
        return enc
    return tokenizer


def example_tokens(example: dict, count) -> int:
    return sum(count(m.get("content") or "") for m in example["messages"])


def together_line(example: dict) -> str:
    msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in example["messages"]
            if m["role"] in ("system", "user", "assistant")]
    return json.dumps({"messages": msgs}, ensure_ascii=False)


def together_lines(examples):
    for ex in examples:
        yield together_line(ex)


def scenario(example: dict) -> dict:
    msgs = {m["role"]: m.get("content") or "" for m in example["messages"]}
    answer = msgs.get("assistant", "")
    m = THINK_RE.search(answer)
    meta = example.get("meta", {})
    return {"id": meta.get("example_id"), "category": example.get("category"), "complexity": meta.get("complexity"),
            "generator": meta.get("generator"), "language": meta.get("language"), "system": msgs.get("system", ""),
            "query": msgs.get("user", ""), "thinking": m.group(1).strip() if m else "",
            "files": [{"path": p, "content": c} for p, c in parse_file_blocks(answer)], "answer": answer,
            "provenance": meta.get("provenance"), "task": meta.get("task")}


def _analyses(analysis) -> list[dict]:
    if not analysis:
        return []
    return [analysis] if isinstance(analysis, dict) else [a for a in analysis if a]


def statistics(examples: list[dict], *, analysis=None, tokenizer=None, tasks=None, skipped=None) -> dict:
    count = token_counter(tokenizer)
    tokens = [example_tokens(ex, count) for ex in examples]
    analyses = _analyses(analysis)
    languages: Counter = Counter()
    components: Counter = Counter()
    for a in analyses:
        for lang, v in a.get("languages", {}).items():
            languages[lang] += v.get("files", 0)
        components.update(a.get("components", {}))
    repos = sorted({(ex.get("meta", {}).get("provenance") or {}).get("repo") for ex in examples} - {None})
    return {
        "repositories": {"count": max(len(analyses), len(repos)), "names": repos},
        "files": {"total": sum(a.get("files_total", 0) for a in analyses), **dict(languages.most_common())},
        "loc": sum(a.get("loc_total", 0) for a in analyses),
        "scenarios": {c: n for c, n in Counter(ex["meta"].get("complexity") for ex in examples).most_common()},
        "categories": dict(Counter(ex.get("category") for ex in examples).most_common()),
        "generators": dict(Counter(ex["meta"].get("generator") for ex in examples).most_common()),
        "languages": dict(Counter(ex["meta"].get("language") or "none" for ex in examples).most_common()),
        "components": dict(components),
        "tokens": {"total": sum(tokens), "average": round(sum(tokens) / len(tokens), 1) if tokens else 0,
                   "max": max(tokens) if tokens else 0, "method": "tokenizer" if tokenizer is not None else "chars/4"},
        "tasks": dict(Counter(t["category"] for t in tasks or []).most_common()),
        "skipped": dict(skipped or {}),
    }


def report(examples: list[dict], *, analysis=None, processing_time_s: float = 0.0, tokenizer=None,
           price_per_million_tokens: float = DEFAULT_PRICE_PER_MTOK, epochs: int = 3, tasks=None, skipped=None) -> dict:
    """generation-report.json: the first seed's report shape."""
    stats = statistics(examples, analysis=analysis, tokenizer=tokenizer, tasks=tasks, skipped=skipped)
    total = stats["tokens"]["total"]
    billed = total * epochs
    docs = sum(1 for ex in examples if ex.get("category") == "docs")
    return {
        "totalScenarios": len(examples),
        "codeScenarios": len(examples) - docs,
        "docScenarios": docs,
        "scenariosByCategory": stats["categories"],
        "scenariosByComplexity": stats["scenarios"],
        "filesByLanguage": {k: v for k, v in stats["files"].items() if k != "total"},
        "components": stats["components"],
        "totalTokens": total,
        "averageTokens": stats["tokens"]["average"],
        "processingTime": int(round(processing_time_s * 1000)),
        "estimatedTrainingCost": {"usd": round(billed / 1e6 * price_per_million_tokens, 4), "tokens": billed,
                                  "epochs": epochs, "pricePerMillionTokens": price_per_million_tokens},
        "statistics": {"repositories": stats["repositories"], "files": stats["files"], "scenarios": stats["scenarios"],
                       "components": stats["components"]},
    }


def category_file(category: str) -> str:
    return f"by-category/{category.replace('_', '-')}-training.jsonl"


def bundle(examples: list[dict], *, analysis=None, processing_time_s: float = 0.0, tokenizer=None,
           price_per_million_tokens: float = DEFAULT_PRICE_PER_MTOK, epochs: int = 3, tasks=None, skipped=None,
           metadata: dict | None = None) -> dict[str, bytes]:
    """Every file of the bundle, name -> bytes (write them with :func:`write_bundle` or into a zip)."""
    def jsonl(rows) -> bytes:
        text = "\n".join(rows)
        return (text + "\n").encode() if text else b""

    files: dict[str, bytes] = {"together-ai-training.jsonl": jsonl(together_lines(examples))}
    meta = {"totalScenarios": len(examples), **(metadata or {})}
    files["training-scenarios.json"] = json.dumps({"metadata": meta, "scenarios": [scenario(ex) for ex in examples],
                                                   "tasks": tasks or []}, ensure_ascii=False, indent=1).encode()
    files["generation-statistics.json"] = json.dumps(
        statistics(examples, analysis=analysis, tokenizer=tokenizer, tasks=tasks, skipped=skipped), indent=1).encode()
    files["generation-report.json"] = json.dumps(report(
        examples, analysis=analysis, processing_time_s=processing_time_s, tokenizer=tokenizer,
        price_per_million_tokens=price_per_million_tokens, epochs=epochs, tasks=tasks, skipped=skipped), indent=1).encode()
    by_cat: dict[str, list[str]] = {}
    for ex in examples:
        by_cat.setdefault(ex.get("category") or "uncategorized", []).append(together_line(ex))
    for cat, rows in sorted(by_cat.items()):
        files[category_file(cat)] = jsonl(rows)
    return files


def write_bundle(folder, files: dict[str, bytes]) -> list[Path]:
    root = Path(folder)
    out = []
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append(path)
    return out
