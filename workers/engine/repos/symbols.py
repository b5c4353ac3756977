"""Functions and classes of a source file: line ranges, docstrings, complexity.

Complexity (cyclomatic number, NLOC) comes from ``lizard`` for every language it reads. Python files are
also parsed with ``ast`` for exact ranges (decorators included) and docstrings; other languages take
lizard's ranges and the comment block just above a function as its documentation.
"""
from __future__ import annotations

import ast
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

LIZARD_LANGS = {"Python", "JavaScript", "TypeScript", "Java", "Kotlin", "Scala", "Go", "Rust", "C", "C++", "C#",
                "Ruby", "PHP", "Swift", "Objective-C", "Lua", "Erlang", "Solidity", "Fortran", "Zig", "Vue",
                "Perl", "R", "Dart"}
BRACE_LANGS = {"JavaScript", "TypeScript", "Java", "Kotlin", "Scala", "Go", "Rust", "C", "C++", "C#", "PHP",
               "Swift", "Objective-C", "Solidity", "Dart", "Zig"}
CLASS_RE = re.compile(r"^\s*(?:export\s+)?(?:default\s+)?(?:public\s+|private\s+|protected\s+|internal\s+)?"
                      r"(?:abstract\s+|final\s+|sealed\s+|data\s+|static\s+)*(?:class|interface|struct|trait|enum)\s+"
                      r"[A-Za-z_]\w*", re.M)


@dataclass
class Function:
    name: str
    qualname: str
    start_line: int          # first line (decorators included), 1-based
    end_line: int            # last line, inclusive
    def_line: int            # the line with the signature
    body_start: int          # first line of the body after the docstring (Python) / after `{` (brace languages)
    body_end: int            # last line of the body (before the closing `}` in brace languages)
    doc: str | None          # the docstring / leading comment, cleaned
    doc_start: int | None
    doc_end: int | None
    ccn: int
    nloc: int
    params: int
    class_name: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def lizard_functions(path: str, text: str) -> list[tuple]:
    """``(name, long_name, start_line, end_line, ccn, nloc, params)`` per function, via lizard."""
    import lizard

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = lizard.analyze_file.analyze_source_code(path, text)
    except Exception:  # lizard is a heuristic parser: a file it chokes on has no functions for us
        return []
    return [(f.name, f.long_name, f.start_line, f.end_line, f.cyclomatic_complexity, f.nloc, len(f.parameters))
            for f in info.function_list]


def _lizard_chunk(items: list[tuple[str, str]]) -> list[tuple[str, list[tuple]]]:
    return [(p, lizard_functions(p, t)) for p, t in items]


def lizard_many(items: list[tuple[str, str]], *, workers: int = 1, progress=None) -> dict[str, list[tuple]]:
    """Run lizard over many ``(path, text)`` pairs, in ``workers`` processes when > 1."""
    out: dict[str, list[tuple]] = {}
    if workers <= 1 or len(items) < 40:
        for i, (p, t) in enumerate(items, 1):
            out[p] = lizard_functions(p, t)
            if progress and (i % 50 == 0 or i == len(items)):
                progress(i)
        return out
    # Chunks balanced by size (largest first) so one process does not get every big file.
    order = sorted(items, key=lambda it: -len(it[1]))
    n_chunks = max(workers * 4, 1)
    chunks: list[list] = [[] for _ in range(n_chunks)]
    sizes = [0] * n_chunks
    for it in order:
        k = sizes.index(min(sizes))
        chunks[k].append(it)
        sizes[k] += len(it[1]) + 200
    import importlib
    import multiprocessing
    import threading

    importlib.import_module("lizard")  # imported before any fork

    # fork is fast, but forking a process that runs other threads (a Dramatiq worker: its worker and heartbeat
    # threads) can copy a lock another thread holds; then use a fresh single-threaded forkserver instead.
    ctx = multiprocessing.get_context("fork" if threading.active_count() == 1 else "forkserver")
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for res in pool.map(_lizard_chunk, [c for c in chunks if c]):
            for p, funcs in res:
                out[p] = funcs
            done += len(res)
            if progress:
                progress(done)
    return out


def count_classes(text: str, language: str | None) -> int:
    if language == "Python":
        return len(re.findall(r"^\s*class\s+[A-Za-z_]\w*\s*[(:]", text, re.M))
    return len(CLASS_RE.findall(text))


# ------------------------------------------------------------------------------------------------ Python
def _python_functions(text: str, liz: list[tuple]) -> list[Function] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    by_line = {row[2]: row for row in liz}
    out: list[Function] = []

    def visit(body, cls: str | None):
        for node in body:
            if isinstance(node, ast.ClassDef) and cls is None:
                visit(node.body, node.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                doc = ast.get_docstring(node, clean=True)
                first = node.body[0]
                has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                           and isinstance(first.value.value, str))
                rest = node.body[1:] if has_doc else node.body
                body_start = rest[0].lineno if rest else node.end_lineno
                if rest and hasattr(rest[0], "decorator_list") and rest[0].decorator_list:
                    body_start = min(body_start, min(d.lineno for d in rest[0].decorator_list))
                row = by_line.get(node.lineno)
                ccn, nloc = (row[4], row[5]) if row else (1, node.end_lineno - start + 1)
                out.append(Function(
                    name=node.name, qualname=f"{cls}.{node.name}" if cls else node.name, start_line=start,
                    end_line=node.end_lineno, def_line=node.lineno, body_start=body_start, body_end=node.end_lineno,
                    doc=doc if has_doc else None, doc_start=first.lineno if has_doc else None,
                    doc_end=first.end_lineno if has_doc else None, ccn=ccn, nloc=nloc,
                    params=len(node.args.args) + len(node.args.kwonlyargs) + len(node.args.posonlyargs),
                    class_name=cls))

    visit(tree.body, None)
    return out


# ------------------------------------------------------------------------------------------- other languages
_COMMENT_LINE = re.compile(r"^\s*(//+|#+|\*|/\*\*?|\*/)")


def _leading_comment(lines: list[str], def_line: int) -> tuple[str | None, int | None, int | None]:
    """The comment block ending right above ``def_line`` (1-based), cleaned, with its line range."""
    i = def_line - 2
    while i >= 0 and lines[i].strip().startswith("@"):  # annotations / decorators
        i -= 1
    end = i
    while i >= 0 and lines[i].strip() and _COMMENT_LINE.match(lines[i]):
        i -= 1
    start = i + 1
    if start > end:
        return None, None, None
    cleaned = []
    for line in lines[start:end + 1]:
        s = re.sub(r"^\s*(/\*\*?|\*/|\*|//+|#+)\s?", "", line).rstrip()
        s = re.sub(r"\*/\s*$", "", s).rstrip()
        cleaned.append(s)
    doc = "\n".join(cleaned).strip()
    return (doc or None), start + 1, end + 1


def _brace_functions(text: str, language: str, liz: list[tuple]) -> list[Function]:
    lines = text.splitlines()
    out = []
    for name, long_name, start, end, ccn, nloc, params in liz:
        if end <= start or end > len(lines):
            continue
        open_line = None
        for k in range(start, min(end, start + 8) + 1):
            if "{" in lines[k - 1]:
                open_line = k
                break
        if open_line is None or not lines[end - 1].strip().startswith("}"):
            body_start, body_end = start + 1, end
        else:
            body_start, body_end = open_line + 1, end - 1
        doc, ds, de = _leading_comment(lines, start)
        short = name.split("::")[-1].split(".")[-1]
        cls = name.rsplit("::", 1)[0] if "::" in name else (name.rsplit(".", 1)[0] if "." in name else None)
        out.append(Function(name=short, qualname=name, start_line=start, end_line=end,
                            def_line=start, body_start=body_start, body_end=body_end, doc=doc, doc_start=ds,
                            doc_end=de, ccn=ccn, nloc=nloc, params=params, class_name=cls))
    return out


def functions_of(path: str, text: str, language: str | None, liz: list[tuple] | None = None) -> list[Function]:
    """Every function of one file (top level and methods)."""
    if language not in LIZARD_LANGS:
        return []
    if liz is None:
        liz = lizard_functions(path, text)
    if language == "Python":
        found = _python_functions(text, liz)
        return found if found is not None else []
    return _brace_functions(text, language, liz)
