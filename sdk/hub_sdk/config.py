"""Where the SDK finds the hub and its key: the arguments, then HUB_URL / HUB_API_KEY, then what `hub login` saved
in $XDG_CONFIG_HOME/training-hub/credentials.json (default ~/.config/...), a file only its owner can read (0600)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hub_sdk.errors import NotConfigured

DEFAULT_URL = "http://127.0.0.1:8000"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "training-hub"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str
    username: str | None = None
    source: str = ""  # "arguments", "environment", the credentials file's path, or a mix


def load_saved() -> dict:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise NotConfigured(f"Cannot read {path}: {exc}. Run `hub login` again.") from exc
    return data if isinstance(data, dict) else {}


def save(*, url: str, api_key: str, username: str | None = None) -> Path:
    """Write the credentials, readable by their owner only (the folder 0700, the file 0600)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "api_key": api_key, "username": username}, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget() -> bool:
    try:
        credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[:-4]
    if "://" not in url:
        url = "http://" + url
    return url


def resolve(url: str | None = None, api_key: str | None = None) -> Credentials:
    """The URL and key to use, each from the first place that has it."""
    saved: dict | None = None
    sources = []

    def from_saved(key: str):
        nonlocal saved
        if saved is None:
            saved = load_saved()
        return saved.get(key)

    if url:
        sources.append("arguments")
    elif os.environ.get("HUB_URL"):
        url = os.environ["HUB_URL"]
        sources.append("HUB_URL")
    elif from_saved("url"):
        url = from_saved("url")
        sources.append(str(credentials_path()))
    if api_key:
        sources.append("arguments")
    elif os.environ.get("HUB_API_KEY"):
        api_key = os.environ["HUB_API_KEY"]
        sources.append("HUB_API_KEY")
    elif from_saved("api_key"):
        api_key = from_saved("api_key")
        sources.append(str(credentials_path()))
    if not url or not api_key:
        missing = " and ".join(n for n, v in (("the hub's URL", url), ("an API key", api_key)) if not v)
        raise NotConfigured(f"Not logged in ({missing} missing): run `hub login`, or set HUB_URL and HUB_API_KEY.",
                            code="not_configured")
    return Credentials(url=normalize_url(url), api_key=api_key, username=(saved or {}).get("username"),
                       source=", ".join(dict.fromkeys(sources)))
