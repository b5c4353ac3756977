"""`Hub`: the client. One httpx connection pool, the API key as a bearer token, errors as `HubError`s, and one
namespace per area of /api:

    hub = Hub()                                   # HUB_URL / HUB_API_KEY, or what `hub login` saved
    v = hub.datasets.upload("chats.jsonl", progress=True)
    run = hub.runs.create(dataset_version_id=v["id"], base_model="tiny", max_steps=20)
    run = hub.runs.watch(run["id"], progress=True)
    hub.models.deploy(run["model_version_id"], alias="staging")
    print(hub.chat_text("staging", "Hello!"))
"""
from __future__ import annotations

from typing import Any

import httpx

from hub_sdk import __version__
from hub_sdk.config import resolve
from hub_sdk.errors import HubError, HubUnreachable, error_from_response
from hub_sdk.types import Evaluation, Me


class Hub:
    """A client of one Training Hub. `url` and `api_key` default to HUB_URL / HUB_API_KEY, then to the file
    `hub login` wrote. `transport` is httpx's (tests pass a MockTransport)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None):
        from hub_sdk.commands import Commands
        from hub_sdk.datasets import Datasets
        from hub_sdk.evaluations import Evaluations
        from hub_sdk.jobs import Jobs
        from hub_sdk.registry import Models
        from hub_sdk.reviews import Reviews
        from hub_sdk.runs import Runs
        from hub_sdk.sources import Sources

        creds = resolve(url, api_key)
        self.url = creds.url
        self.api_key = creds.api_key
        self.credentials_source = creds.source
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {self.api_key}",
                                           "User-Agent": f"training-hub-sdk/{__version__}"})
        self.datasets = Datasets(self)
        self.runs = Runs(self)
        self.models = Models(self)
        self.jobs = Jobs(self)
        self.sources = Sources(self)
        self.reviews = Reviews(self)
        self.commands = Commands(self)
        self.evaluations = Evaluations(self)

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def send(self, method: str, path: str, *, json: Any = None, params: dict | None = None, data: dict | None = None,
             files: dict | None = None, timeout: float | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None); a non-2xx answer raises its `HubError`."""
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            resp = self._http.request(method.upper(), path, json=json, params=params or None, data=data,
                                      files=files, **kwargs)
        except httpx.TimeoutException as exc:
            raise HubUnreachable(f"The hub at {self.url} did not answer in time ({type(exc).__name__}).",
                                 code="timeout") from exc
        except httpx.TransportError as exc:
            raise HubUnreachable(f"Cannot reach the hub at {self.url}: {exc}.", code="unreachable") from exc
        if resp.status_code >= 400:
            raise error_from_response(resp)
        if resp.status_code == 204 or not resp.content:
            return resp.status_code, None
        try:
            return resp.status_code, resp.json()
        except ValueError as exc:
            raise HubError(f"The hub answered {method.upper()} {path} with something that is not JSON "
                           f"({resp.headers.get('content-type', 'no content type')}). Is {self.url} a Training Hub?",
                           status=resp.status_code, code="not_json") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The parsed body of `method path` (`json=`, `params=`, `data=`, `files=`)."""
        return self.send(method, path, **kwargs)[1]

    def stream(self, method: str, path: str, **kwargs: Any):
        """A streamed response (for downloads): a context manager; errors raised like `send`."""
        return _Stream(self, method, path, kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Hub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Hub(url={self.url!r})"

    # -- who and what --------------------------------------------------------------------------------------------
    def me(self) -> Me:
        return self.request("GET", "/api/me")

    def base_models(self) -> list[dict]:
        return self.request("GET", "/api/base-models")

    def generate(self, repository: str | int, *, wait: bool = True, progress: bool = False,
                 timeout: float | None = None, **options: Any):
        """Generate training scenarios from a repository (a local path, a git URL, or a source id) into a dataset
        version. Options as in /api/sources/{id}/generations: max_examples, generators, seed, include_tests, ..."""
        return self.sources.generate(repository, wait=wait, progress=progress, timeout=timeout, **options)

    def evaluate(self, run_id: int) -> Evaluation:
        """What a run measured: final and validation loss, perplexity, post-training checks, the loss curve, and
        the metrics kept on its model version."""
        run = self.runs.get(run_id)
        summary = run.get("summary") or {}
        model_metrics: dict = {}
        if run.get("model_version_id"):
            model_metrics = self.models.get(run["model_version_id"]).get("metrics") or {}
        points = run.get("metrics") or []
        return {
            "run_id": run["id"], "status": run["status"], "model_version_id": run.get("model_version_id"),
            "final_loss": summary.get("final_loss"), "eval_loss": summary.get("eval_loss"),
            "perplexity": summary.get("perplexity"), "evaluation": summary.get("evaluation") or {},
            "model_metrics": model_metrics,
            "train_loss": [(p["step"], p["loss"]) for p in points
                           if p.get("kind") == "train" and p.get("loss") is not None],
            "eval_points": [p for p in points if p.get("kind") == "eval"],
        }

    # -- /v1 ----------------------------------------------------------------------------------------------------
    def chat(self, model: str, messages: list[dict] | str, **params: Any) -> dict:
        """One chat completion through the hub's OpenAI-compatible /v1 (a deployed alias or a provider model):
        the answer as OpenAI's JSON. `messages` may be a single user message as a string."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        params.pop("stream", None)
        timeout = params.pop("timeout", None) or 300
        return self.request("POST", "/v1/chat/completions", json={"model": model, "messages": messages, **params},
                            timeout=timeout)

    def chat_text(self, model: str, messages: list[dict] | str, **params: Any) -> str:
        answer = self.chat(model, messages, **params)
        return (answer.get("choices") or [{}])[0].get("message", {}).get("content") or ""


class _Stream:
    def __init__(self, hub: Hub, method: str, path: str, kwargs: dict):
        self.hub, self.method, self.path, self.kwargs = hub, method, path, kwargs

    def __enter__(self) -> httpx.Response:
        try:
            self._cm = self.hub._http.stream(self.method, self.path, **self.kwargs)
            resp = self._cm.__enter__()
        except httpx.TransportError as exc:
            raise HubUnreachable(f"Cannot reach the hub at {self.hub.url}: {exc}.", code="unreachable") from exc
        if resp.status_code >= 400:
            resp.read()
            self._cm.__exit__(None, None, None)
            raise error_from_response(resp)
        return resp

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)
