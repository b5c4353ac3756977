"""What the components read out of an answer: its code (fenced blocks, ``<file>`` blocks or the whole text), the
language, and the final answer (a number or a short string). Pure functions."""
from __future__ import annotations

import re
from fractions import Fraction

LANGUAGE_ALIASES = {
    "py": "python", "python3": "python", "python": "python",
    "js": "javascript", "javascript": "javascript", "node": "javascript", "mjs": "javascript", "cjs": "javascript",
    "ts": "typescript", "typescript": "typescript",
    "sh": "shell", "bash": "shell", "shell": "shell", "zsh": "shell",
    "json": "json", "toml": "toml",
}
EXTENSIONS = {"python": (".py",), "javascript": (".js", ".mjs", ".cjs"), "typescript": (".ts",),
              "shell": (".sh", ".bash"), "json": (".json",), "toml": (".toml",)}
FENCE_RE = re.compile(r"^(?P<ticks>`{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)^(?P=ticks)[ \t]*$", re.S | re.M)
FILE_RE = re.compile(r'<file path="([^"\n]+)">\n(.*?)</file>', re.S)
THINK_RE = re.compile(r"<thinking>.*?</thinking>", re.S)


def normalize_language(name: str | None) -> str | None:
    if not name:
        return None
    key = name.strip().lower()
    return LANGUAGE_ALIASES.get(key, key)


def strip_thinking(text: str) -> str:
    return THINK_RE.sub("", text or "")


def extract_code(completion: str, language: str | None = None) -> tuple[str, str]:
    """``(code, language)``. Fenced blocks tagged with the task's language (or untagged) are joined; else
    ``<file>`` blocks whose extension fits; else the whole answer (less any ``<thinking>``). Without a task
    language, the first fenced block's tag decides, and Python is assumed."""
    text = strip_thinking(completion)
    lang = normalize_language(language)
    blocks = [(normalize_language(m.group("lang")), m.group("body")) for m in FENCE_RE.finditer(text)]
    if blocks:
        if lang is None:
            lang = next((b for b, _ in blocks if b), None) or "python"
        chosen = [body for b, body in blocks if b in (None, lang)]
        if chosen:
            return "\n".join(chosen), lang
    lang = lang or "python"
    files = FILE_RE.findall(text)
    if files:
        exts = EXTENSIONS.get(lang, ())
        chosen = [content for path, content in files if path.endswith(exts)] if exts else [c for _, c in files]
        if chosen:
            return "\n".join(chosen), lang
    return text.strip() + ("\n" if text.strip() else ""), lang


_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?"
NUM_RE = re.compile(_NUM)
MARKED_RE = [re.compile(r"\\boxed\{([^{}]*)\}"), re.compile(r"####\s*([^\n]+)"),
             re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*([^\n]+)", re.I)]


def parse_number(text: str) -> Fraction | float | None:
    text = text.strip().replace(",", "")
    try:
        if "/" in text:
            a, b = (t.strip() for t in text.split("/", 1))
            return Fraction(int(a), int(b)) if int(b) else None
        return Fraction(text) if "e" not in text.lower() else float(text)
    except (ValueError, ZeroDivisionError):
        return None


def final_segment(completion: str) -> str:
    """The part of the answer that states the result: a ``\\boxed{}``, a ``#### x`` line, an ``Answer: x`` line
    (the last of them), else the last non-empty line."""
    text = strip_thinking(completion)
    for pattern in MARKED_RE:
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def final_number(completion: str):
    """The last number of the answer's final segment (or of the whole answer)."""
    for text in (final_segment(completion), strip_thinking(completion)):
        nums = NUM_RE.findall(text)
        if nums:
            return parse_number(nums[-1]), nums[-1]
    return None, None


def normalize_text(text: str) -> str:
    text = text.strip().strip("`*_ \"'").rstrip(".!").strip()
    return re.sub(r"\s+", " ", text).lower()
