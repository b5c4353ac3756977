"""JSON Lines and JSON arrays: rows streamed (JSONL line by line, so memory stays flat as files grow),
each checked by the RowChecker; a bad line is reported with its number and the import goes on.

Contract: `read_jsonl(path, report=, target=, display=, category=)` and `read_json_array(...)` yield
normalized examples; JSON errors become report errors (encoding_error, invalid_json, truncated_json,
too_deep, blank_line for Together); an array over 256 MB or a file that is not JSON raises
FatalFormatError."""
from __future__ import annotations

import os
from pathlib import Path

import orjson

from apps.datasets.formats.base import FatalFormatError
from apps.datasets.formats.rows import RowChecker


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


def read_jsonl(path, *, report, target, display, category, **_):
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


def read_json_array(path, *, report, target, display, category, **_):
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
