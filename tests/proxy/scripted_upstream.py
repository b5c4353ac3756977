"""A scripted OpenAI-compatible upstream that answers like a capable coding model, for the real-CLI tests
(tests/proxy/test_real_clients.py): it reads each chat request, and answers

- with a tool call when the latest user turn asks for work and no tool result has come back since:
    "create the file `PATH` with the text `TEXT`"   Write / apply_patch / a shell tool
    "read the file `PATH`"                          Read / a shell tool (`cat PATH`)
    "run `COMMAND`"                                  a shell tool
  using the tools the request actually offered (Claude Code's Bash/Read/Write, Codex's exec_command /
  shell / shell_command / apply_patch); the arguments follow each tool's own schema;
- once the tool result has come back, with a final answer quoting it: "Done. The tool said: <result>";
- "reply with `TEXT`" or anything else (titles, summaries, background calls): a plain text answer.

When the turn asks for a tool that was not offered, the answer says so in text ("I have no tool to ..."),
so the test fails on its assertions with the offered names in the CLI's output. Streamed answers follow the
OpenAI wire (first delta with the role, tool-call id/name on the first fragment only, usage before
[DONE]). Every request is recorded in `seen` ({"path", "body", "answer"}).
"""
from __future__ import annotations

import json
import re
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

CREATE = re.compile(r"create the file `([^`]+)` with the text `([^`]*)`", re.I)
READ = re.compile(r"read the file `([^`]+)`", re.I)
RUN = re.compile(r"\brun `([^`]+)`", re.I)
REPLY = re.compile(r"reply with `([^`]*)`", re.I)
SHELL_TOOLS = ("Bash", "exec_command", "shell_command", "shell", "container.exec")


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _tool_names(body: dict) -> list[str]:
    names = []
    for t in body.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.append(fn["name"])
    return names


def _shell_call(name: str, command: str) -> tuple[str, dict]:
    if name == "Bash":
        return name, {"command": command, "description": "Run the requested command"}
    if name == "exec_command":
        return name, {"cmd": command}
    if name == "shell_command":
        return name, {"command": command}
    return name, {"command": ["bash", "-lc", command]}  # Codex's classic `shell` (argv)


def _plan_tool(turn: str, offered: list[str]) -> tuple[str, dict] | str | None:
    """(tool name, arguments) for the work `turn` asks for; a refusal text when no offered tool fits;
    None when the turn asks for no work."""
    shell = next((n for n in SHELL_TOOLS if n in offered), None)
    if m := CREATE.search(turn):
        path, text = m.groups()
        if "Write" in offered:
            return "Write", {"file_path": path, "content": text}
        if "apply_patch" in offered:
            return "apply_patch", {"input": f"*** Begin Patch\n*** Add File: {path}\n+{text}\n*** End Patch\n"}
        if shell:
            return _shell_call(shell, f"printf '%s' '{text}' > '{path}'")
        return f"I have no tool to create files (offered: {', '.join(offered) or 'none'})."
    if m := READ.search(turn):
        path = m.group(1)
        if "Read" in offered:
            return "Read", {"file_path": path}
        if shell:
            return _shell_call(shell, f"cat '{path}'")
        return f"I have no tool to read files (offered: {', '.join(offered) or 'none'})."
    if m := RUN.search(turn):
        if shell:
            return _shell_call(shell, m.group(1))
        return f"I have no tool to run commands (offered: {', '.join(offered) or 'none'})."
    return None


def decide(body: dict) -> dict:
    """The answer to a chat request: {"text": str} or {"tool": name, "arguments": dict}."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    # The latest user turn that asks for something (Claude Code appends reminders as separate blocks/turns).
    ask_at, ask = None, ""
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            text = _text(m.get("content"))
            if CREATE.search(text) or READ.search(text) or RUN.search(text) or REPLY.search(text):
                ask_at, ask = i, text
    if ask_at is None:
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        return {"text": "OK. " + " ".join(last_user.split()[:12])}
    results = [_text(m.get("content")) for m in messages[ask_at + 1:] if m.get("role") == "tool"]
    if results:
        said = " ".join(" | ".join(results).split())[:400]
        return {"text": f"Done. The tool said: {said}"}
    plan = _plan_tool(ask, _tool_names(body))
    if isinstance(plan, tuple):
        return {"tool": plan[0], "arguments": plan[1]}
    if isinstance(plan, str):
        return {"text": plan}
    return {"text": REPLY.search(ask).group(1)}


def _sse(obj: dict) -> str:
    return "data: " + json.dumps(obj) + "\n\n"


def create_scripted_upstream(*, seen: list | None = None) -> Starlette:
    seen = seen if seen is not None else []
    counter = iter(range(1, 1_000_000))

    async def chat(request: Request):
        body = await request.json()
        answer = decide(body)
        seen.append({"path": "/v1/chat/completions", "body": body, "answer": answer})
        n = next(counter)
        base = {"id": f"scripted-{n}", "created": int(time.time()), "model": body.get("model", "")}
        prompt_tokens = len(json.dumps(body.get("messages"))) // 4
        if "tool" in answer:
            args = json.dumps(answer["arguments"])
            call = {"id": f"call_{n}", "type": "function", "function": {"name": answer["tool"], "arguments": args}}
            message, finish, completion_tokens = {"role": "assistant", "content": None,
                                                  "tool_calls": [call]}, "tool_calls", len(args) // 4 + 1
        else:
            message, finish = {"role": "assistant", "content": answer["text"]}, "stop"
            completion_tokens = len(answer["text"].split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if not body.get("stream"):
            return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]})

        async def stream():
            chunk = {**base, "object": "chat.completion.chunk"}

            def delta(d: dict, finish_reason=None) -> str:
                return _sse({**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": finish_reason}]})

            yield delta({"role": "assistant", "content": ""})
            if "tool" in answer:
                args = message["tool_calls"][0]["function"]["arguments"]
                half = len(args) // 2
                yield delta({"tool_calls": [{"index": 0, "id": f"call_{n}", "type": "function",
                                             "function": {"name": answer["tool"], "arguments": args[:half]}}]})
                yield delta({"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]})
            else:
                words = answer["text"].split(" ")
                for i, w in enumerate(words):
                    yield delta({"content": w if i == 0 else " " + w})
            yield delta({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse({**chunk, "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": "capable-1", "object": "model", "created": 0, "owned_by": "scripted"}]})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ])
    app.state.seen = seen
    return app
