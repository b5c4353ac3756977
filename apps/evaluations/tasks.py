"""Task sets of an evaluation, as the rewards module's task dicts (workers.engine.rewards):

- `tasks_from_list(items)`: a list given in the API or uploaded as JSON / JSONL. Each item is a prompt (text), a
  list of chat messages, `{"messages": [...]}` (a chat example: the prompt is everything before its last assistant
  turn, which becomes the reference), a task dict `{"prompt", "answer"?, "tests"?, "language"?, "tools"?,
  "metadata"?}`, or a task from a repository generation's `tasks.json` (`{"title", "description",
  "acceptance_criteria", "files", ...}`: the prompt is written the way the generator writes it, and the answer is
  expected as <file> blocks). Problems come back as field errors `tasks.<i>[.<key>]`.
- `task_from_example(messages, tools, meta)`: one example of a dataset version (also a generation's output): the
  prompt before its last assistant turn, the reference answer, `answer` / `tests` / `language` from the example's
  meta when present (a `tests_to_impl` example's tests are the fenced test file of its request).
"""
from __future__ import annotations

import json
import re

MAX_TASKS = 1000
MAX_TASK_CHARS = 200_000
ROLES = ("system", "user", "assistant", "tool")
FENCE_RE = re.compile(r"```[\w+#.-]*[^\n]*\n(.*?)^```", re.S | re.M)


class TaskError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _messages(raw, field: str) -> list[dict]:
    if isinstance(raw, str):
        if not raw.strip():
            raise TaskError(field, "The prompt is empty.")
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise TaskError(field, "A prompt is text or a non-empty list of chat messages.")
    out = []
    for m in raw:
        if (not isinstance(m, dict) or m.get("role") not in ROLES
                or not isinstance(m.get("content", ""), (str, type(None)))):
            raise TaskError(field, "Each message is {role: system | user | assistant | tool, content: text}.")
        msg = {"role": m["role"], "content": m.get("content") or ""}
        for key in ("tool_calls", "tool_call_id", "name"):
            if m.get(key) is not None:
                msg[key] = m[key]
        out.append(msg)
    if out[-1]["role"] not in ("user", "tool"):
        raise TaskError(field, "A prompt ends with a user (or tool) message: the model answers it.")
    return out


def _reference_meta(reference: dict | None) -> dict:
    """metadata a reference answer implies: the expected tool, whether files are expected, a length target."""
    if not reference:
        return {}
    meta: dict = {}
    content = reference.get("content") or ""
    calls = reference.get("tool_calls") or []
    if calls:
        fn = calls[0].get("function", calls[0]) if isinstance(calls[0], dict) else {}
        if isinstance(fn, dict) and fn.get("name"):
            meta["expected_tool"] = fn["name"]
    if '<file path="' in content:
        meta["expects_files"] = True
    size = len(content) + sum(len(json.dumps(c)) for c in calls)
    if size:
        meta["target_chars"] = 2 * size + 200
    meta["reference"] = content[:20000] if content else json.dumps(calls)[:20000]
    return meta


def _language(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    from workers.engine.rewards.extract import normalize_language

    return normalize_language(value)


def task_from_messages(messages: list, tools=None, meta: dict | None = None) -> dict | None:
    """A task from a chat example; None when it has no user turn before its last assistant turn."""
    if not isinstance(messages, list):
        return None
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=None)
    head = messages[:last] if last is not None else messages
    try:
        prompt = _messages(head, "prompt")
    except TaskError:
        return None
    reference = messages[last] if last is not None else None
    meta = meta if isinstance(meta, dict) else {}
    task: dict = {"prompt": prompt, "metadata": _reference_meta(reference)}
    if tools:
        task["tools"] = tools
    answer = meta.get("answer")
    if isinstance(answer, (str, int, float)) and not isinstance(answer, bool) and str(answer).strip():
        task["answer"] = str(answer).strip()
    tests = meta.get("tests")
    if isinstance(tests, str) and "\n" in tests.strip():
        task["tests"] = tests
    elif isinstance(tests, str) and meta.get("generator") == "tests_to_impl":
        user = next((m.get("content") or "" for m in reversed(prompt) if m["role"] == "user"), "")
        found = FENCE_RE.findall(user)
        if found:
            task["tests"] = found[0]
            task["metadata"]["tests_path"] = tests
    lang = _language(meta.get("language"))
    if lang:
        task["language"] = lang
    for key in ("generator", "complexity"):
        if isinstance(meta.get(key), str):
            task["metadata"][key] = meta[key]
    return task


def _generated_task(item: dict, field: str) -> dict:
    title, desc = str(item.get("title") or "").strip(), str(item.get("description") or "").strip()
    if not title and not desc:
        raise TaskError(field, "A generated task needs a title or a description.")
    criteria = [str(c) for c in item.get("acceptance_criteria") or [] if str(c).strip()]
    prompt = f"**{title}**\n\n{desc}".strip()
    if criteria:
        prompt += "\n\nAcceptance criteria:\n" + "\n".join(f"- {c}" for c in criteria)
    files = [str(f) for f in item.get("files") or []]
    if files:
        prompt += "\n\nFiles: " + ", ".join(f"`{f}`" for f in files) + "."
    prompt += ('\n\nGive the complete new content of every file you change, each inside its own '
               '<file path="…">…</file> block.')
    meta = {"expects_files": True, "category": str(item.get("category") or ""), "task_id": str(item.get("id") or "")}
    if item.get("verify_command"):
        meta["verify_command"] = str(item["verify_command"])
    task = {"prompt": [{"role": "user", "content": prompt}], "metadata": meta}
    ext = files[0].rsplit(".", 1)[-1] if files and "." in files[0] else ""
    lang = _language({"py": "python", "js": "javascript", "ts": "typescript", "sh": "shell"}.get(ext, ""))
    if lang:
        task["language"] = lang
    return task


def task_from_item(item, field: str) -> dict:
    if isinstance(item, (str, list)):
        return {"prompt": _messages(item, field), "metadata": {}}
    if not isinstance(item, dict):
        raise TaskError(field, "A task is text, a list of chat messages, or an object with a prompt.")
    if "prompt" not in item and "messages" in item:
        task = task_from_messages(item["messages"], item.get("tools"), item.get("meta") or item.get("metadata"))
        if task is None:
            raise TaskError(f"{field}.messages", "The messages need a user turn before the last assistant turn.")
        return task
    if "prompt" not in item and ("title" in item or "description" in item):
        return _generated_task(item, field)
    if "prompt" not in item:
        raise TaskError(field, "A task needs a prompt (text or chat messages).")
    task: dict = {"prompt": _messages(item["prompt"], f"{field}.prompt")}
    if item.get("answer") is not None:
        if isinstance(item["answer"], bool) or not isinstance(item["answer"], (str, int, float)):
            raise TaskError(f"{field}.answer", "The answer is a string or a number.")
        task["answer"] = str(item["answer"])
    if item.get("tests") is not None:
        if not isinstance(item["tests"], str) or not item["tests"].strip():
            raise TaskError(f"{field}.tests", "Tests are Python code (a string) that uses the answer's code.")
        task["tests"] = item["tests"]
    if item.get("language") is not None:
        if not isinstance(item["language"], str):
            raise TaskError(f"{field}.language", "The language is a name such as python or javascript.")
        task["language"] = _language(item["language"])
    if item.get("tools") is not None:
        if not isinstance(item["tools"], list) or not all(isinstance(t, dict) for t in item["tools"]):
            raise TaskError(f"{field}.tools", "Tools are a list of OpenAI tool definitions.")
        task["tools"] = item["tools"]
    meta = item.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise TaskError(f"{field}.metadata", "Metadata is an object.")
    task["metadata"] = dict(meta or {})
    return task


def tasks_from_list(items) -> tuple[list[dict], list[dict]]:
    """(tasks, field errors)."""
    if not isinstance(items, list) or not items:
        return [], [{"field": "tasks", "message": "Give a non-empty list of tasks."}]
    if len(items) > MAX_TASKS:
        return [], [{"field": "tasks", "message": f"At most {MAX_TASKS} tasks."}]
    tasks, errors = [], []
    for i, item in enumerate(items):
        try:
            task = task_from_item(item, f"tasks.{i}")
        except TaskError as exc:
            errors.append({"field": exc.field, "message": exc.message})
            continue
        if len(json.dumps(task)) > MAX_TASK_CHARS:
            errors.append({"field": f"tasks.{i}", "message": f"A task has at most {MAX_TASK_CHARS} characters."})
            continue
        tasks.append(task)
    return tasks, errors[:20]


def parse_upload(text: str) -> list:
    """A JSON list (or {"tasks": [...]}) or JSONL (one task per line). Raises TaskError("tasks", ...)."""
    text = (text or "").strip()
    if not text:
        raise TaskError("tasks", "The file or text is empty.")
    if text.startswith("[") or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            return data["tasks"] if isinstance(data.get("tasks"), list) else [data]
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            raise TaskError("tasks", f"Line {n} is not JSON ({exc.msg}); give a JSON list or one JSON task per "
                                     "line.") from None
    return items
