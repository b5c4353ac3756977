"""What every offline generator shares: the unit of work, the example shape, provenance, complexity.

A generator enumerates *units* (a file, a pair of files, a commit). A unit's output depends only on its
key, the blob hashes it reads (``deps``), the seed and the options: that is what lets incremental
regeneration keep every unit whose inputs did not change (see ``generate.py``). Each unit gets its own
``random.Random`` seeded from that identity, so outputs do not depend on which other units ran.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from workers.engine.repos.files import SourceFile
from workers.engine.repos.symbols import Function, functions_of

CATEGORIES = ("bug_fix", "feature", "refactor", "tests", "docs", "file_creation")
COMPLEXITIES = ("simple", "medium", "complex")
FENCE_LANG = {"Python": "python", "JavaScript": "javascript", "TypeScript": "typescript", "Java": "java",
              "Go": "go", "Rust": "rust", "C": "c", "C++": "cpp", "C#": "csharp", "Ruby": "ruby", "PHP": "php",
              "Kotlin": "kotlin", "Swift": "swift", "Scala": "scala", "Shell": "bash", "Markdown": "markdown",
              "JSON": "json", "YAML": "yaml", "TOML": "toml", "HTML": "html", "CSS": "css", "SQL": "sql",
              "Dockerfile": "dockerfile", "Makefile": "makefile", "INI": "ini", "XML": "xml", "Lua": "lua",
              "Dart": "dart", "Vue": "vue", "Svelte": "svelte"}
FILE_BLOCK_RE = re.compile(r'<file path="([^"\n]+)">\n(.*?)</file>', re.S)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Unit:
    generator: str
    key: str                       # a path, a "path::other" pair, or a commit sha
    deps: dict[str, str]           # what the output reads: path -> blob hash (or "commit" -> sha)
    payload: Any = None            # generator-specific, not part of the identity

    def unit_key(self, seed: int, fingerprint: str = "") -> str:
        """The unit's identity: generator, key, what it reads, the seed, and the options' fingerprint."""
        deps = sha("\0".join(f"{k}\1{v}" for k, v in sorted(self.deps.items())))[:16]
        return f"{self.generator}|{self.key}|{deps}|{seed}" + (f"|{fingerprint}" if fingerprint else "")


@dataclass
class Produced:
    examples: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def rng_for(unit_key: str) -> random.Random:
    return random.Random(int(sha(unit_key)[:16], 16))


def rate_complexity(*, ccn: int = 1, lines: int = 0, files: int = 1) -> str:
    """simple / medium / complex from the cyclomatic number of the code in focus, its size, and how many
    files the answer touches."""
    if ccn >= 11 or lines > 150 or files >= 4:
        return "complex"
    if ccn <= 4 and lines <= 30 and files <= 1:
        return "simple"
    return "medium"


def file_block(path: str, content: str) -> str:
    """``<file path="p">\\n{content}</file>``: the text between the opening line and ``</file>`` is exactly the
    file's content (a file without a final newline closes on its last line)."""
    return f'<file path="{path}">\n{content}</file>'


def parse_file_blocks(text: str) -> list[tuple[str, str]]:
    """``[(path, content)]`` of every ``<file>`` block in an assistant answer (the inverse of :func:`file_block`)."""
    return [(m.group(1), m.group(2)) for m in FILE_BLOCK_RE.finditer(text)]


def blockable(path: str, content: str) -> bool:
    """Can this file be written as a block and parsed back exactly?"""
    return '"' not in path and "\n" not in path and "</file>" not in content and '<file path="' not in content


def fence(language: str | None, text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{FENCE_LANG.get(language or '', '')}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{ticks}"


def lines_of(text: str) -> list[str]:
    """Lines with their line endings (``"".join(lines_of(t)) == t``)."""
    return text.splitlines(keepends=True)


class Context:
    """What a generator may read: the snapshot, the options, the repository's identity."""

    def __init__(self, *, snapshot, info, repo_name: str, seed: int, options, license: str | None):
        self.snapshot = snapshot
        self.info = info
        self.repo_name = repo_name
        self.seed = seed
        self.options = options
        self.license = license
        self._functions: dict[str, list[Function]] = {}
        self._folders: dict[str, list[str]] | None = None
        self.cache: dict = {}           # per-run memo of shared lookups (the commit list, test pairs)
        self.fingerprint = ""           # set by generate(): the options' hash, part of every unit key
        self.warnings: list[dict] = []
        self.test_runs: list[dict] = []
        self.test_runs_left = options.max_test_runs
        self._sandbox = None
        self._sandbox_state: str | None = None   # None (not made yet) | "ready" | "unusable"

    def sandbox(self):
        """The shared test sandbox (made on first use, after a baseline run that must pass); None when the
        baseline failed or the test-run budget is spent."""
        from workers.engine.repos.sandbox import TestSandbox

        if self._sandbox_state == "unusable" or self.test_runs_left <= 0:
            return None
        if self._sandbox_state is None:
            o = self.options
            box = TestSandbox(self.info.path, self.info.commit, o.test_command, timeout=o.test_timeout,
                              limits=o.sandbox).__enter__()
            base = box.run("baseline")
            self.test_runs = box.runs
            if base.status != "passed":
                box.__exit__(None, None, None)
                self._sandbox_state = "unusable"
                self.warnings.append({"code": "test_command_baseline_failed",
                                      "message": f"The test command does not pass on the unchanged commit, so no "
                                                 f"mutation can be confirmed by it: {base.message}"})
                return None
            self._sandbox, self._sandbox_state = box, "ready"
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.__exit__(None, None, None)
            self._sandbox = None

    def unit_key(self, unit: Unit) -> str:
        return unit.unit_key(self.seed, self.fingerprint)

    @property
    def files(self) -> dict[str, SourceFile]:
        return self.snapshot.files

    def functions(self, path: str) -> list[Function]:
        if path not in self._functions:
            f = self.files[path]
            self._functions[path] = functions_of(path, f.text, f.language)
        return self._functions[path]

    def system_prompt(self, language: str | None) -> str:
        if self.options.system_prompt:
            return self.options.system_prompt
        who = f"an expert {language} developer" if language and language not in ("Markdown", "Text") else "an expert developer"
        return (f"You are {who} working on the {self.repo_name} codebase. Think through the change first inside "
                "<thinking>…</thinking>: which files and functions it touches and why. Then give the complete new "
                'content of every file you create or change, each inside its own <file path="…">…</file> block.')

    def neighbours(self, path: str, limit: int = 12) -> list[str]:
        if self._folders is None:
            self._folders = {}
            for p in sorted(self.files):
                self._folders.setdefault(p.rpartition("/")[0], []).append(p)
        return [p for p in self._folders.get(path.rpartition("/")[0], []) if p != path][:limit]

    def context_line(self, path: str) -> str:
        near = self.neighbours(path)
        folder = str(PurePosixPath(path).parent)
        where = "the repository root" if folder == "." else f"`{folder}/`"
        if not near:
            return f"Repository: {self.repo_name}."
        return f"Repository: {self.repo_name}. Other files in {where}: " + ", ".join(f"`{PurePosixPath(p).name}`" for p in near) + "."

    def example(self, unit: Unit, *, index: int, category: str, query: str, plan: str,
                files: list[tuple[str, str]] | None = None, answer_text: str | None = None,
                focus: tuple[str, int, int], complexity: str, language: str | None,
                commit: str | None = None, generator_version: str, extra_files: list[dict] | None = None,
                meta: dict | None = None, request: str | None = None) -> dict:
        """One normalized example (``apps/datasets/formats/base.make_example`` shape) with provenance.
        ``request`` is the prefix of ``query`` that states the request (the rest is context: code, test
        output); ``meta.request_chars`` records its length so a teacher model rewrites only that part."""
        assert category in CATEGORIES, category
        query = query.strip()
        request = (request or query).strip()
        request_chars = len(request) if query.startswith(request) else len(query)
        ukey = self.unit_key(unit)
        example_id = f"{unit.generator}-{sha(f'{ukey}#{index}')[:16]}"
        answer = f"<thinking>\n{plan.strip()}\n</thinking>\n\n"
        if files:
            answer += "\n\n".join(file_block(p, c) for p, c in files)
        if answer_text:
            answer += answer_text
        path, start, end = focus
        commit = commit or self.info.commit
        prov_files = extra_files
        if prov_files is None:
            prov_files = []
            for p, c in files or []:
                f = self.files.get(p)
                prov_files.append({"path": p, "blob": f.blob if f else None, "start_line": 1,
                                   "end_line": max(1, len(lines_of(c)))})
        provenance = {"repo": self.repo_name, "commit": commit, "path": path, "start_line": start, "end_line": end,
                      "generator": unit.generator, "generator_version": generator_version, "seed": self.seed,
                      "license": self.license, "files": prov_files}
        m = {"kind": "chat", "example_id": example_id, "generator": unit.generator, "complexity": complexity,
             "language": language, "request_chars": request_chars, "provenance": provenance}
        if meta:
            m.update(meta)
        return {
            "messages": [{"role": "system", "content": self.system_prompt(language)},
                         {"role": "user", "content": query},
                         {"role": "assistant", "content": answer}],
            "tools": None, "source_file": path, "source_line": start, "category": category,
            "tags": [unit.generator, complexity], "meta": m,
        }


def first_sentence(text: str | None, limit: int = 240) -> str:
    if not text:
        return ""
    para = text.strip().split("\n\n")[0].replace("\n", " ").strip()
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    s = m.group(1) if m else para
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def signature_text(lines: list[str], fn: Function) -> str:
    """The signature lines of a function (from its def line up to the line ending with ':' or '{')."""
    out = []
    for i in range(fn.def_line - 1, min(fn.end_line, fn.def_line + 8)):
        out.append(lines[i].rstrip("\n").rstrip())
        s = lines[i].rstrip()
        if s.endswith(":") or s.endswith("{") or "{" in s:
            break
    return "\n".join(out).strip()


def called_names(text: str, language: str | None) -> list[str]:
    """Names called in a piece of code (first 8, in order), for the plan."""
    seen: list[str] = []
    for m in re.finditer(r"\b([A-Za-z_][\w.]*)\s*\(", text):
        name = m.group(1)
        if name in ("if", "for", "while", "return", "switch", "catch", "function", "def", "print", "super",
                    "elif", "and", "or", "not", "in", "with", "assert", "isinstance", "len", "str", "int", "dict",
                    "list", "set", "tuple", "range", "sizeof", "typeof", "new", "await", "lambda", "yield", "except"):
            continue
        if name not in seen:
            seen.append(name)
        if len(seen) >= 8:
            break
    return seen


def branch_summary(fn: Function) -> str:
    if fn.ccn <= 1:
        return "no decision points (cyclomatic complexity 1)"
    return f"{fn.ccn - 1} decision point{'s' if fn.ccn > 2 else ''} (cyclomatic complexity {fn.ccn})"


def describe_function(fn: Function) -> str:
    if fn.class_name:
        return f"the method `{fn.name}` of `{fn.class_name}`"
    return f"the function `{fn.name}`"
