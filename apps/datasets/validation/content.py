"""Content checks: empty and very short answers, tool calls that never get a result, garbled text,
personal data and secrets.

Code-aware: an e-mail needs a local part before the `@` (so `@app.route` and `@property` are not
e-mails), documentation placeholders (example.com, your_key_here) are not personal data.
"""
from __future__ import annotations

import math
import re
from collections import Counter

EMAIL_RE = re.compile(
    r"(?<![\w.@/+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.([A-Za-z]{2,24}))\b")
PLACEHOLDER_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|test|invalid|localhost|local|example)$", re.I)
NON_PERSONAL_LOCAL = {"git", "noreply", "no-reply", "user", "username", "name", "you", "your", "someone", "foo", "bar"}
# An optional country code (+44, +1, or a US trunk `1-`), an area code in parentheses (`(206) `, `(206)`) or
# followed by a separator, then two groups of digits: (206) 734-8812, +1 (206) 734-8812, 1-206-734-8812; a
# sentence's full stop may follow, a version's `.5` may not.
PHONE_RE = re.compile(
    r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?|1[ .-])?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w-]|[.:]\d)")
SECRET_RES = [
    ("OpenAI/Anthropic key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}")),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")),
]
ASSIGNED_SECRET_RE = re.compile(
    r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd)\b\s*[:=]\s*"
    r"[\"']?([A-Za-z0-9_\-/+=.]{16,})")
PLACEHOLDER_WORDS = re.compile(r"(?i)your|here|example|xxx|dummy|changeme|placeholder|redacted|test|\.\.\.|<|\{")
# Mojibake (UTF-8 read as Latin-1 / CP1252 / Mac Roman), replacement characters, control characters.
GARBLED_RE = re.compile(
    "\ufffd|[\u00c3\u00c2][\u0080-\u00bf]|\u00e2\u20ac|\u00f0\u0178|\u201a\u00c4|\u201a\u00fa|'\u00fa[\u00c5\u00d6]"
    "|\u221a[\u00a9\u00ae\u2020\u00a7\u00b0\u00df]|\u00fc[\u00f6\u00ee\u00ec\u00e8\u00e7\u00a7\u00f2\u00df\u00a5][\u00c4-\u00ff\u2020-\u2264]"
    "|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
WORD_RE = re.compile(r"\S+")
MIN_ANSWER_WORDS = 5


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def find_emails(text: str) -> list[str]:
    if "@" not in text:
        return []
    out = []
    for m in EMAIL_RE.finditer(text):
        local, domain = m.group(1), m.group(2)
        if PLACEHOLDER_DOMAINS.search(domain) or local.lower() in NON_PERSONAL_LOCAL:
            continue
        # `pkg@1.2.3` (npm versions) and `name@sha256:...` are not addresses: TLD is letters only (regex);
        # python/JS code like `obj.attr@other.method` has no letters-only TLD either.
        out.append(m.group(0))
    return out


def find_phones(text: str) -> list[str]:
    out = []
    for m in PHONE_RE.finditer(text):
        digits = sum(ch.isdigit() for ch in m.group(0))
        if 9 <= digits <= 15:
            out.append(m.group(0).strip())
    return out


def find_secrets(text: str) -> list[str]:
    out = []
    for name, rx in SECRET_RES:
        if rx.search(text):
            out.append(name)
    if "=" in text or ":" in text:
        for m in ASSIGNED_SECRET_RE.finditer(text):
            val = m.group(1)
            if PLACEHOLDER_WORDS.search(val) or not (re.search(r"\d", val) and re.search(r"[A-Za-z]", val)):
                continue
            if _entropy(val) >= 3.5:
                out.append("credential assignment")
    return out


def _mask(s: str) -> str:
    return s[:3] + "…" if len(s) > 4 else "…"


SECRET_MARKERS = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "AIza", "hf_", "PRIVATE KEY")
ASSIGN_HINT_RE = re.compile(r"(?:api[_-]?key|secret|token|passw(?:or)?d)\s*[:=]")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A cheap pre-filter for find_phones: a digit, then a separator or a closing parenthesis with an optional
# separator (`(206) 734-`), then 3-4 digits, a separator and 3 digits.
PHONE_HINT_RE = re.compile(r"\d(?:\)[ .-]?|[ .-])\d{3,4}[ .-]\d{3}")


def _secret_hint(text: str) -> bool:
    for m in SECRET_MARKERS:
        if m in text:
            return True
    return ("=" in text or ":" in text) and ASSIGN_HINT_RE.search(text.lower()) is not None


def _scan(text: str) -> dict[str, str]:
    """The personal-data / secret / garbled findings in one text (each code -> a short description)."""
    found = {}
    g = (CONTROL_RE.search(text) if text.isascii() else GARBLED_RE.search(text))
    if g:
        found["garbled_text"] = f"garbled characters near {text[max(0, g.start() - 10):g.end() + 10]!r} (wrong encoding or corrupt text)"
    if "@" in text:
        emails = find_emails(text)
        if emails:
            found["pii_email"] = f"an e-mail address ({_mask(emails[0])})"
    if PHONE_HINT_RE.search(text):
        phones = find_phones(text)
        if phones:
            found["pii_phone"] = f"a phone number ({_mask(phones[0])})"
    if _secret_hint(text):
        secrets = find_secrets(text)
        if secrets:
            found["secret"] = f"what looks like a secret ({secrets[0]})"
    return found


def unanswered_tool_calls(msgs: list[dict]) -> list[tuple[int, int, dict]]:
    """(message index, call index, call) for each assistant tool call that no LATER tool message answers: by
    its `tool_call_id`, or, for a tool message without one, by the tool's `name`."""
    out = []
    for i, m in enumerate(msgs):
        if m.get("role") != "assistant":
            continue
        for j, call in enumerate(m.get("tool_calls") or ()):
            if not isinstance(call, dict):
                continue
            cid, name = call.get("id"), (call.get("function") or {}).get("name")
            if not any(r.get("role") == "tool" and (r.get("tool_call_id") == cid if r.get("tool_call_id")
                                                    else (r.get("name") and r.get("name") == name))
                       for r in msgs[i + 1:]):
                out.append((i, j, call))
    return out


def check_content(ex: dict, report, *, index: int, structure_only: bool = False) -> set[str]:
    """Run the per-example content checks; return the codes raised (stored on the example).
    The personal-data scan runs once over the example's joined text; only on a hit is the message found."""
    codes: set[str] = set()
    line, file = ex.get("source_line"), ex.get("source_file") or None
    kind = ex.get("meta", {}).get("kind", "chat")

    def add(code, msg, sev="warning"):
        codes.add(code)
        report.add(code, msg, line=line, file=file, severity=sev, example=index)

    msgs = ex["messages"]
    for i, m in enumerate(msgs):
        content = m.get("content") or ""
        role = m["role"]
        if role in ("user", "assistant") and not content.strip() and not m.get("tool_calls"):
            add("empty_turn", f"messages[{i}] ({role}) is empty.")
            continue
        if role == "assistant" and kind != "text" and not m.get("tool_calls") and m.get("weight", 1):
            if len(WORD_RE.findall(content, 0, 200)) < MIN_ANSWER_WORDS and content.strip():
                add("short_answer", f"messages[{i}]: the answer has fewer than {MIN_ANSWER_WORDS} words.")
    if any(m.get("tool_calls") for m in msgs):
        for i, j, call in unanswered_tool_calls(msgs):
            fn = call.get("function") or {}
            add("unanswered_tool_call", f"messages[{i}].tool_calls[{j}] (`{fn.get('name') or '?'}`, id "
                f"{call.get('id')!r}) never gets a result: no later tool message answers it.")
    if structure_only:
        return codes
    joined = "\n".join(m.get("content") or "" for m in msgs)
    hits = _scan(joined)
    for code in hits:
        for i, m in enumerate(msgs):  # rare path: say which message
            one = _scan(m.get("content") or "") if m.get("content") else {}
            if code in one:
                add(code, f"messages[{i}] ({m['role']}) contains {one[code]}.")
                break
        else:
            add(code, f"The example contains {hits[code]}.")
    return codes
