"""Reading a path: the reader of its format, and the containers of other files (folders and zips,
where a sub-folder is a category).

Contract: `read_path(path, report=, target=, format=None, display=, columns=, category=)` returns
`(format, iterator of examples)` for a file, a folder or a zip (the format detected unless given; an
unknown one raises FatalFormatError). Folders skip hidden and system files and nested archives; zips
refuse more than MAX_ZIP_FILES entries, more than 4x HUB_MAX_UPLOAD_MB unpacked, or a ratio over
MAX_ZIP_RATIO for large ones (zip bombs), and never extract outside their temporary folder."""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from apps.datasets.formats.base import FatalFormatError
from apps.datasets.formats.readers.detect import FORMATS, detect_format
from apps.datasets.formats.readers.jsonl import read_json_array, read_jsonl
from apps.datasets.formats.readers.tabular import read_csv, read_hf, read_parquet
from apps.datasets.formats.readers.text import read_markdown, read_plain, read_turn_text

MAX_ZIP_RATIO = 200
MAX_ZIP_FILES = 20000


def _max_bytes() -> int:
    from django.conf import settings

    return int(settings.HUB_MAX_UPLOAD_MB) * 1024 * 1024


def read_path(path, *, report, target="local", format=None, display=None, columns=None, category=""):
    """Return (format, iterator of examples) for a file, a folder or a zip."""
    path = Path(path)
    display = display or path.name
    fmt = format or detect_format(path, display)
    if fmt not in FORMATS:
        raise FatalFormatError("unknown_format", f"Unknown format `{fmt}` (known: {', '.join(FORMATS)}).")
    reader = {
        "jsonl": read_jsonl, "json": read_json_array, "parquet": read_parquet, "csv": read_csv,
        "hf-datasets": read_hf, "qa-text": read_turn_text, "dialogue-text": read_turn_text,
        "plain-text": read_plain, "markdown-scenario": read_markdown, "folder": read_folder, "zip": read_zip,
    }[fmt]
    return fmt, reader(path, report=report, target=target, display=display, columns=columns, category=category,
                       fmt=fmt)


SKIP_NAMES = {".DS_Store", "Thumbs.db", "__MACOSX", "desktop.ini"}


def read_folder(path, *, report, target, display, category, columns, **_):
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


def read_zip(path, *, report, target, display, category, columns, **_):
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
            yield from read_folder(root, report=report, target=target, display=display, category=category,
                                   columns=columns)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
