"""Readers: detect a file's format and stream normalized examples out of it.

`read_path(path, report=..., target=..., format=None)` returns `(format_name, iterator)`. Nothing here
loads a whole JSONL file: lines are streamed, so memory stays flat as files grow.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import orjson

from apps.datasets.formats.base import FatalFormatError, make_example
from apps.datasets.formats.rows import RowChecker
from apps.datasets.formats.scenario import looks_like_scenario, parse_scenarios

FORMATS = {
    "jsonl": "JSON Lines: OpenAI chat (messages, tools, weight) or one of Together's four row formats",
    "json": "A JSON array of rows (same row formats as JSONL)",
    "parquet": "Parquet (messages / text / prompt+completion columns, or a column mapping)",
    "csv": "CSV with a header (column mapping)",
    "hf-datasets": "A Hugging Face `datasets` folder (save_to_disk: .arrow files)",
    "qa-text": "Plain text `Q: ... / A: ...` blocks",
    "dialogue-text": "Plain text `User: ... / Assistant: ...` blocks",
    "plain-text": "Plain paragraphs (for training from scratch)",
    "markdown-scenario": "Markdown scenarios (# SYSTEM / # USER / # DM / # TOOLCALL)",
    "folder": "A folder of files (sub-folder = category)",
    "zip": "A zip of files (sub-folder = category)",
}
SNIFF_BYTES = 64 * 1024
QA_RE = re.compile(r"^(Q|A|Question|Answer)\s*:", re.I)
DIALOGUE_RE = re.compile(r"^(User|Assistant|Human|AI|Bot|System)\s*:", re.I)
MAX_ZIP_RATIO = 200
MAX_ZIP_FILES = 20000


def _max_bytes() -> int:
    from django.conf import settings

    return int(settings.HUB_MAX_UPLOAD_MB) * 1024 * 1024


def detect_format(path: Path, display: str | None = None) -> str:
    path = Path(path)
    name = display or path.name
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return "hf-datasets"
        return "folder"
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head.strip():
        raise FatalFormatError("empty_file", f"{name} is empty.", line=1, file=name)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\xff\xff\xff\xff") or head.startswith(b"ARROW1"):
        return "hf-datasets"
    suffix = Path(name).suffix.lower()
    if b"\x00" in head:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise FatalFormatError("encoding_error", f"{name} is UTF-16; save it as UTF-8.", line=1, file=name)
        raise FatalFormatError("binary_file", f"{name} is a binary file, not text, JSONL, Parquet or zip.",
                               line=1, file=name)
    if suffix in (".csv", ".tsv"):
        return "csv"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.lstrip()[:1]
    if suffix == ".json" or (first == "[" and suffix != ".jsonl"):
        return "json"
    if first == "{":
        return "jsonl"
    if suffix in (".md", ".markdown") or looks_like_scenario(text):
        if looks_like_scenario(text):
            return "markdown-scenario"
    qa = dialogue = 0
    for line in text.splitlines():
        s = line.strip()
        if QA_RE.match(s):
            qa += 1
        elif DIALOGUE_RE.match(s):
            dialogue += 1
    if qa or dialogue:
        return "qa-text" if qa >= dialogue else "dialogue-text"
    return "plain-text"


def read_path(path, *, report, target="local", format=None, display=None, columns=None, category=""):
    """Return (format, iterator of examples) for a file, a folder or a zip."""
    path = Path(path)
    display = display or path.name
    fmt = format or detect_format(path, display)
    if fmt not in FORMATS:
        raise FatalFormatError("unknown_format", f"Unknown format `{fmt}` (known: {', '.join(FORMATS)}).")
    reader = {
        "jsonl": _read_jsonl, "json": _read_json_array, "parquet": _read_parquet, "csv": _read_csv,
        "hf-datasets": _read_hf, "qa-text": _read_turn_text, "dialogue-text": _read_turn_text,
        "plain-text": _read_plain, "markdown-scenario": _read_markdown, "folder": _read_folder, "zip": _read_zip,
    }[fmt]
    return fmt, reader(path, report=report, target=target, display=display, columns=columns, category=category,
                       fmt=fmt)


# --- JSON Lines ---------------------------------------------------------------------------------------
def _json_error(raw: bytes, exc, lineno, is_last, display, report):
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as ue:
        report.error("encoding_error", f"Line {lineno} is not valid UTF-8 (byte {ue.start}); save the file as UTF-8.",
                     line=lineno, file=display)
        return
    msg = str(exc)
    if "recursion" in msg.lower() or "depth" in msg.lower():
        report.error("too_deep", f"Line {lineno}: JSON nested too deeply.", line=lineno, file=display)
    elif is_last and not raw.endswith(b"\n"):
        report.error("truncated_json", f"Line {lineno} (the last line) is cut off: {msg}", line=lineno, file=display)
    else:
        report.error("invalid_json", f"Line {lineno} is not valid JSON: {msg}", line=lineno, file=display)


def _read_jsonl(path, *, report, target, display, category, **_):
    checker = RowChecker(report, target=target, file=display, category=category)
    loads = orjson.loads
    check = checker.check
    decode_error = orjson.JSONDecodeError
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                obj = loads(raw)
            except decode_error as exc:
                if not raw.strip():
                    if target == "together":
                        report.error("blank_line", f"Line {lineno} is blank.", line=lineno, file=display)
                    continue
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    try:
                        obj = loads(raw[3:])
                    except decode_error:
                        _json_error(raw, exc, lineno, fh.tell() >= size, display, report)
                        continue
                else:
                    _json_error(raw, exc, lineno, fh.tell() >= size, display, report)
                    continue
            except RecursionError:
                report.error("too_deep", f"Line {lineno}: JSON nested too deeply.", line=lineno, file=display)
                continue
            ex = check(obj, lineno)
            if ex is not None:
                yield ex


def _read_json_array(path, *, report, target, display, category, **_):
    if os.path.getsize(path) > 256 * 1024 * 1024:
        raise FatalFormatError("too_large", f"{display}: JSON arrays over 256 MB are not supported; use JSONL.",
                               file=display)
    try:
        data = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise FatalFormatError("invalid_json", f"{display} is not valid JSON: {exc}", line=1, file=display) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise FatalFormatError("invalid_json", f"{display}: expected a list of rows.", line=1, file=display)
    checker = RowChecker(report, target=target, file=display, category=category)
    for i, obj in enumerate(data, 1):
        ex = checker.check(obj, i)
        if ex is not None:
            yield ex


# --- tabular ----------------------------------------------------------------------------------------
COLUMN_GUESSES = [
    ("messages", None), ("prompt", "completion"), ("question", "answer"), ("instruction", "output"),
    ("input", "output"), ("user", "assistant"), ("query", "response"), ("text", None),
]


def resolve_columns(names: list[str], columns: dict | None) -> dict:
    """Column mapping: {"messages": col} or {"prompt": col, "completion": col, "system"?: col} or {"text": col}."""
    lower = {n.lower(): n for n in names}
    if columns:
        for k, v in columns.items():
            if v not in names:
                raise FatalFormatError("unknown_column", f"Column `{v}` (mapped to {k}) is not in the file "
                                       f"(columns: {', '.join(names)}).")
        return dict(columns)
    if "input_ids" in lower:
        return {"pretokenized": lower["input_ids"]}
    for a, b in COLUMN_GUESSES:
        if a in lower and (b is None or b in lower):
            if b is None:
                return {a: lower[a]}
            mapping = {"prompt": lower[a], "completion": lower[b]}
            if "system" in lower:
                mapping["system"] = lower["system"]
            return mapping
    raise FatalFormatError("unknown_columns", "Could not tell which columns hold the examples (columns: "
                           f"{', '.join(names)}); choose a column mapping.")


def _row_to_obj(row: dict, mapping: dict):
    if "messages" in mapping:
        msgs = row.get(mapping["messages"])
        if isinstance(msgs, (str, bytes)):
            try:
                msgs = orjson.loads(msgs)
            except orjson.JSONDecodeError:
                return {"messages": msgs}
        obj = {"messages": msgs}
        if "tools" in mapping or "tools" in row:
            tools = row.get(mapping.get("tools", "tools"))
            if isinstance(tools, str) and tools.strip():
                tools = orjson.loads(tools)
            if tools:
                obj["tools"] = tools
        return obj
    if "text" in mapping:
        return {"text": row.get(mapping["text"])}
    prompt, completion = row.get(mapping["prompt"]), row.get(mapping["completion"])
    if mapping.get("system") and row.get(mapping["system"]):
        return {"messages": [{"role": "system", "content": row[mapping["system"]]},
                             {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}
    return {"prompt": prompt, "completion": completion}


def _rows_to_examples(rows, mapping, *, report, target, display, category):
    checker = RowChecker(report, target=target, file=display, category=category)
    for lineno, row in rows:
        if "pretokenized" in mapping:
            if target != "together":
                report.error("pretokenized_not_supported", "Pre-tokenized rows (input_ids/labels) are accepted by "
                             "Together only; they cannot be shown or trained locally.", line=lineno, file=display)
                return
            continue
        ex = checker.check(_row_to_obj(row, mapping), lineno)
        if ex is not None:
            yield ex


def _read_csv(path, *, report, target, display, category, columns, **_):
    with open(path, "r", encoding="utf-8", errors="strict", newline="") as fh:
        try:
            sample = fh.read(SNIFF_BYTES)
        except UnicodeDecodeError:
            raise FatalFormatError("encoding_error", f"{display} is not valid UTF-8.", line=1, file=display) from None
        fh.seek(0)
        delim = "\t" if display.lower().endswith(".tsv") or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(fh, delimiter=delim)
        mapping = resolve_columns(reader.fieldnames or [], columns)

        def rows():
            try:
                for row in reader:
                    yield reader.line_num, row
            except UnicodeDecodeError:
                report.error("encoding_error", f"{display} is not valid UTF-8 near line {reader.line_num + 1}.",
                             line=reader.line_num + 1, file=display)
            except csv.Error as exc:
                report.error("invalid_csv", f"{display} line {reader.line_num}: {exc}.", line=reader.line_num,
                             file=display)
        yield from _rows_to_examples(rows(), mapping, report=report, target=target, display=display,
                                     category=category)


def _read_parquet(path, *, report, target, display, category, columns, **_):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise FatalFormatError("invalid_parquet", f"{display} is not a readable Parquet file: {exc}", file=display) from None
    mapping = resolve_columns(pf.schema_arrow.names, columns)

    def rows():
        n = 0
        for batch in pf.iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    yield from _rows_to_examples(rows(), mapping, report=report, target=target, display=display, category=category)


def _read_arrow_file(path, *, report, target, display, category, columns):
    import pyarrow as pa

    with pa.memory_map(str(path)) as src:
        try:
            reader = pa.ipc.open_stream(src)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(src)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            schema = reader.schema
        else:
            batches, schema = reader, reader.schema
        mapping = resolve_columns(schema.names, columns)

        def rows():
            n = 0
            for batch in batches:
                for row in batch.to_pylist():
                    n += 1
                    yield n, row
        yield from _rows_to_examples(rows(), mapping, report=report, target=target, display=display,
                                     category=category)


def _read_hf(path, *, report, target, display, category, columns, **_):
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".arrow", ".parquet"))
    if not files:
        raise FatalFormatError("empty_folder", f"{display}: no .arrow or .parquet files found.", file=display)
    for f in files:
        rel = display if f == path else f"{display}/{f.relative_to(path)}"
        split = "" if f == path else (f.parent.name if f.parent != path else "")
        cat = category or split
        if f.suffix == ".parquet":
            yield from _read_parquet(f, report=report, target=target, display=rel, category=cat, columns=columns)
        else:
            yield from _read_arrow_file(f, report=report, target=target, display=rel, category=cat, columns=columns)


# --- text ---------------------------------------------------------------------------------------------
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


def _read_turn_text(path, *, report, target, display, category, fmt, **_):
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


def _read_plain(path, *, report, target, display, category, **_):
    if target == "openai":
        report.error("format_not_supported", "OpenAI fine-tuning needs chat examples; plain text cannot be "
                     "uploaded there.", line=1, file=display)
    for block in _blocks(_text_lines(path, display, report)):
        text = "\n".join(line for _n, line in block).strip()
        yield make_example([{"role": "assistant", "content": text}], source_file=display, source_line=block[0][0],
                           category=category, kind="text")


def _read_markdown(path, *, report, target, display, category, **_):
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


# --- folders and zips ---------------------------------------------------------------------------------
SKIP_NAMES = {".DS_Store", "Thumbs.db", "__MACOSX", "desktop.ini"}


def _read_folder(path, *, report, target, display, category, columns, **_):
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part in SKIP_NAMES for part in p.relative_to(root).parts))
    if not files:
        raise FatalFormatError("empty_folder", f"{display} contains no files.", file=display)
    for f in files:
        rel = f.relative_to(root)
        cat = category or (rel.parts[0] if len(rel.parts) > 1 else "")
        shown = f"{display}/{rel.as_posix()}" if display else rel.as_posix()
        if f.suffix.lower() in (".json",) and f.name in ("dataset_info.json", "state.json", "dataset_dict.json"):
            continue
        try:
            fmt = detect_format(f, shown)
            if fmt in ("zip", "folder"):
                report.warn("skipped_file", f"Nested archives are not read: {shown}.", line=None, file=shown)
                continue
            _fmt, items = read_path(f, report=report, target=target, format=fmt, display=shown, columns=columns,
                                    category=cat)
            yield from items
        except FatalFormatError as exc:
            sev = "warning" if exc.code in ("binary_file",) else "error"
            report.add(exc.code, exc.message if exc.code != "binary_file" else f"Skipped binary file {shown}.",
                       line=exc.line, file=shown, severity=sev)


def _safe_member(name: str) -> str | None:
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _read_zip(path, *, report, target, display, category, columns, **_):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FatalFormatError("invalid_zip", f"{display} is not a readable zip: {exc}", file=display) from None
    limit = _max_bytes() * 4
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_FILES:
            raise FatalFormatError("zip_bomb", f"{display} holds {len(infos)} files (at most {MAX_ZIP_FILES}).",
                                   file=display)
        total = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos) or 1
        if total > limit or (total > 10 * 1024 * 1024 and total / packed > MAX_ZIP_RATIO):
            raise FatalFormatError("zip_bomb", f"{display} would unpack to {total // (1024 * 1024)} MB "
                                   f"({total / packed:.0f}x its size): refused as a possible zip bomb.", file=display)
        tmp = Path(tempfile.mkdtemp(prefix="hub-zip-"))
        try:
            written = 0
            for info in infos:
                safe = _safe_member(info.filename)
                if safe is None:
                    report.error("zip_path_traversal", f"Entry `{info.filename}` points outside the archive; "
                                 "it was not extracted.", file=display)
                    continue
                if any(p.startswith(".") or p in SKIP_NAMES for p in safe.split("/")):
                    continue
                dest = tmp / safe
                if tmp.resolve() not in dest.resolve().parents:
                    report.error("zip_path_traversal", f"Entry `{info.filename}` points outside the archive.",
                                 file=display)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > limit:
                            raise FatalFormatError("zip_bomb", f"{display} unpacks to more than "
                                                   f"{limit // (1024 * 1024)} MB: refused.", file=display)
                        out.write(chunk)
            root = tmp
            entries = [p for p in tmp.iterdir()]
            if len(entries) == 1 and entries[0].is_dir() and not category:
                root = entries[0]  # a zip of one top folder: its sub-folders are the categories
            yield from _read_folder(root, report=report, target=target, display=display, category=category,
                                    columns=columns)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
