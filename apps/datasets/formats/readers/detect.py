"""Which format a file (or folder) is in, from its first 64 KiB, its name and its layout.

Contract: `detect_format(path, display=)` returns one of FORMATS' keys (a folder is "folder", or
"hf-datasets" when it is a `datasets` save_to_disk); an empty, UTF-16 or binary file raises
FatalFormatError with a message that names the file (`display`). FORMATS maps each format to the
sentence the upload form and the API show; QA_RE / DIALOGUE_RE recognise the turns of the two text
formats."""
from __future__ import annotations

import re
from pathlib import Path

from apps.datasets.formats.base import FatalFormatError
from apps.datasets.formats.scenario import looks_like_scenario

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
