"""`hub login`, `hub logout`, `hub whoami`.

`hub login` checks a key against GET /api/me before saving it (0600). Without a key it can sign in with a
username and password instead: the dashboard's login form, then a new API key made for this machine
(POST /api/api-keys) — the password itself is never saved."""
from __future__ import annotations

import os
import re
import socket

import httpx
import typer

from hub_sdk import config
from hub_sdk.cli.common import JSON_OPTION, emit_json, err, fields, out, settings, stdin_is_terminal
from hub_sdk.errors import AuthenticationError, HubError, HubUnreachable, error_from_response


def _check(url: str, api_key: str) -> dict:
    from hub_sdk.client import Hub

    with Hub(url=url, api_key=api_key) as h:
        return h.me()


def password_login(url: str, username: str, password: str, *, key_name: str | None = None) -> str:
    """Sign in through the dashboard's login form and create an API key; returns the key."""
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            page = c.get("/accounts/login/")
            found = re.search(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"', page.text)
            if page.status_code != 200 or not found:
                raise HubError(f"{url} has no login page at /accounts/login/ (HTTP {page.status_code}).",
                               code="no_login_page")
            r = c.post("/accounts/login/", data={"username": username, "password": password,
                                                 "csrfmiddlewaretoken": found.group(1)},
                       headers={"Referer": f"{url}/accounts/login/"})
            if r.status_code == 429:
                raise HubError("Too many failed sign-ins: wait a while and try again.", status=429, code="throttled")
            if r.status_code != 302:
                raise AuthenticationError("Wrong username or password.", code="bad_credentials")
            name = key_name or f"hub CLI on {socket.gethostname()}"[:100]
            r = c.post("/api/api-keys", json={"name": name},
                       headers={"X-CSRFToken": c.cookies.get("csrftoken", ""),
                                "Referer": f"{url}/accounts/api-keys/"})
            if r.status_code != 201:
                raise error_from_response(r)
            return r.json()["key"]
    except httpx.TransportError as exc:
        raise HubUnreachable(f"Cannot reach the hub at {url}: {exc}.", code="unreachable") from exc


def login(
    url: str = typer.Option(None, "--url", help="The hub, e.g. http://127.0.0.1:8000 (default: HUB_URL, the saved "
                                                "one, or http://127.0.0.1:8000)."),
    api_key: str = typer.Option(None, "--api-key", help="An API key (dashboard: API keys). Asked for when "
                                                        "neither this nor --username is given."),
    username: str = typer.Option(None, "--username", "-u", help="Sign in with a username instead (the password "
                                                                "is asked for) and create a key for this machine."),
    password: str = typer.Option(None, "--password", hidden=True, help="For scripts; prefer the prompt."),
) -> None:
    """Save the hub's URL and an API key (checked first) in ~/.config/training-hub/credentials.json (0600)."""
    saved = config.load_saved()
    url = config.normalize_url(url or settings.url or os.environ.get("HUB_URL") or saved.get("url")
                               or config.DEFAULT_URL)
    api_key = api_key or settings.api_key
    if not api_key and username:
        if password is None:
            if not stdin_is_terminal():
                raise HubError("A password is needed: run `hub login` in a terminal, or pass --api-key.",
                               code="no_password")
            password = typer.prompt(f"Password for {username} at {url}", hide_input=True)
        api_key = password_login(url, username, password)
        err().print(f"Created an API key for this machine (see {url}/accounts/api-keys/).")
    if not api_key:
        if not stdin_is_terminal():
            raise HubError("No API key: pass --api-key (or --username), or set HUB_API_KEY.", code="no_key")
        api_key = typer.prompt(f"API key for {url} (from {url}/accounts/api-keys/)", hide_input=True).strip()
    me = _check(url, api_key)
    path = config.save(url=url, api_key=api_key, username=me["username"])
    out().print(f"Logged in to {url} as {me['username']} ({me['role']}). Saved to {path}.", markup=False)


def logout() -> None:
    """Forget the saved credentials (the key itself stays valid: revoke it in the dashboard)."""
    if config.forget():
        out().print(f"Removed {config.credentials_path()}.", markup=False)
    else:
        out().print("Not logged in: nothing saved.", markup=False)


def whoami(as_json: bool = JSON_OPTION) -> None:
    """Which hub and user the commands use, and where that comes from."""
    from hub_sdk.cli.common import hub

    with hub() as h:
        me = h.me()
        if as_json:
            emit_json({**me, "url": h.url, "credentials": h.credentials_source})
            return
        fields([("url", h.url), ("user", me["username"]), ("role", me["role"]),
                ("credentials", h.credentials_source)])
