"""OpenAI Responses API (`POST /v1/responses`, streamed or not) on the upstream's chat completions, so the
Codex CLI (which speaks only this API) and `client.responses.create()` work against the hub.

Contract:
- `to_chat(body)` validates a Responses request (OpenAI-shaped 400s naming the param, e.g. `input[3].role`)
  and translates it: `instructions` and `system`/`developer` messages become system messages (adjacent ones
  joined), `function_call` / `function_call_output` items become assistant `tool_calls` / `tool` messages,
  `reasoning` items are dropped, function tools pass through, `custom` tools (Codex's freeform
  `apply_patch`) become function tools with one string parameter `input`, `namespace` tools (Codex's
  sub-agent tools) are flattened into function tools whose calls come back with `namespace`, hosted tools
  (`web_search`, `local_shell`, `file_search`, …) are dropped and counted (`x-hub-tools-dropped`),
  `text.format` becomes `response_format`, `max_output_tokens` becomes `max_tokens`. Responses are not stored:
  `previous_response_id`, `conversation`, `item_reference` and `background` get a 400; `store` is accepted
  and every Response says `store: false`.
- `response_body(data, ...)` renders the upstream chat answer as a Response object (`message` with
  `output_text`, `function_call` / `custom_tool_call` items, usage, `status: incomplete` with
  `incomplete_details` when the answer hit the token limit or a content filter).
- The token limit that makes an answer `incomplete` is the client's own `max_output_tokens`. An answer cut
  first by a limit of the hub's (the alias's max-tokens cap when the client asked for more or for no limit,
  as Codex does; a context that left less room than asked) ends by the operator's choice and is reported
  `completed` (`cut_by_hub`, the same rule as Anthropic's `end_turn` in anthropic_stream.stop_outcome; the
  log keeps the upstream's answer): Codex, like any Responses client, treats `incomplete` as a failed turn,
  so a capped small model's long-winded answer would fail the CLI.
- `response_stream(...)` re-frames the upstream chat stream as the Responses event sequence
  (`response.created`, `response.in_progress`, `response.output_item.added`, `response.content_part.added`,
  `response.output_text.delta`, `response.function_call_arguments.delta`, the matching `.done` events,
  then `response.completed`, or `response.incomplete` on a length/content-filter stop as OpenAI does), each
  `event: <type>` + `data: <json>` with a `sequence_number`. A failure after the first byte ends the stream
  with `response.failed` (what Codex reads; it then retries) followed by an `error` event carrying the
  error both flat (the documented shape) and nested under `error` (the live API's shape, which makes the
  openai SDK raise `APIError`). A tool call whose arguments never finished is never reported as done.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from django.views.decorators.csrf import csrf_exempt

from apps.proxy.errors import ProxyError
from apps.proxy.gateway import OPENAI, Call, UpstreamStreamError, relay, sse_events
from apps.proxy.validation import validate_chat

# Tools of any type other than function, custom and namespace (web_search, local_shell, file_search, mcp, …)
# run on OpenAI's side or need OpenAI-specific item types: a chat upstream cannot call them, so they are
# dropped and counted rather than refused (Codex sends web_search by default). Their input items, and
# reasoning items (which the upstream cannot read back), are dropped too:
DROPPED_ITEMS = frozenset({
    "reasoning", "web_search_call", "file_search_call", "computer_call", "computer_call_output",
    "image_generation_call", "code_interpreter_call", "local_shell_call", "local_shell_call_output",
    "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
    "mcp_approval_request", "mcp_approval_response", "mcp_call", "tool_search_call", "tool_search_output",
    "compaction",
})
ROLES = ("user", "assistant", "system", "developer")
NOT_STORED = ("This server does not store responses, so `{param}` cannot be used: send the whole "
              "conversation in `input` (as Codex does with `store: false`).")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# response.failed error codes clients act on (Codex: context window, quota, rate limit); others → server_error
_FAILED_CODES = {"context_length_exceeded", "insufficient_quota", "rate_limit_exceeded", "server_error"}


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value"):
    raise ProxyError(400, message, param=param, code=code)


def _type_error(param: str, expected: str):
    _bad(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


@dataclass
class Translation:
    """A validated Responses request: the chat body for the upstream and what the Response echoes."""

    chat: dict
    echo: dict
    tools_dropped: int = 0
    custom_tools: frozenset = field(default_factory=frozenset)
    namespaced: dict = field(default_factory=dict)  # chat tool name → (namespace, name)


# --- request: Responses → chat ----------------------------------------------------------------------
def _text_of_parts(parts: list, param: str, *, images: bool) -> tuple[str, list, bool]:
    """Content parts → (joined text, chat parts, only_text)."""
    texts, chat_parts, only_text = [], [], True
    for j, part in enumerate(parts):
        p = f"{param}[{j}]"
        if not isinstance(part, dict):
            _type_error(p, "an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "refusal", "summary_text", "reasoning_text"):
            text = part.get("refusal") if kind == "refusal" else part.get("text")
            if not isinstance(text, str):
                _bad(f"Missing required parameter: '{p}.text'.", f"{p}.text", "missing_required_parameter")
            texts.append(text)
            chat_parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not images:
                texts.append("[image omitted: images are not accepted here]")
                chat_parts.append({"type": "text", "text": texts[-1]})
                continue
            if not isinstance(url, str) or not url:
                _bad(f"Only `image_url` images (a URL or a data: URL) are supported; `file_id` needs the Files "
                     f"API, which this server does not have.", f"{p}.image_url", "unsupported_value")
            only_text = False
            image = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            chat_parts.append({"type": "image_url", "image_url": image})
        elif kind in ("input_file", "input_audio"):
            _bad(f"'{kind}' content is not supported by this server.", f"{p}.type", "unsupported_value")
        else:
            _bad(f"Invalid value for '{p}.type': {kind!r}. Supported values are: 'input_text', 'output_text', "
                 "'refusal' and 'input_image'.", f"{p}.type")
    return "".join(texts), chat_parts, only_text


def _message(item: dict, p: str) -> dict:
    role = item.get("role")
    if role not in ROLES:
        _bad(f"Invalid value for '{p}.role': {role!r}. Supported values are: 'user', 'assistant', 'system', "
             "and 'developer'.", f"{p}.role")
    content = item.get("content")
    if isinstance(content, str):
        text, parts, only_text = content, [], True
    elif isinstance(content, list):
        text, parts, only_text = _text_of_parts(content, f"{p}.content", images=role == "user")
    else:
        _bad(f"Invalid type for '{p}.content': expected a string or an array of content parts.", f"{p}.content",
             "invalid_type")
    chat_role = "system" if role == "developer" else role
    return {"role": chat_role, "content": text if only_text else parts}


def _call_fields(item: dict, p: str, *names: str) -> list[str]:
    out = []
    for name in names:
        v = item.get(name)
        if not isinstance(v, str) or (name != "arguments" and name != "input" and not v):
            _bad(f"Missing required parameter: '{p}.{name}' (a string).", f"{p}.{name}", "missing_required_parameter")
        out.append(v)
    return out


def _tool_output(item: dict, p: str) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _text_of_parts(output, f"{p}.output", images=False)[0]
    _bad(f"Invalid type for '{p}.output': expected a string or an array of content parts.", f"{p}.output",
         "invalid_type")


def _messages(body: dict, namespaced: dict) -> list[dict]:
    out: list[dict] = []
    chat_names = {v: k for k, v in namespaced.items()}

    def add(msg: dict):
        prev = out[-1] if out else None
        if (prev and msg["role"] == "system" and prev["role"] == "system" and isinstance(msg["content"], str)
                and isinstance(prev["content"], str)):
            prev["content"] = prev["content"] + "\n\n" + msg["content"]  # one system turn: templates want that
        else:
            out.append(msg)

    def add_tool_call(call_id: str, name: str, arguments: str):
        prev = out[-1] if out else None
        tc = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        if prev and prev["role"] == "assistant":  # the text and the calls of one turn form one chat message
            prev.setdefault("tool_calls", []).append(tc)
            if prev["content"] == "":
                prev["content"] = None
        else:
            out.append({"role": "assistant", "content": None, "tool_calls": [tc]})

    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            _type_error("instructions", "a string")
        if instructions:
            add({"role": "system", "content": instructions})
    items = body.get("input")
    if items is None:
        _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        _type_error("input", "a string or an array of input items")
    if not items:
        _bad("Invalid 'input': empty array. Expected an array with minimum length 1.", "input", "empty_array")
    for i, item in enumerate(items):
        p = f"input[{i}]"
        if not isinstance(item, dict):
            _type_error(p, "an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            add(_message(item, p))
        elif kind == "function_call":
            call_id, name, arguments = _call_fields(item, p, "call_id", "name", "arguments")
            if isinstance(item.get("namespace"), str):
                name = chat_names.get((item["namespace"], name), name)
            add_tool_call(call_id, name, arguments)
        elif kind == "custom_tool_call":
            call_id, name, text = _call_fields(item, p, "call_id", "name", "input")
            add_tool_call(call_id, name, json.dumps({"input": text}, ensure_ascii=False))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            (call_id,) = _call_fields(item, p, "call_id")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _tool_output(item, p)})
        elif kind == "item_reference":
            _bad(NOT_STORED.format(param="item_reference"), f"{p}.type", "unsupported_value")
        elif kind in DROPPED_ITEMS:
            continue
        elif kind is None:
            _bad(f"Missing required parameter: '{p}.type'.", f"{p}.type", "missing_required_parameter")
        else:
            _bad(f"Invalid value for '{p}.type': {kind!r}. Supported: 'message', 'function_call', "
                 "'function_call_output', 'custom_tool_call', 'custom_tool_call_output', 'reasoning'.", f"{p}.type")
    if not any(m["role"] != "system" for m in out):
        _bad("'input' needs at least one user, assistant or tool item.", "input")
    return out


def _function(tool: dict, p: str, custom: set) -> dict:
    """One `function` or `custom` tool as a chat function definition."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        _bad(f"Missing required parameter: '{p}.name'.", f"{p}.name", "missing_required_parameter")
    desc = tool.get("description")
    if desc is not None and not isinstance(desc, str):
        _type_error(f"{p}.description", "a string")
    fn = {"name": name, "description": desc or ""}
    if tool.get("type") == "function":
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            _type_error(f"{p}.parameters", "a JSON schema object")
        fn["parameters"] = params or {"type": "object", "properties": {}}
        if isinstance(tool.get("strict"), bool):
            fn["strict"] = tool["strict"]
    else:  # a freeform tool: the model writes one string, `input`
        fmt = tool.get("format") if isinstance(tool.get("format"), dict) else {}
        if fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
            fn["description"] += (f"\n\nThe `input` must follow this {fmt.get('syntax', '')} grammar:\n"
                                  f"{fmt['definition']}")
        fn["parameters"] = {"type": "object", "properties": {"input": {
            "type": "string", "description": "The raw input for this tool."}}, "required": ["input"]}
        custom.add(name)
    return fn


def _tools(body: dict) -> tuple[list, list, set, int, dict]:
    """→ (chat tools, the Responses tools echoed back, custom tool names, tools dropped, namespaced tools
    {chat name: (namespace, name)}). A `namespace` tool (Codex's sub-agent tools) is flattened: its
    functions keep their names (prefixed `<namespace>__` only on a clash) and their calls come back with
    `namespace` set."""
    tools = body.get("tools")
    if tools is None:
        return [], [], set(), 0, {}
    if not isinstance(tools, list):
        _type_error("tools", "an array of tool objects")
    chat, echo, custom, dropped, namespaced = [], [], set(), 0, {}
    inner = []  # (namespace, chat function) of namespaced tools, named once the top-level names are known
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict):
            _type_error(p, "an object")
        kind = tool.get("type")
        if kind in ("function", "custom"):
            chat.append({"type": "function", "function": _function(tool, p, custom)})
            echo.append(tool)
        elif kind == "namespace":
            ns, members = tool.get("name"), tool.get("tools")
            if not isinstance(ns, str) or not ns:
                _bad(f"Missing required parameter: '{p}.name'.", f"{p}.name", "missing_required_parameter")
            if not isinstance(members, list):
                _type_error(f"{p}.tools", "an array of tool objects")
            for j, member in enumerate(members):
                if not isinstance(member, dict):
                    _type_error(f"{p}.tools[{j}]", "an object")
                if member.get("type") == "function":
                    inner.append((ns, _function(member, f"{p}.tools[{j}]", set())))
                else:
                    dropped += 1
            echo.append(tool)
        elif isinstance(kind, str) and kind:
            dropped += 1  # hosted or unknown tool kinds: the upstream cannot run them
        else:
            _bad(f"Missing required parameter: '{p}.type'.", f"{p}.type", "missing_required_parameter")
    taken = {t["function"]["name"] for t in chat}
    for ns, fn in inner:
        name = fn["name"]
        if name in taken:
            fn["name"] = f"{ns}__{name}"[:64]
        taken.add(fn["name"])
        namespaced[fn["name"]] = (ns, name)
        chat.append({"type": "function", "function": fn})
    return chat, echo, custom, dropped, namespaced


def _tool_choice(choice, chat_tools: list, namespaced: dict) -> tuple[object, list]:
    """→ (the chat tool_choice or None, the chat tools left)."""
    chat_names = {v: k for k, v in namespaced.items()}
    names = {t["function"]["name"] for t in chat_tools}

    def chat_name(spec: dict):
        name = spec.get("name")
        return chat_names.get((spec["namespace"], name), name) if isinstance(spec.get("namespace"), str) else name

    if choice is None or choice in ("auto", "none", "required"):
        return choice, chat_tools
    if not isinstance(choice, dict):
        _bad(f"Invalid value for 'tool_choice': {choice!r}. Supported values are: 'none', 'auto', 'required', "
             "or an object.", "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = chat_name(choice)
        if not isinstance(name, str) or name not in names:
            _bad(f"Invalid value for 'tool_choice.name': {name!r} is not one of the request's tools.",
                 "tool_choice.name")
        return {"type": "function", "function": {"name": name}}, chat_tools
    if kind == "allowed_tools":
        allowed = choice.get("tools")
        mode = choice.get("mode", "auto")
        if not isinstance(allowed, list) or mode not in ("auto", "required"):
            _bad("Invalid 'tool_choice': allowed_tools needs `mode` ('auto' or 'required') and a `tools` array.",
                 "tool_choice")
        keep = {chat_name(t) for t in allowed if isinstance(t, dict)}
        return mode, [t for t in chat_tools if t["function"]["name"] in keep]
    if isinstance(kind, str) and kind:
        return "auto", chat_tools  # a hosted tool was forced; it was dropped, so let the model choose
    _bad("Missing required parameter: 'tool_choice.type'.", "tool_choice.type", "missing_required_parameter")


def _response_format(body: dict):
    text = body.get("text")
    if text is None:
        return None, {"format": {"type": "text"}, "verbosity": "medium"}
    if not isinstance(text, dict):
        _type_error("text", "an object")
    echo = {"format": {"type": "text"}, "verbosity": text.get("verbosity") or "medium"}
    fmt = text.get("format")
    if fmt is None:
        return None, echo
    if not isinstance(fmt, dict):
        _type_error("text.format", "an object")
    echo["format"] = fmt
    kind = fmt.get("type")
    if kind == "text":
        return None, echo
    if kind == "json_object":
        return {"type": "json_object"}, echo
    if kind == "json_schema":
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not name:
            _bad("Missing required parameter: 'text.format.name'.", "text.format.name", "missing_required_parameter")
        if not isinstance(schema, dict):
            _bad("Missing required parameter: 'text.format.schema' (a JSON schema object).", "text.format.schema",
                 "missing_required_parameter")
        spec = {"name": name, "schema": schema}
        if isinstance(fmt.get("description"), str):
            spec["description"] = fmt["description"]
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": spec}, echo
    _bad(f"Invalid value for 'text.format.type': {kind!r}. Supported values are: 'text', 'json_object', and "
         "'json_schema'.", "text.format.type")


def _number(body: dict, key: str, lo: float, hi: float):
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _type_error(key, "a number")
    if not lo <= v <= hi:
        _bad(f"Invalid '{key}': {v} is out of range; it must be between {lo} and {hi}.", key)
    return v


def _typed(body: dict, key: str, types: tuple, expected: str):
    v = body.get(key)
    if v is not None and (not isinstance(v, types) or (bool not in types and isinstance(v, bool))):
        _type_error(key, expected)
    return v


# chat-validation params that name what the client sent under another name here
_PARAM_MAP = {"response_format": "text.format", "max_tokens": "max_output_tokens", "messages": "input"}


def to_chat(body: dict) -> Translation:
    """Validate a Responses request and translate it into a chat-completions request (see the module doc)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        _bad("You must provide a model parameter.", "model", "missing_required_parameter")
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            _bad(NOT_STORED.format(param=key), key, "unsupported_parameter")
    if body.get("prompt") is not None:
        _bad("Stored prompt templates (`prompt`) are not supported by this server: send `instructions` and "
             "`input`.", "prompt", "unsupported_parameter")
    if body.get("background"):
        _bad("Background responses are not supported by this server: they need stored responses.", "background",
             "unsupported_value")
    stream = _typed(body, "stream", (bool,), "a boolean")
    _typed(body, "store", (bool,), "a boolean")
    parallel = _typed(body, "parallel_tool_calls", (bool,), "a boolean")
    user = _typed(body, "user", (str,), "a string")
    _typed(body, "reasoning", (dict,), "an object")
    _typed(body, "metadata", (dict,), "an object")
    _typed(body, "prompt_cache_key", (str,), "a string")
    include = _typed(body, "include", (list,), "an array of strings")
    if include is not None and not all(isinstance(x, str) for x in include):
        _type_error("include", "an array of strings")
    max_out = _typed(body, "max_output_tokens", (int,), "an integer")
    if max_out is not None and max_out < 1:
        _bad("Invalid 'max_output_tokens': it must be at least 1.", "max_output_tokens")
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        _bad(f"Invalid value for 'truncation': {truncation!r}. Supported values are: 'auto' and 'disabled'.",
             "truncation")

    chat_tools, echo_tools, custom, dropped, namespaced = _tools(body)
    messages = _messages(body, namespaced)
    tool_choice, chat_tools = _tool_choice(body.get("tool_choice"), chat_tools, namespaced)
    response_format, text_echo = _response_format(body)

    chat: dict = {"model": model, "messages": messages, "stream": bool(stream)}
    if max_out is not None:
        chat["max_tokens"] = max_out
    if temperature is not None:
        chat["temperature"] = temperature
    if top_p is not None:
        chat["top_p"] = top_p
    if chat_tools:
        chat["tools"] = chat_tools
        if tool_choice is not None:
            chat["tool_choice"] = tool_choice
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    if response_format is not None:
        chat["response_format"] = response_format
    if user:
        chat["user"] = user
    try:  # the chat endpoint's own rules (response_format support, ranges) apply to the translation too
        chat = validate_chat(chat)
    except ProxyError as exc:
        if exc.param:
            head = exc.param.split(".")[0].split("[")[0]
            if head in _PARAM_MAP:
                exc.param = _PARAM_MAP[head] + exc.param[len(head):] if head != "messages" else "input"
        raise
    reasoning = body.get("reasoning") or {}
    echo = {
        "instructions": body.get("instructions"), "max_output_tokens": max_out,
        "metadata": body.get("metadata") or {}, "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": None, "reasoning": {"effort": reasoning.get("effort"),
                                                    "summary": reasoning.get("summary")},
        "store": False, "temperature": 1.0 if temperature is None else temperature, "text": text_echo,
        "tool_choice": body.get("tool_choice") or "auto", "tools": echo_tools,
        "top_p": 1.0 if top_p is None else top_p, "truncation": truncation or "disabled", "user": user,
        "prompt_cache_key": body.get("prompt_cache_key"), "background": False, "service_tier": "default",
    }
    return Translation(chat=chat, echo=echo, tools_dropped=dropped, custom_tools=frozenset(custom),
                       namespaced=namespaced)


# --- response: chat → Responses -------------------------------------------------------------------
def _usage(prompt, completion, data_usage: dict | None = None) -> dict:
    p = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else 0
    c = completion if isinstance(completion, int) and not isinstance(completion, bool) else 0
    u = data_usage if isinstance(data_usage, dict) else {}
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") if isinstance(
        u.get("prompt_tokens_details"), dict) else None
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") if isinstance(
        u.get("completion_tokens_details"), dict) else None
    return {"input_tokens": p,
            "input_tokens_details": {"cached_tokens": cached if isinstance(cached, int) else 0,
                                     "cache_write_tokens": 0},
            "output_tokens": c,
            "output_tokens_details": {"reasoning_tokens": reasoning if isinstance(reasoning, int) else 0},
            "total_tokens": p + c}


def _response(rid: str, created: int, model: str, tr: Translation, *, status: str, output: list,
               usage: dict | None, finish: str | None = None, error: dict | None = None) -> dict:
    reason = _INCOMPLETE.get(finish or "")
    if status == "completed" and reason:
        status = "incomplete"
    return {"id": rid, "object": "response", "created_at": created, "status": status, "error": error,
            "incomplete_details": {"reason": reason} if status == "incomplete" else None,
            "model": model, "output": output, "usage": usage,
            "completed_at": int(time.time()) if status in ("completed", "incomplete") else None, **tr.echo}


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str, tr: Translation) -> dict:
    if name in tr.custom_tools:
        try:
            value = json.loads(arguments or "{}")
            text = value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) else arguments
        except ValueError:
            text = arguments
        return {"id": "ctc_" + item_id[3:], "type": "custom_tool_call", "status": status, "call_id": call_id,
                "name": name, "input": text}
    item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}
    if name in tr.namespaced:
        item["namespace"], item["name"] = tr.namespaced[name]
    return item


def cut_by_hub(call: Call, tr: Translation, finish, completion) -> bool:
    """Did a limit of the hub's, not the client's `max_output_tokens`, end this answer? With a limit asked:
    the upstream's token count says whether the answer reached it (else: the alias's cap is below it).
    Without one: the alias's cap is the limit that ended it (when the alias has one)."""
    if finish != "length":
        return False
    cap = call.plan.settings.max_tokens if call.plan is not None else None
    asked = tr.echo.get("max_output_tokens")
    if asked is None:
        return cap is not None
    if isinstance(completion, int) and not isinstance(completion, bool):
        return completion < asked
    return cap is not None and cap < asked


def _client_finish(call: Call, tr: Translation, finish, completion):
    """The upstream's finish_reason as the client sees it: `length` at a limit of the hub's is an end."""
    return "stop" if cut_by_hub(call, tr, finish, completion) else finish


def response_body(data: dict, *, rid: str, created: int, model: str, tr: Translation,
                  call: Call | None = None) -> dict:
    """A non-streamed upstream chat answer as a Response object (with `call`: a cut by the hub's limit is
    `completed`, see cut_by_hub)."""
    choice = (data.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    finish = choice.get("finish_reason")
    if call is not None:
        u = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        finish = _client_finish(call, tr, finish, u.get("completion_tokens"))
    item_status = "incomplete" if finish in _INCOMPLETE else "completed"
    output = []
    if isinstance(msg.get("content"), str) and msg["content"]:
        output.append(_message_item(f"msg_{rid[5:]}_0", msg["content"], item_status))
    for k, tc in enumerate(msg.get("tool_calls") or []):
        fn = tc.get("function") or {}
        output.append(_call_item(f"fc_{rid[5:]}_{k + 1}", tc.get("id") or f"call_{rid[5:17]}_{k}",
                                 fn.get("name") or "", fn.get("arguments") or "", item_status, tr))
    if not output:
        output.append(_message_item(f"msg_{rid[5:]}_0", "", item_status))
    u = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    usage = _usage(u.get("prompt_tokens"), u.get("completion_tokens"), u)
    return _response(rid, created, model, tr, status="completed", output=output, usage=usage, finish=finish)


def assistant_message(response: dict) -> dict:
    """A logged Response object (non-streamed or streamed: both are logged whole) as the OpenAI chat
    assistant message it stands for, tool calls kept: for turning /v1/responses traffic into chat examples
    (with `to_chat(request).chat["messages"]` for the prompt side)."""
    texts, calls = [], []
    for item in response.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            texts.extend(p.get("text", "") for p in item.get("content") or [] if isinstance(p, dict))
        elif kind in ("function_call", "custom_tool_call"):
            args = item.get("arguments") if kind == "function_call" else json.dumps({"input": item.get("input", "")})
            calls.append({"id": item.get("call_id", ""), "type": "function",
                          "function": {"name": item.get("name", ""), "arguments": args or ""}})
    message = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message


class _Items:
    """The output items of a streamed Response, in output_index order, and the events that open and close
    them. A message closes when a call starts (as OpenAI streams); calls stay open until the upstream
    finishes, so a call is reported done only when it is whole."""

    def __init__(self, rid: str, tr: Translation, emit):
        self.rid, self.tr, self.emit = rid, tr, emit
        self.items: list[dict] = []      # {"kind", "index", "id", ...}
        self.message: dict | None = None
        self.calls: dict[int, dict] = {}  # upstream tool index → item

    def _open(self, kind: str, **extra) -> dict:
        index = len(self.items)
        prefix = "msg" if kind == "message" else "fc"
        item = {"kind": kind, "index": index, "id": f"{prefix}_{self.rid[5:]}_{index}", **extra}
        self.items.append(item)
        return item

    def open_message(self) -> list[str]:
        if self.message is not None:
            return []
        self.message = m = self._open("message", parts=[])
        return [self.emit({"type": "response.output_item.added", "output_index": m["index"],
                           "item": {"id": m["id"], "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}}),
                self.emit({"type": "response.content_part.added", "item_id": m["id"], "output_index": m["index"],
                           "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})]

    def text(self, delta: str) -> list[str]:
        out = self.open_message()
        m = self.message
        m["parts"].append(delta)
        out.append(self.emit({"type": "response.output_text.delta", "item_id": m["id"], "output_index": m["index"],
                              "content_index": 0, "delta": delta, "logprobs": []}))
        return out

    def tool_fragment(self, frag: dict, fallback_id: str):
        idx = frag.get("index", 0)
        fn = frag.get("function") or {}
        c = self.calls.get(idx)
        out = []
        if c is None:
            if self.message is not None:  # the text before a call is whole: close it, as OpenAI does
                out.extend(self._finish(self.message, "completed"))
            c = self.calls[idx] = self._open("call", call_id=frag.get("id") or fallback_id, name="", args=[],
                                             added=False)
        if not c["name"] and fn.get("name"):
            c["name"] = fn["name"]  # servers that repeat the name on every fragment: the first one counts
        if isinstance(fn.get("arguments"), str) and fn["arguments"]:
            c["args"].append(fn["arguments"])
        if not c["added"] and c["name"]:
            c["added"] = True
            out.append(self.emit({"type": "response.output_item.added", "output_index": c["index"],
                                  "item": _call_item(c["id"], c["call_id"], c["name"], "", "in_progress",
                                                     self.tr)}))
            c["sent"] = 0
        if c["added"] and c["name"] not in self.tr.custom_tools and len(c["args"]) > c["sent"]:
            delta = "".join(c["args"][c["sent"]:])
            c["sent"] = len(c["args"])
            out.append(self.emit({"type": "response.function_call_arguments.delta", "item_id": c["id"],
                                  "output_index": c["index"], "delta": delta}))
        return out

    def _finish(self, it: dict, status: str) -> list[str]:
        """An item's closing events; the finished item is kept as it["final"]."""
        events = []
        if it["kind"] == "message":
            text = "".join(it["parts"])
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            events.append(self.emit({"type": "response.output_text.done", "item_id": it["id"],
                                     "output_index": it["index"], "content_index": 0, "text": text, "logprobs": []}))
            events.append(self.emit({"type": "response.content_part.done", "item_id": it["id"],
                                     "output_index": it["index"], "content_index": 0, "part": part}))
            item = _message_item(it["id"], text, status)
            if it is self.message:
                self.message = None  # text after this opens a new message item
        else:
            args = "".join(it["args"])
            if not it["added"]:
                it["added"] = True
                events.append(self.emit({"type": "response.output_item.added", "output_index": it["index"],
                                         "item": _call_item(it["id"], it["call_id"], it["name"], "", "in_progress",
                                                            self.tr)}))
            item = _call_item(it["id"], it["call_id"], it["name"], args, status, self.tr)
            if item["type"] == "custom_tool_call":
                events.append(self.emit({"type": "response.custom_tool_call_input.delta", "item_id": item["id"],
                                         "output_index": it["index"], "delta": item["input"]}))
                events.append(self.emit({"type": "response.custom_tool_call_input.done", "item_id": item["id"],
                                         "output_index": it["index"], "input": item["input"]}))
            else:
                events.append(self.emit({"type": "response.function_call_arguments.done", "item_id": it["id"],
                                         "output_index": it["index"], "name": item["name"], "arguments": args}))
        events.append(self.emit({"type": "response.output_item.done", "output_index": it["index"], "item": item}))
        it["final"] = item
        return events

    def close(self, status: str) -> tuple[list[str], list[dict]]:
        """Finish the items still open (in output order): their `.done` events and the final output list (an
        empty message when the model said nothing, as the non-streamed body has)."""
        events = [] if self.items else self.open_message()
        for it in self.items:
            if "final" not in it:
                events.extend(self._finish(it, status))
        return events, [it["final"] for it in self.items]

    def partial(self) -> list[dict]:
        """What the log keeps of a failed stream: the items finished so far, and the text of an open message
        (an open call is left out: it may be half-formed)."""
        return [it.get("final") or _message_item(it["id"], "".join(it["parts"]), "incomplete")
                for it in self.items if "final" in it or it["kind"] == "message"]


async def response_stream(call: Call, resp, *, rid: str, created: int, tr: Translation):
    """Re-frame the upstream chat stream as the Responses event sequence (see the module doc)."""
    seq = 0

    def emit(obj: dict) -> str:
        nonlocal seq
        obj["sequence_number"] = seq
        seq += 1
        return f"event: {obj['type']}\ndata: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"

    model = call.model_requested
    items = _Items(rid, tr, emit)
    finish = None
    try:
        base = _response(rid, created, model, tr, status="in_progress", output=[], usage=None)
        yield emit({"type": "response.created", "response": base})
        yield emit({"type": "response.in_progress", "response": base})
        async for ev in sse_events(resp):
            if ev.get("usage"):
                call.set_usage(ev["usage"])
            for ch in ev.get("choices") or []:
                if ch.get("index", 0) != 0:
                    continue
                delta = ch.get("delta") or {}
                if isinstance(delta.get("content"), str) and delta["content"]:
                    call.mark_first_token()
                    for out in items.text(delta["content"]):
                        yield out
                for frag in delta.get("tool_calls") or []:
                    if isinstance(frag, dict):
                        call.mark_first_token()
                        for out in items.tool_fragment(frag, f"call_{call.request_id[:12]}_{frag.get('index', 0)}"):
                            yield out
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
        finish = _client_finish(call, tr, finish, call.completion_tokens)
        status = "incomplete" if finish in _INCOMPLETE else "completed"
        events, output = items.close(status)
        for out in events:
            yield out
        final = _response(rid, created, model, tr, status="completed", output=output, finish=finish,
                          usage=_usage(call.prompt_tokens, call.completion_tokens))
        call.response_body = final
        yield emit({"type": f"response.{final['status']}", "response": final})
    except UpstreamStreamError as exc:
        err = exc.error
        call.status_code = 502
        call.error = str(err.get("message") or "")
        code = err.get("code") if err.get("code") in _FAILED_CODES else "server_error"
        failed = _response(rid, created, model, tr, status="failed", output=[],
                           usage=_usage(call.prompt_tokens, call.completion_tokens),
                           error={"code": code, "message": call.error})
        call.response_body = {**failed, "output": items.partial()}
        yield emit({"type": "response.failed", "response": failed})
        yield emit({"type": "error", "code": err.get("code"), "message": call.error, "param": err.get("param"),
                    "error": {"type": err.get("type") or "server_error", "code": err.get("code"),
                              "message": call.error, "param": err.get("param")}})
    finally:
        call.log()


@csrf_exempt
async def responses(request):
    """POST /v1/responses on the one request path (gateway.relay)."""
    call = Call(endpoint="responses")
    rid = "resp_" + call.request_id
    state: dict = {}

    def validate(body: dict) -> dict:
        state["tr"] = to_chat(body)
        return state["tr"].chat

    def render(data: dict) -> dict:
        out = response_body(data, rid=rid, created=int(time.time()), model=call.model_requested, tr=state["tr"],
                            call=call)
        call.set_usage(out["usage"])
        return out

    def restream(clean: dict, resp):
        return response_stream(call, resp, rid=rid, created=int(time.time()), tr=state["tr"])

    response = await relay(request, call, wire=OPENAI, validate=validate, path="/chat/completions",
                           render=render, stream=restream)
    tr = state.get("tr")
    if tr is not None and tr.tools_dropped:
        response["x-hub-tools-dropped"] = str(tr.tools_dropped)
    return response
