"""Logged /v1 requests as hub chat examples (the normalized example of apps/datasets/formats/base.py).

Contract: `conversation(endpoint, request, response)` reads the three request dialects the proxy logs and
returns a `Conversation`: OpenAI chat completions (`messages`, `tools`, `tool_calls`, `tool` turns, the
`developer` role, legacy `function_call`), Anthropic messages (`system`, content blocks: text, thinking,
`tool_use` -> `tool_calls`, `tool_result` -> `tool` turns, mid-conversation `system` turns, tools with
`input_schema`) and OpenAI responses (`instructions`, `input` as text or items: messages, `function_call`,
`function_call_output`; function tools). The logged response — an OpenAI completion, an Anthropic message,
a responses object, or the proxy's summary of a stream (`{"content", "tool_calls"?, "finish_reason"}`) —
is appended as the assistant turn, tool calls kept. Thinking is kept as a `<thinking>` block at the start
of the assistant content (the dataset viewer renders it).

`problems` says why a conversation cannot become a training example: `unsupported` (images, audio, files),
`truncated` (the request log cut a long body: apps.proxy.services.trim), `no_answer` (no assistant output),
`not_chat` (legacy text completions). `clean` is False when the answer was cut (max tokens, a broken
stream). Nothing here touches the database; everything returned is plain data, escaped by the templates.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import orjson

# apps.proxy.services.trim marks what it cut like this
_TRIM_MARK = re.compile(r"… \[\d+ more chars\]$")
_TRIM_ITEMS = re.compile(r"^… \d+ items …$")
UNSUPPORTED_PART = {"image", "image_url", "input_image", "input_audio", "document", "file", "input_file"}
CUT_REASONS = {"length", "max_tokens", "max_output_tokens"}


@dataclass
class Conversation:
    messages: list = field(default_factory=list)
    tools: list | None = None
    problems: set = field(default_factory=set)
    clean: bool = True
    answered: bool = False

    def example(self) -> dict:
        return {"messages": self.messages, "tools": self.tools or None}


def _json_str(value) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value if value is not None else {}).decode()


def _check_trim(value, conv: Conversation) -> None:
    if isinstance(value, str):
        if _TRIM_MARK.search(value) or _TRIM_ITEMS.match(value):
            conv.problems.add("truncated")
    elif isinstance(value, list):
        for v in value:
            _check_trim(v, conv)
    elif isinstance(value, dict):
        for v in value.values():
            _check_trim(v, conv)


def _text_of(content, conv: Conversation) -> str:
    """A content value (a string, a list of parts or blocks) as text; unsupported parts are noted and shown
    as `[image]` placeholders (the viewer shows them; exports refuse them)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return str(content)
    out = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type", "text")
        if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        elif kind in UNSUPPORTED_PART:
            conv.problems.add("unsupported")
            out.append(f"[{kind.replace('input_', '').replace('_url', '')}]")
    return "\n".join(out)


def _call(cid, name, arguments) -> dict:
    return {"id": str(cid or ""), "type": "function",
            "function": {"name": str(name or ""), "arguments": _json_str(arguments)}}


def _append_assistant(conv: Conversation, content: str = "", calls: list | None = None) -> None:
    """Add assistant output, merged into the previous assistant turn when the dialect split it in items."""
    if conv.messages and conv.messages[-1]["role"] == "assistant" and (calls and not content):
        last = conv.messages[-1]
        last.setdefault("tool_calls", []).extend(calls)
        return
    msg = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = list(calls)
    conv.messages.append(msg)


# -- OpenAI chat completions -------------------------------------------------------------------------
def _openai_tools(tools) -> list | None:
    out = []
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        fn = t.get("function") if isinstance(t.get("function"), dict) else None
        if fn and fn.get("name"):
            out.append({"type": "function", "function": {k: v for k, v in fn.items() if k in
                                                           ("name", "description", "parameters", "strict")}})
        elif t.get("type") == "function" and t.get("name"):  # the responses API's flat shape
            out.append({"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")
                                                           if k in t}})
    return out or None


def _openai_messages(messages, conv: Conversation) -> None:
    for m in messages or []:
        if not isinstance(m, dict):
            conv.problems.add("truncated" if isinstance(m, str) and _TRIM_ITEMS.match(m) else "invalid")
            continue
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role == "function":
            role = "tool"
        text = _text_of(m.get("content"), conv)
        if role == "assistant":
            calls = [_call(c.get("id"), (c.get("function") or {}).get("name"),
                           (c.get("function") or {}).get("arguments"))
                     for c in (m.get("tool_calls") or []) if isinstance(c, dict)]
            fc = m.get("function_call")
            if not calls and isinstance(fc, dict):
                calls = [_call(f"call_{len(conv.messages)}", fc.get("name"), fc.get("arguments"))]
            msg = {"role": "assistant", "content": text}
            if calls:
                msg["tool_calls"] = calls
            conv.messages.append(msg)
        elif role == "tool":
            msg = {"role": "tool", "content": text, "tool_call_id": str(m.get("tool_call_id") or m.get("name") or "")}
            conv.messages.append(msg)
        elif role in ("system", "user"):
            conv.messages.append({"role": role, "content": text})
        else:
            conv.problems.add("invalid")


def _openai_answer(response: dict, conv: Conversation) -> None:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        ch = choices[0]
        msg = ch.get("message") if isinstance(ch.get("message"), dict) else {}
        if ch.get("finish_reason") in CUT_REASONS:
            conv.clean = False
        _answer_from(msg, conv)
        return
    _summary_answer(response, conv)


def _answer_from(msg: dict, conv: Conversation) -> None:
    text = _text_of(msg.get("content"), conv)
    thinking = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(thinking, str) and thinking.strip():
        text = f"<thinking>{thinking}</thinking>\n{text}"
    calls = [_call(c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
             for c in (msg.get("tool_calls") or []) if isinstance(c, dict)]
    if text.strip() or calls:
        conv.answered = True
        _append_assistant(conv, text, calls)


def _summary_answer(response: dict, conv: Conversation) -> None:
    """The proxy's summary of a stream: {"content", "tool_calls"?, "finish_reason", "partial"?}."""
    if response.get("partial"):
        conv.clean = False
    if response.get("finish_reason") in CUT_REASONS or response.get("stop_reason") in CUT_REASONS:
        conv.clean = False
    if "content" in response or "tool_calls" in response:
        _answer_from(response, conv)
    elif isinstance(response.get("text"), str):
        _answer_from({"content": response["text"]}, conv)


# -- Anthropic messages ------------------------------------------------------------------------------
def _anthropic_tools(tools) -> list | None:
    out = []
    for t in tools or []:
        if not isinstance(t, dict) or not t.get("name"):
            continue
        fn = {"name": t["name"]}
        if t.get("description"):
            fn["description"] = t["description"]
        fn["parameters"] = t.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": fn})
    return out or None


def _anthropic_blocks(role: str, content, conv: Conversation) -> None:
    if isinstance(content, str) or content is None:
        conv.messages.append({"role": role, "content": content or ""})
        return
    blocks = content if isinstance(content, list) else [content]
    texts, calls, thinking = [], [], []
    for b in blocks:
        if not isinstance(b, dict):
            if isinstance(b, str):
                texts.append(b)
            continue
        kind = b.get("type")
        if kind == "text":
            texts.append(str(b.get("text") or ""))
        elif kind == "thinking" and role == "assistant":
            thinking.append(str(b.get("thinking") or ""))
        elif kind == "tool_use":
            calls.append(_call(b.get("id"), b.get("name"), b.get("input")))
        elif kind == "tool_result":
            body = _text_of(b.get("content"), conv)
            if b.get("is_error"):
                body = f"[error] {body}"
            conv.messages.append({"role": "tool", "content": body, "tool_call_id": str(b.get("tool_use_id") or "")})
        elif kind in UNSUPPORTED_PART:
            conv.problems.add("unsupported")
            texts.append(f"[{kind}]")
        # redacted thinking, server tool blocks, citations: nothing a model can be trained on
    text = "\n".join(t for t in texts if t)
    if thinking:
        text = "".join(f"<thinking>{t}</thinking>\n" for t in thinking) + text
    if role == "assistant":
        if text or calls:
            _append_assistant(conv, text, calls)
    elif text or role == "system":
        conv.messages.append({"role": role, "content": text})


def _anthropic(request: dict, response: dict, conv: Conversation) -> None:
    system = request.get("system")
    if system:
        text = system if isinstance(system, str) else "\n".join(
            str(b.get("text") or "") for b in system if isinstance(b, dict) and b.get("type", "text") == "text")
        if text:
            conv.messages.append({"role": "system", "content": text})
    for m in request.get("messages") or []:
        if not isinstance(m, dict):
            conv.problems.add("truncated" if isinstance(m, str) and _TRIM_ITEMS.match(m) else "invalid")
            continue
        role = m.get("role")
        if role not in ("user", "assistant", "system"):
            conv.problems.add("invalid")
            continue
        _anthropic_blocks(role, m.get("content"), conv)
    conv.tools = _anthropic_tools(request.get("tools"))
    if not isinstance(response, dict) or not response:
        return
    if isinstance(response.get("content"), list):  # a message object
        if response.get("stop_reason") in CUT_REASONS:
            conv.clean = False
        before = len(conv.messages)
        _anthropic_blocks("assistant", response["content"], conv)
        conv.answered = len(conv.messages) > before or bool(conv.messages and conv.messages[-1].get("tool_calls"))
    else:
        _summary_answer(response, conv)


# -- OpenAI responses --------------------------------------------------------------------------------
def _responses(request: dict, response: dict, conv: Conversation) -> None:
    if isinstance(request.get("instructions"), str) and request["instructions"]:
        conv.messages.append({"role": "system", "content": request["instructions"]})
    items = request.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or []:
        _responses_item(item, conv)
    conv.tools = _openai_tools(request.get("tools"))
    if not isinstance(response, dict) or not response:
        return
    output = response.get("output")
    if isinstance(output, list):
        if response.get("status") == "incomplete":
            conv.clean = False
        before = (len(conv.messages), len((conv.messages[-1].get("tool_calls") or []) if conv.messages else []))
        for item in output:
            _responses_item(item, conv, answer=True)
        after = (len(conv.messages), len((conv.messages[-1].get("tool_calls") or []) if conv.messages else []))
        conv.answered = after != before
    else:
        _summary_answer(response, conv)


def _responses_item(item, conv: Conversation, answer: bool = False) -> None:
    if not isinstance(item, dict):
        conv.problems.add("truncated" if isinstance(item, str) and _TRIM_ITEMS.match(item) else "invalid")
        return
    kind = item.get("type") or "message"
    if kind == "message":
        role = {"developer": "system"}.get(item.get("role"), item.get("role"))
        text = _text_of(item.get("content"), conv)
        if role == "assistant":
            if text:
                _append_assistant(conv, text)
        elif role in ("user", "system"):
            conv.messages.append({"role": role, "content": text})
        else:
            conv.problems.add("invalid")
    elif kind == "function_call":
        _append_assistant(conv, "", [_call(item.get("call_id") or item.get("id"), item.get("name"),
                                           item.get("arguments"))])
    elif kind == "function_call_output":
        conv.messages.append({"role": "tool", "content": _text_of(item.get("output"), conv),
                              "tool_call_id": str(item.get("call_id") or "")})
    elif kind == "reasoning" and answer:
        summary = "\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
        if summary.strip():
            _append_assistant(conv, f"<thinking>{summary}</thinking>\n")
    # other items (web search calls, ...) are server-side tools: nothing to train on


# -- entry points ------------------------------------------------------------------------------------
def dialect(endpoint: str, request: dict) -> str:
    endpoint = endpoint or ""
    if "responses" in endpoint or ("input" in request and "messages" not in request):
        return "responses"
    if endpoint == "messages" or endpoint.startswith("messages") or "anthropic" in endpoint:
        return "anthropic"
    if endpoint == "completions" or ("prompt" in request and "messages" not in request):
        return "completions"
    return "openai"


def conversation(endpoint: str, request, response) -> Conversation:
    conv = Conversation()
    request = request if isinstance(request, dict) else {}
    response = response if isinstance(response, dict) else {}
    kind = dialect(endpoint, request)
    _check_trim(request, conv)
    _check_trim(response, conv)
    if kind == "completions":
        conv.problems.add("not_chat")
        prompt = request.get("prompt")
        conv.messages.append({"role": "user", "content": prompt if isinstance(prompt, str) else _json_str(prompt)})
        text = (response.get("choices") or [{}])[0].get("text") if isinstance(response.get("choices"), list) \
            else response.get("text")
        if isinstance(text, str) and text:
            conv.messages.append({"role": "assistant", "content": text})
            conv.answered = True
        return conv
    if kind == "anthropic":
        _anthropic(request, response, conv)
    elif kind == "responses":
        _responses(request, response, conv)
    else:
        _openai_messages(request.get("messages"), conv)
        conv.tools = _openai_tools(request.get("tools") or [{"type": "function", "function": f}
                                                            for f in request.get("functions") or []
                                                            if isinstance(f, dict)])
        if response:
            _openai_answer(response, conv)
    if not conv.answered:
        conv.problems.add("no_answer")
    return conv


def prompt_hash(conv: Conversation) -> str:
    """Identifies a request's content regardless of its answer (a retry sends the same): the conversation up
    to the answer and the tools. The model asked for is left out: the same conversation sent to two aliases
    is one training example, not two."""
    msgs = conv.messages[:-1] if conv.answered and conv.messages else conv.messages
    return hashlib.sha256(orjson.dumps([msgs, conv.tools], option=orjson.OPT_SORT_KEYS)).hexdigest()


def search_text(conv: Conversation, *, limit: int = 16_000) -> str:
    """The conversation as plain text for full-text search: contents, tool call names and arguments."""
    parts = []
    size = 0
    for m in conv.messages:
        bits = [m.get("content") or ""]
        for c in m.get("tool_calls") or []:
            bits.append(f"{c['function']['name']} {c['function']['arguments']}")
        text = "\n".join(b for b in bits if b)
        if text:
            parts.append(text)
            size += len(text)
        if size > limit:
            break
    return "\n".join(parts)[:limit]


def preview(conv: Conversation, *, limit: int = 300) -> str:
    """The start of the last user turn (what the table shows)."""
    for m in reversed(conv.messages):
        if m["role"] == "user" and (m.get("content") or "").strip():
            return " ".join(m["content"].split())[:limit]
    for m in conv.messages:
        if (m.get("content") or "").strip():
            return " ".join(m["content"].split())[:limit]
    return ""
