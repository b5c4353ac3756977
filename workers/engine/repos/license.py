"""Which license a repository carries: the license file found at the root, matched to an SPDX id by the
phrases each license text contains (the file is reported even when the id is unknown)."""
from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

LICENSE_NAMES = ("license", "licence", "copying", "unlicense")

# (spdx id, name, phrases that must all appear; lower-cased, whitespace collapsed). First match wins.
SIGNATURES = [
    ("AGPL-3.0", "GNU Affero General Public License v3.0", ["gnu affero general public license", "version 3"]),
    ("LGPL-3.0", "GNU Lesser General Public License v3.0", ["gnu lesser general public license", "version 3"]),
    ("LGPL-2.1", "GNU Lesser General Public License v2.1", ["gnu lesser general public license", "version 2.1"]),
    ("GPL-3.0", "GNU General Public License v3.0", ["gnu general public license", "version 3"]),
    ("GPL-2.0", "GNU General Public License v2.0", ["gnu general public license", "version 2"]),
    ("Apache-2.0", "Apache License 2.0", ["apache license", "version 2.0"]),
    ("MPL-2.0", "Mozilla Public License 2.0", ["mozilla public license", "2.0"]),
    ("BSL-1.0", "Boost Software License 1.0", ["boost software license"]),
    ("Unlicense", "The Unlicense", ["this is free and unencumbered software released into the public domain"]),
    ("CC0-1.0", "Creative Commons Zero v1.0 Universal", ["cc0 1.0 universal"]),
    ("ISC", "ISC License", ["permission to use, copy, modify, and/or distribute this software for any purpose"]),
    ("MIT", "MIT License", ["permission is hereby granted, free of charge", "the above copyright notice"]),
    ("BSD-3-Clause", "BSD 3-Clause License", ["redistribution and use in source and binary forms",
                                              "neither the name"]),
    ("BSD-2-Clause", "BSD 2-Clause License", ["redistribution and use in source and binary forms"]),
    ("Zlib", "zlib License", ["this software is provided 'as-is'", "altered source versions must be plainly marked"]),
]


def identify(text: str) -> tuple[str | None, str | None]:
    low = re.sub(r"\s+", " ", text.lower())
    for spdx, name, phrases in SIGNATURES:
        if all(p in low for p in phrases):
            return spdx, name
    return None, None


def detect_license(files: dict) -> dict | None:
    """``{"path", "spdx", "name"}`` for the license of a snapshot (``path -> SourceFile``), or None."""
    candidates = sorted((p for p in files if "/" not in p and PurePosixPath(p).stem.lower() in LICENSE_NAMES),
                        key=lambda p: (len(p), p))
    for path in candidates:
        spdx, name = identify(files[path].text)
        return {"path": path, "spdx": spdx, "name": name}
    for meta in ("package.json", "pyproject.toml", "Cargo.toml", "setup.cfg"):
        f = files.get(meta)
        if f is None:
            continue
        value = None
        if meta == "package.json":
            try:
                data = json.loads(f.text)
                value = data.get("license") if isinstance(data, dict) else None
                value = value if isinstance(value, str) else None
            except ValueError:
                value = None
        else:
            m = re.search(r'^\s*license\s*=\s*(?:\{\s*text\s*=\s*)?["\']([^"\']+)["\']', f.text, re.M)
            value = m.group(1) if m else None
        if value:
            return {"path": meta, "spdx": value.strip(), "name": None}
    return None
