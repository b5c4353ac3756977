"""Readers: detect a file's format and stream normalized examples out of it.

`read_path(path, report=..., target=..., format=None)` returns `(format_name, iterator)`. Nothing here
loads a whole JSONL file: lines are streamed, so memory stays flat as files grow.

The package, by concern: `detect` (FORMATS, detect_format), `jsonl` (JSON Lines, JSON arrays), `tabular`
(CSV, Parquet, Hugging Face datasets; column mappings), `text` (Q/A and dialogue text, plain text,
markdown scenarios), `paths` (read_path; folders and zips).
"""
from apps.datasets.formats.readers.detect import FORMATS, detect_format
from apps.datasets.formats.readers.paths import read_path
from apps.datasets.formats.readers.tabular import resolve_columns

__all__ = ["FORMATS", "detect_format", "read_path", "resolve_columns"]
