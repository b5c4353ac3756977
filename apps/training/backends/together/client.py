"""The HTTP client for the fine-tuning part of Together.ai's API (httpx), with bounded retries.

Contract: `TogetherClient()` reads TOGETHER_API_KEY / TOGETHER_BASE_URL / TOGETHER_TIMEOUT_S /
TOGETHER_MAX_RETRIES / TOGETHER_RETRY_BACKOFF_S from settings (raising TogetherError when no key is set)
and exposes one method per endpoint (upload_file, create_fine_tune, get_fine_tune, list_events,
cancel_fine_tune), each returning the decoded JSON. Every failure is a `TogetherError` whose `message` is
fit to show on a run, with `status_code` and `transient` (429, 5xx, network). 429/5xx/network errors are
retried with exponential backoff (capped at _MAX_BACKOFF_S, honouring Retry-After); job creation is not
idempotent, so it is retried only when the request surely created nothing. Knows nothing of runs."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 8.0
_NOT_CONFIGURED = ("Remote training on Together.ai is not configured: set TOGETHER_API_KEY in the server's "
                   "environment (and TOGETHER_BASE_URL if you do not use api.together.xyz).")


class TogetherError(Exception):
    """A call to Together failed. `message` is fit to show on the run as it is."""

    def __init__(self, message: str, *, status_code: int | None = None, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.transient = transient


class TogetherClient:
    """A small client for the fine-tuning part of Together's API.

    Bearer auth from settings.TOGETHER_API_KEY, base URL settings.TOGETHER_BASE_URL, a per-request timeout,
    and retries with exponential backoff (bounded) on 429, 5xx and network errors. Job creation is not
    idempotent, so it is retried only when the request surely did not create a job (connect errors, 429, 503).
    """

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, timeout_s: float | None = None,
                 max_retries: int | None = None, backoff_s: float | None = None,
                 transport: httpx.BaseTransport | None = None):
        api_key = api_key if api_key is not None else settings.TOGETHER_API_KEY
        if not api_key:
            raise TogetherError(_NOT_CONFIGURED)
        self.base_url = (base_url or settings.TOGETHER_BASE_URL).rstrip("/")
        self.timeout_s = float(timeout_s if timeout_s is not None else settings.TOGETHER_TIMEOUT_S)
        self.max_retries = int(max_retries if max_retries is not None else settings.TOGETHER_MAX_RETRIES)
        self.backoff_s = float(backoff_s if backoff_s is not None
                               else getattr(settings, "TOGETHER_RETRY_BACKOFF_S", 0.5))
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "training-hub",
                     "Accept": "application/json"},
            timeout=httpx.Timeout(self.timeout_s),
            transport=transport,
        )

    def __enter__(self) -> TogetherClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints ---------------------------------------------------------------------------------
    def upload_file(self, path: Path, *, purpose: str = "fine-tune") -> dict:
        """POST /files/upload (multipart: purpose, file_name, file_type, file) -> {"id": "file-...", ...}."""
        path = Path(path)

        def send() -> httpx.Response:
            with path.open("rb") as fh:  # reopened per attempt, so a retry sends the whole file again
                return self._http.post(
                    "files/upload",
                    data={"purpose": purpose, "file_name": path.name, "file_type": "jsonl"},
                    files={"file": (path.name, fh, "application/octet-stream")},
                )

        return self._call("POST", "/files/upload", send, idempotent=True)

    def create_fine_tune(self, body: dict) -> dict:
        return self._call("POST", "/fine-tunes", lambda: self._http.post("fine-tunes", json=body), idempotent=False)

    def get_fine_tune(self, job_id: str) -> dict:
        return self._call("GET", f"/fine-tunes/{job_id}", lambda: self._http.get(f"fine-tunes/{job_id}"))

    def list_events(self, job_id: str) -> list[dict]:
        body = self._call("GET", f"/fine-tunes/{job_id}/events",
                          lambda: self._http.get(f"fine-tunes/{job_id}/events"))
        data = body.get("data") if isinstance(body, dict) else body
        return [e for e in (data or []) if isinstance(e, dict)]

    def cancel_fine_tune(self, job_id: str) -> dict:
        return self._call("POST", f"/fine-tunes/{job_id}/cancel",
                          lambda: self._http.post(f"fine-tunes/{job_id}/cancel"), idempotent=True)

    # -- plumbing ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, send: Callable[[], httpx.Response], *, idempotent: bool = True) -> dict:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = send()
            except httpx.TimeoutException:
                error = TogetherError(f"Together API unreachable at {self.base_url}: timeout after {self.timeout_s:g}s "
                                      f"({method} {path})", transient=True)
                retryable = idempotent
            except httpx.ConnectError as exc:
                error = TogetherError(f"Together API unreachable at {self.base_url}: cannot connect ({_short(exc)})",
                                      transient=True)
                retryable = True  # nothing reached the server
            except httpx.TransportError as exc:
                error = TogetherError(f"Together API unreachable at {self.base_url}: {type(exc).__name__}: "
                                      f"{_short(exc)} ({method} {path})", transient=True)
                retryable = idempotent
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise TogetherError(f"Together API returned a non-JSON answer to {method} {path} "
                                            f"(HTTP {response.status_code}): {response.text[:200]!r}") from None
                code = response.status_code
                error = TogetherError(f"Together API error {code} on {method} {path}: {_error_detail(response)}",
                                      status_code=code, transient=code == 429 or code >= 500)
                retryable = code in (429, 503) or (idempotent and code >= 500)
                retry_after = _retry_after(response)
            if not retryable or attempt >= self.max_retries:
                if attempt:
                    error.message += f" (after {attempt + 1} attempts)"
                    error.args = (error.message,)
                raise error
            delay = min(_MAX_BACKOFF_S, self.backoff_s * (2 ** attempt))
            if retry_after is not None:
                delay = min(_MAX_BACKOFF_S, max(delay, retry_after))
            log.info("Together %s %s failed (%s); retry %d/%d in %.2fs", method, path, error.message,
                     attempt + 1, self.max_retries, delay)
            time.sleep(delay)
            attempt += 1


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return json.dumps(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None

