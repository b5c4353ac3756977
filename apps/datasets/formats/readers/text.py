"""Text formats: `Q: / A:` and `User: / Assistant:` blocks, plain paragraphs, and markdown scenarios,
decoded line by line (bad bytes reported with their line and replaced).

Contract: `read_turn_text(path, report=, target=, display=, category=, fmt=)` yields one chat example
per blank-line-separated block (fmt "qa-text" or "dialogue-text"); `read_plain` one text example per
paragraph (not for OpenAI); `read_markdown` the scenarios of apps.datasets.formats.scenario (tool calls
are an error for Together)."""
from __future__ import annotations

from apps.datasets.formats.base import make_example
from apps.datasets.formats.readers.detect import DIALOGUE_RE, QA_RE
from apps.datasets.formats.scenario import parse_scenarios


def _text_lines(path, display, report):
    """Yield (lineno, str) decoding UTF-8 line by line; bad bytes are reported with their line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.error("encoding_error", f"Line {lineno} is not valid UTF-8; bad bytes were replaced.",
                             line=lineno, file=display)
                line = raw.decode("utf-8", errors="replace")
            if lineno == 1:
                line = line.lstrip("\ufeff")
            yield lineno, line.rstrip("\r\n")


def _blocks(lines):
    block = []
    for n, line in lines:
        if line.strip():
            block.append((n, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


_TURN_ROLE = {"q": "user", "question": "user", "a": "assistant", "answer": "assistant", "user": "user",
              "human": "user", "assistant": "assistant", "ai": "assistant", "bot": "assistant", "system": "system"}


def read_turn_text(path, *, report, target, display, category, fmt, **_):
    own, other = (QA_RE, DIALOGUE_RE) if fmt == "qa-text" else (DIALOGUE_RE, QA_RE)
    own_name = "Q:/A:" if fmt == "qa-text" else "User:/Assistant:"
    other_name = "User:/Assistant:" if fmt == "qa-text" else "Q:/A:"
    if target == "openai" or target == "together":
        pass  # text files are converted to chat; both providers get messages on export
    for block in _blocks(_text_lines(path, display, report)):
        messages = []
        start = block[0][0]
        for n, line in block:
            s = line.strip()
            m = own.match(s)
            if m is None and other.match(s):
                report.error("mixed_formats", f"`{s.split(':', 1)[0]}:` ({other_name}) in a {own_name} file: "
                             "one format per file.", line=n, file=display)
                m = other.match(s)
            if m is not None:
                role = _TURN_ROLE[m.group(1).lower()]
                content = s[m.end():].strip()
                if messages and messages[-1]["role"] == role:
                    report.add("consecutive_same_role", f"Two `{m.group(1)}:` turns in a row.", line=n, file=display,
                               severity="error" if target == "together" else "warning")
                messages.append({"role": role, "content": content, "_line": n})
            elif messages:
                messages[-1]["content"] += "\n" + line
            else:
                report.error("text_outside_turn", f"Text before the first `{own_name.split('/')[0]}` turn.",
                             line=n, file=display)
        if not messages:
            continue
        for msg in messages:
            msg["content"] = msg["content"].strip()
            msg.pop("_line", None)
        if not any(m["role"] == "assistant" for m in messages):
            report.error("no_assistant", "Block with a question and no answer.", line=start, file=display)
            continue
        yield make_example(messages, source_file=display, source_line=start, category=category, kind="chat",
                           tags=[fmt])


def read_plain(path, *, report, target, display, category, **_):
    if target == "openai":
        report.error("format_not_supported", "OpenAI fine-tuning needs chat examples; plain text cannot be "
                     "uploaded there.", line=1, file=display)
    for block in _blocks(_text_lines(path, display, report)):
        text = "\n".join(line for _n, line in block).strip()
        yield make_example([{"role": "assistant", "content": text}], source_file=display, source_line=block[0][0],
                           category=category, kind="text")


def read_markdown(path, *, report, target, display, category, **_):
    text_lines = [line for _n, line in _text_lines(path, display, report)]
    examples = parse_scenarios("\n".join(text_lines), file=display, report=report, category=category)
    if target == "together":
        for ex in examples:
            if any(m["role"] == "tool" or m.get("tool_calls") for m in ex["messages"]):
                report.error("role_not_supported", "Together's conversation format has no tool calls; this "
                             "scenario uses them.", line=ex["source_line"], file=display)
            yield ex
    else:
        yield from examples
