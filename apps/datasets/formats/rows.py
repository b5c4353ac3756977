"""Structural rules for one row (a JSONL line, a Parquet/CSV row): OpenAI's and Together's format
rules plus the hub's own, switched by the validation target. The hot path of validation: keep it lean.

Every rule reports with a stable code; `check_row` returns the normalized example, or None when the
row is unusable (it is still reported).
"""
from __future__ import annotations

import orjson

from apps.datasets.formats.base import ERROR, WARNING, make_example

OPENAI_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"})
OPENAI_ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
TOGETHER_ROLES = frozenset({"system", "user", "assistant"})
_PLAIN_ROLES = TOGETHER_ROLES
TOP_LEVEL_KEYS = {
    "messages": frozenset({"messages", "tools", "parallel_tool_calls", "functions"}),
    "text": frozenset({"text"}),
    "prompt_completion": frozenset({"prompt", "completion"}),
    "preference": frozenset({"input", "preferred_output", "non_preferred_output"}),
}
ROW_FORMAT_NAMES = {
    "messages": "conversation (messages)",
    "text": "text",
    "prompt_completion": "prompt/completion",
    "preference": "preference",
}


def row_format(obj: dict) -> str | None:
    """Which of the four row shapes this object is (None when it is none of them)."""
    if "messages" in obj:
        return "messages"
    if "input" in obj and "preferred_output" in obj:
        return "preference"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


def _has_nul(obj) -> bool:
    """Whether any string in a decoded JSON value holds a NUL character (PostgreSQL's jsonb refuses it)."""
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_nul(v) for v in obj)
    return False


class RowChecker:
    """Checks rows of one file. Keeps the per-file state (the file's row format)."""

    def __init__(self, report, *, target: str = "local", file: str = "", category: str = ""):
        self.report = report
        self.target = target
        self.file = file
        self.category = category
        self.file_format: str | None = None
        self.strict = target == "together"

    # -- helpers ------------------------------------------------------------------------------------
    def _err(self, code, msg, line):
        self.report.add(code, msg, line=line, file=self.file or None, severity=ERROR)

    def _warn(self, code, msg, line):
        self.report.add(code, msg, line=line, file=self.file or None, severity=WARNING)

    def _target_err(self, code, msg, line, targets=("together",)):
        """An error for the targets that reject it, a warning for the others."""
        self.report.add(code, msg, line=line, file=self.file or None,
                        severity=ERROR if self.target in targets else WARNING)

    # -- entry point --------------------------------------------------------------------------------
    def check(self, obj, line: int | None):
        try:
            return self._check(obj, line)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # odd JSON types in odd places
            self._err("invalid_row", f"Line {line}: a field has an unexpected type ({exc}).", line)
            return None

    def _check(self, obj, line: int | None):
        if _has_nul(obj):
            self._err("nul_character", f"Line {line} contains a NUL character (\\u0000), which no database or "
                                       "tokenizer keeps; remove it.", line)
            return None
        if not isinstance(obj, dict):
            self._err("not_an_object", f"Line {line} is a JSON {type(obj).__name__}, not an object.", line)
            return None
        fmt = row_format(obj)
        if fmt is None:
            keys = ", ".join(sorted(map(str, obj))[:6]) or "no keys"
            self._err("unknown_row_format",
                      f"Unknown row format ({keys}): expected `messages`, `text`, `prompt`+`completion` or "
                      "`input`+`preferred_output`+`non_preferred_output`.", line)
            return None
        if self.file_format is None:
            self.file_format = fmt
        elif fmt != self.file_format:
            self._err("mixed_formats",
                      f"This row is in the {ROW_FORMAT_NAMES[fmt]} format but the file started with "
                      f"{ROW_FORMAT_NAMES[self.file_format]}: one format per file.", line)
        allowed = TOP_LEVEL_KEYS[fmt]
        for key in obj:
            if key not in allowed:
                if key == "tools" or key == "functions":
                    continue
                self._target_err("unexpected_column", f"Unexpected column `{key}` (allowed: {', '.join(sorted(allowed))}).",
                                 line, targets=("together",))
        if fmt == "messages":
            return self._check_messages_row(obj, line)
        if fmt == "text":
            return self._check_text_row(obj, line)
        if fmt == "prompt_completion":
            return self._check_prompt_completion(obj, line)
        return self._check_preference(obj, line)

    def check_example(self, ex: dict):
        """Re-check a normalized example (after a fix); keeps its source, category, tags and meta."""
        try:
            return self._check_example(ex)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            self._err("invalid_row", f"Example could not be checked ({exc}).", ex.get("source_line"))
            return None

    def _check_example(self, ex: dict):
        line = ex.get("source_line")
        if _has_nul(ex.get("messages")) or _has_nul(ex.get("tools")):
            self._err("nul_character", "The example contains a NUL character (\\u0000); remove it.", line)
            return None
        kind = (ex.get("meta") or {}).get("kind", "chat")
        if kind == "text":
            content = ex["messages"][0]["content"] if ex["messages"] else ""
            new = self._check_text_row({"text": content}, line)
        else:
            obj = {"messages": ex["messages"]}
            if ex.get("tools"):
                obj["tools"] = ex["tools"]
            new = self._check_messages_row(obj, line)
        if new is None:
            return None
        new.update({"source_file": ex.get("source_file", ""), "category": ex.get("category", ""),
                    "tags": list(ex.get("tags") or []), "meta": dict(ex.get("meta") or {"kind": kind})})
        return new

    # -- formats ------------------------------------------------------------------------------------
    def _not_for_openai(self, fmt, line):
        if self.target == "openai":
            self._err("format_not_supported",
                      f"OpenAI chat fine-tuning accepts only the messages format, not {ROW_FORMAT_NAMES[fmt]}.", line)

    def _check_text_row(self, obj, line):
        self._not_for_openai("text", line)
        text = obj.get("text")
        if not isinstance(text, str):
            self._err("invalid_text", "`text` must be a string.", line)
            return None
        if not text.strip():
            self._err("empty_text", "`text` is empty.", line)
            return None
        return make_example([{"role": "assistant", "content": text}], source_file=self.file, source_line=line,
                            category=self.category, kind="text")

    def _check_prompt_completion(self, obj, line):
        self._not_for_openai("prompt_completion", line)
        prompt, completion = obj.get("prompt"), obj.get("completion")
        ok = True
        if not isinstance(prompt, str):
            self._err("invalid_prompt", "`prompt` must be a string.", line)
            ok = False
        if not isinstance(completion, str):
            self._err("invalid_completion", "`completion` must be a string.", line)
            ok = False
        elif not completion.strip():
            self._err("empty_completion", "`completion` is empty.", line)
        if not ok:
            return None
        return make_example([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                            source_file=self.file, source_line=line, category=self.category, kind="prompt_completion")

    def _check_preference(self, obj, line):
        self._not_for_openai("preference", line)
        inp = obj.get("input")
        if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list) or not inp["messages"]:
            self._err("invalid_preference_input", "`input` must be an object with a non-empty `messages` list.", line)
            return None
        outs = {}
        for key in ("preferred_output", "non_preferred_output"):
            val = obj.get(key)
            if not isinstance(val, list) or not val:
                self._err("invalid_preference_output", f"`{key}` must be a non-empty list of messages.", line)
                return None
            for m in val:
                if not isinstance(m, dict) or m.get("role") != "assistant" or not isinstance(m.get("content"), str):
                    self._err("invalid_preference_output",
                              f"`{key}` must hold assistant messages with string content.", line)
                    return None
            outs[key] = val
        msgs = self._check_messages(inp["messages"], line, need_assistant=False)
        if msgs is None:
            return None
        pref = [{"role": "assistant", "content": m["content"]} for m in outs["preferred_output"]]
        return make_example(msgs + pref, source_file=self.file, source_line=line, category=self.category,
                            kind="preference", non_preferred_output=outs["non_preferred_output"])

    def _check_messages_row(self, obj, line):
        messages = obj.get("messages")
        if not isinstance(messages, list):
            self._err("messages_not_list", "`messages` must be a list.", line)
            return None
        if not messages:
            self._err("empty_messages", "`messages` is empty.", line)
            return None
        tools = obj.get("tools")
        if tools is None and obj.get("functions") is not None:
            funcs = obj["functions"]
            tools = [{"type": "function", "function": f} for f in funcs] if isinstance(funcs, list) else funcs
        tool_names = None
        if tools is not None:
            if self.target == "together":
                self._err("unexpected_column", "Together rejects the `tools` column (local training accepts it).", line)
            tool_names = self._check_tools(tools, line)
            if tool_names is None:
                tools = None
        msgs = self._check_messages(messages, line, tool_names=tool_names)
        if msgs is None:
            return None
        return make_example(msgs, tools=tools, source_file=self.file, source_line=line, category=self.category)

    def _check_tools(self, tools, line):
        if not isinstance(tools, list):
            self._err("invalid_tools", "`tools` must be a list of tool definitions.", line)
            return None
        names = set()
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                self._err("invalid_tools", f"tools[{i}] must look like {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.", line)
                continue
            names.add(fn["name"])
        return names

    def _check_messages(self, messages, line, *, tool_names=None, need_assistant=True):
        """Check a message list; return normalized messages or None when unusable."""
        out = []
        ok = True
        has_assistant = False
        prev_role = None
        roles = TOGETHER_ROLES if self.strict else OPENAI_ROLES
        pending_ids: set = set()
        err, warn = self._err, self._warn
        strict = self.strict
        for i, m in enumerate(messages):
            # Fast path: the common {"role": ..., "content": "..."} turn, kept as it is.
            if type(m) is dict and len(m) == 2:
                role = m.get("role")
                if type(role) is str and role in _PLAIN_ROLES and type(m.get("content")) is str:
                    if role == prev_role:
                        self._target_err("consecutive_same_role", f"messages[{i}]: two consecutive `{role}` turns "
                                         "(user and assistant must alternate).", line)
                    if role == "system":
                        if i > 0:
                            self._target_err("system_not_first", f"messages[{i}]: a system message is only allowed "
                                             "first.", line)
                    elif strict and role != "user" and prev_role in (None, "system"):
                        self._warn("must_start_with_user", f"messages[{i}]: the conversation must start with a user "
                                  "turn (after an optional system message).", line)
                    if role == "assistant":
                        has_assistant = True
                    prev_role = role
                    out.append(m)
                    continue
            if type(m) is not dict:
                err("message_not_object", f"messages[{i}] is not an object.", line)
                ok = False
                continue
            role = m.get("role")
            if role is None:
                err("missing_role", f"messages[{i}] has no `role`.", line)
                ok = False
                continue
            if type(role) is not str:
                err("invalid_role", f"messages[{i}]: `role` must be a string.", line)
                ok = False
                continue
            if role not in roles:
                if role in OPENAI_ROLES:
                    self._err("role_not_supported", f"messages[{i}]: role `{role}` is not accepted by Together "
                              "(system, user, assistant only).", line)
                else:
                    err("invalid_role", f"messages[{i}]: unknown role `{role}` (expected one of "
                        f"{', '.join(sorted(roles))}).", line)
                ok = False
                continue
            if len(m) > 2 or "content" not in m:
                for key in m:
                    if key not in OPENAI_MESSAGE_KEYS:
                        self._target_err("unexpected_message_key", f"messages[{i}] has an unexpected key `{key}`.",
                                         line, targets=("together", "openai"))
            content = m.get("content")
            tool_calls = m.get("tool_calls")
            fcall = m.get("function_call")
            if fcall is not None and tool_calls is None and role == "assistant":
                tool_calls = [{"id": f"call_{i}", "type": "function", "function": fcall}]
            if role == "function":
                role = "tool"
            if type(content) is not str:
                if content is None:
                    if role == "assistant" and tool_calls:
                        content = ""
                    elif "content" not in m:
                        err("missing_content", f"messages[{i}] ({role}) has no `content`.", line)
                        ok = False
                        continue
                    else:
                        err("null_content", f"messages[{i}] ({role}): `content` is null; only an assistant turn "
                            "with `tool_calls` may omit it.", line)
                        ok = False
                        continue
                elif isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                                       and isinstance(p.get("text"), str) for p in content):
                    content = "".join(p["text"] for p in content)
                else:
                    err("content_not_string", f"messages[{i}] ({role}): `content` must be a string, "
                        f"not {type(content).__name__}.", line)
                    ok = False
                    continue
            msg = {"role": role, "content": content}
            if role == "system" and i > 0:
                self._target_err("system_not_first", f"messages[{i}]: a system message is only allowed first.", line)
            if role == prev_role and role != "tool":
                self._target_err("consecutive_same_role",
                                 f"messages[{i}]: two consecutive `{role}` turns (user and assistant must alternate).",
                                 line)
            if self.strict and role != "system" and prev_role in (None, "system") and role != "user":
                self._warn("must_start_with_user", f"messages[{i}]: the conversation must start with a user turn "
                          "(after an optional system message).", line)
            prev_role = role
            w = m.get("weight")
            if w is not None:
                if w not in (0, 1) or isinstance(w, bool):
                    err("invalid_weight", f"messages[{i}]: `weight` must be 0 or 1, not {w!r}.", line)
                    ok = False
                elif role != "assistant":
                    err("weight_not_on_assistant", f"messages[{i}]: `weight` is only allowed on assistant turns.", line)
                    ok = False
                else:
                    msg["weight"] = int(w)
            if role == "assistant":
                has_assistant = True
                if tool_calls is not None:
                    calls = self._check_tool_calls(tool_calls, i, line, tool_names)
                    if calls is None:
                        ok = False
                    else:
                        msg["tool_calls"] = calls
                        pending_ids.update(c["id"] for c in calls)
            elif tool_calls is not None:
                err("tool_calls_not_on_assistant", f"messages[{i}]: only assistant turns may carry `tool_calls`.", line)
                ok = False
            if role == "tool":
                tcid = m.get("tool_call_id")
                if isinstance(m.get("name"), str):
                    msg["name"] = m["name"]
                if tcid is None and not m.get("name"):
                    err("missing_tool_call_id", f"messages[{i}]: a tool turn needs `tool_call_id`.", line)
                    ok = False
                elif tcid is not None:
                    if not isinstance(tcid, str):
                        err("invalid_tool_call_id", f"messages[{i}]: `tool_call_id` must be a string.", line)
                        ok = False
                    elif tcid not in pending_ids:
                        err("unknown_tool_call_id", f"messages[{i}]: `tool_call_id` {tcid!r} answers no earlier "
                            "tool call.", line)
                        ok = False
                    msg["tool_call_id"] = tcid
            elif m.get("name") is not None and isinstance(m.get("name"), str):
                msg["name"] = m["name"]
            out.append(msg)
        if need_assistant and not has_assistant and ok:
            err("no_assistant", "No assistant message: there is nothing to learn from this example.", line)
            ok = False
        return out if ok else None

    def _check_tool_calls(self, tool_calls, i, line, tool_names):
        if not isinstance(tool_calls, list) or not tool_calls:
            self._err("invalid_tool_calls", f"messages[{i}]: `tool_calls` must be a non-empty list.", line)
            return None
        calls = []
        for j, c in enumerate(tool_calls):
            fn = c.get("function") if isinstance(c, dict) else None
            where = f"messages[{i}].tool_calls[{j}]"
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn.get("name"):
                self._err("invalid_tool_calls", f"{where} needs `function` with a `name`.", line)
                return None
            if not isinstance(c.get("id"), str) or not c["id"]:
                self._err("invalid_tool_calls", f"{where} needs a string `id`.", line)
                return None
            if c.get("type", "function") != "function":
                self._err("invalid_tool_calls", f"{where}: `type` must be \"function\".", line)
                return None
            args = fn.get("arguments", "{}")
            if isinstance(args, (dict, list)):
                args = orjson.dumps(args).decode()
            elif not isinstance(args, str):
                self._err("invalid_tool_arguments", f"{where}: `arguments` must be a JSON string.", line)
                return None
            else:
                try:
                    orjson.loads(args)
                except orjson.JSONDecodeError:
                    self._err("invalid_tool_arguments", f"{where}: `arguments` is not valid JSON.", line)
                    return None
            if tool_names is not None and fn["name"] not in tool_names:
                self._err("unknown_tool", f"{where} calls `{fn['name']}`, which is not in `tools`.", line)
                return None
            calls.append({"id": c["id"], "type": "function", "function": {"name": fn["name"], "arguments": args}})
        return calls
