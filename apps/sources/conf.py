"""Settings of the sources app, read from the environment (typed, failing loudly on a bad value) unless a
Django setting of the same name overrides it (tests use `settings.HUB_SOURCE_ROOTS = ...`).

- HUB_SOURCE_ROOTS: folders (separated by `:`) under which members may register local paths. Admins may
  register any path; everybody may register the hub's own checkout (the first-run demo). Default: none.
- HUB_SOURCE_CLONE_TIMEOUT_S: the longest a clone or fetch may take (default 300 s).
- HUB_SOURCE_MAX_ARCHIVE_MB: the largest uncompressed archive (default 512 MB).
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from training_hub.env import env_float, env_int


def _setting(name: str, default):
    return getattr(settings, name, default)


def source_roots() -> list[Path]:
    raw = _setting("HUB_SOURCE_ROOTS", None)
    if raw is None:
        raw = os.environ.get("HUB_SOURCE_ROOTS", "")
    if isinstance(raw, (list, tuple)):
        parts = [str(p) for p in raw]
    else:
        parts = [p for p in str(raw).split(os.pathsep) if p.strip()]
    return [Path(p).expanduser().resolve() for p in parts]


def clone_timeout_s() -> float:
    value = _setting("HUB_SOURCE_CLONE_TIMEOUT_S", None)
    return float(value) if value is not None else env_float("HUB_SOURCE_CLONE_TIMEOUT_S", 300.0, min_value=1.0)


def max_archive_bytes() -> int:
    value = _setting("HUB_SOURCE_MAX_ARCHIVE_MB", None)
    mb = int(value) if value is not None else env_int("HUB_SOURCE_MAX_ARCHIVE_MB", 512, min_value=1)
    return mb * 1024 * 1024


def hub_checkout() -> Path:
    """The hub's own git checkout (the first-run demo source)."""
    return Path(settings.BASE_DIR).resolve()


def sources_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "sources"


def generations_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "generations"
