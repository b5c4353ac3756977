"""Writing a bundle's zip: all or nothing.

Contract: `write_zip(dest=..., text_files=..., model_files=..., progress=..., should_stop=...) -> size_bytes`
- writes to a hidden temporary file beside `dest` (`.<name>.<pid>.partial`) and renames it over `dest` only when
  complete, so `dest` is either absent or whole; on any failure or cancel the temporary file is removed;
- model weights (.gguf, .safetensors, .bin, ...) are stored (they do not compress), everything else deflated;
  big members use ZIP64 (past 2 GiB);
- checks the free space first (the zip is about the size of its inputs) and turns a disk that fills up midway
  into BundleError("no_space");
- copies in 4 MiB chunks, calling `progress(done_bytes, total_bytes)` and stopping with BundleCancelled when
  `should_stop()` says so;
- `clear_partials(dest)` removes temporary files a dead process left for the same bundle.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import time
import zipfile
from pathlib import Path
from typing import Callable

from django.utils.text import slugify

from apps.registry.bundles.facts import BundleError

STORED_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".npz", ".zip", ".gz")
CHUNK = 4 * 1024 * 1024
SPACE_MARGIN = 64 * 1024 * 1024
EXECUTABLE = (".sh",)


class BundleCancelled(Exception):
    """A cancel was asked while the zip was being written."""


def bundle_filename(version_name: str, fmt: str, quantization: str, bundle_id: int) -> str:
    """<version-name>-<format>[-<quant>]-b<id>.zip (a slug of the name)."""
    parts = [slugify(version_name)[:80].strip("-_") or "model", fmt] + ([slugify(quantization)] if quantization else [])
    return "-".join(parts + [f"b{bundle_id}"]) + ".zip"


def compress_type(arcname: str) -> int:
    return zipfile.ZIP_STORED if arcname.lower().endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED


def _partial_glob(dest: Path) -> str:
    return f".{dest.name}.*.partial"


def clear_partials(dest: Path) -> None:
    for stale in dest.parent.glob(_partial_glob(dest)):
        stale.unlink(missing_ok=True)


def _text_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=time.localtime()[:6])
    info.compress_type = compress_type(arcname)
    mode = 0o755 if arcname.endswith(EXECUTABLE) else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    return info


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPACE_MARGIN:
        raise BundleError(f"Not enough disk space for the bundle: it needs about {needed / 2**20:.0f} MiB and "
                          f"{free / 2**20:.0f} MiB are free.", "no_space")


def write_zip(*, dest: Path, text_files: dict[str, str], model_files: list[tuple[Path, str]],
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    encoded = {arc: text.encode("utf-8") for arc, text in text_files.items()}
    sizes = [(path, arc, path.stat().st_size) for path, arc in model_files]
    total = sum(s for _, _, s in sizes) + sum(len(b) for b in encoded.values())
    _check_space(dest.parent, total)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    done = 0
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for arc, data in encoded.items():
                zf.writestr(_text_info(arc), data)
                done += len(data)
            for path, arc, size in sizes:
                info = zipfile.ZipInfo.from_file(path, arc)
                info.compress_type = compress_type(arc)
                with path.open("rb") as src, zf.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                        if should_stop is not None and should_stop():
                            raise BundleCancelled()
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise BundleError("The disk filled up while the bundle was written; nothing was kept.", "no_space") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest.stat().st_size
