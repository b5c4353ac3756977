"""Tables: CSV/TSV, Parquet and Hugging Face `datasets` folders (.arrow / .parquet), read in batches,
with a column mapping given or guessed (messages, prompt+completion, question+answer, ..., text).

Contract: `resolve_columns(names, columns)` returns the mapping (FatalFormatError when it cannot tell or a
mapped column is missing); `read_csv`, `read_parquet` and `read_hf(path, report=, target=, display=,
category=, columns=)` yield normalized examples (pre-tokenized rows are Together-only)."""
from __future__ import annotations

import csv
from pathlib import Path

import orjson

from apps.datasets.formats.base import FatalFormatError
from apps.datasets.formats.readers.detect import SNIFF_BYTES
from apps.datasets.formats.rows import RowChecker

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


def read_csv(path, *, report, target, display, category, columns, **_):
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


def read_parquet(path, *, report, target, display, category, columns, **_):
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


def read_hf(path, *, report, target, display, category, columns, **_):
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".arrow", ".parquet"))
    if not files:
        raise FatalFormatError("empty_folder", f"{display}: no .arrow or .parquet files found.", file=display)
    for f in files:
        rel = display if f == path else f"{display}/{f.relative_to(path)}"
        split = "" if f == path else (f.parent.name if f.parent != path else "")
        cat = category or split
        if f.suffix == ".parquet":
            yield from read_parquet(f, report=report, target=target, display=rel, category=cat, columns=columns)
        else:
            yield from _read_arrow_file(f, report=report, target=target, display=rel, category=cat, columns=columns)
