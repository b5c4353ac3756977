"""LoRA adapters on a vLLM inference server: what the hub deploys is loaded there by name, `mv-<id>`.

The proxy sends a model version's requests to the inference server (settings.HUB_INFERENCE_URL) as model
`mv-<id>`, whichever server that is. The bundled server reads each version's manifest itself; vLLM started with
`--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` serves an adapter under a name once it was loaded
with `POST /v1/load_lora_adapter` (README "Serving on GPU with vLLM"). This module keeps that set in step with
the registry; the proxy needs no change.

Contract (everything is a no-op unless settings.HUB_INFERENCE_VLLM_LORA):
- `lora_wanted() -> {served_name: ModelVersion}`: the versions something routes to the inference server: every
  alias's version, every arm of a running experiment or canary, every chain target that names a version.
- `lora_sync(*, deployment_id=None) -> SyncReport | None`: lists the server's models (GET /models), loads each
  wanted adapter it lacks (POST /load_lora_adapter {"lora_name": "mv-<id>", "lora_path": ...}; a 400 "already
  been loaded" counts as loaded), then, after reading the wanted set again, unloads each `mv-<n>` it has that
  nothing wants (POST /unload_lora_adapter {"lora_name"}; a 404 "cannot be found" counts as unloaded). Loads
  come before unloads, so a rollback never leaves an alias without its version. A version that cannot be
  served there (full weights, an adapter of another base model than HUB_INFERENCE_BASE_MODEL, no adapter files,
  the server refusing or unreachable) is a `problems` entry, never an exception. Safe to run again at any time.
- With `deployment_id`, the problem of that deployment's version (if any) is recorded on the deployment
  (`deployment_warn`: a marked suffix of its `reason`, split off again by `reason_split` for the API and the
  alias page; the hub's artifact root shows as `<artifacts>`); the deployment itself stands. A later sync that
  finds the version loaded marks the warning resolved, with the time.
- Known gap: requests in the moment between a deployment's commit and its load get vLLM's 404 (the proxy's
  502 "does not know this model"); two syncs side by side are safe but for a window of milliseconds (the
  wanted set is read again right before unloading), and the next minute's sync repairs either.
- `deployment_saved` (post_save on Deployment, connected by registry.services.connect_signals): each new
  deployment (deploy, rollback, promote, canary) sends actor `registry_lora_sync(deployment_id)` after commit
  (workers/registry_vllm.py), which also runs the sync every minute: a restarted vLLM forgets the adapters
  loaded at runtime, and experiments and chains change without a deployment.
- Paths: the adapter is ARTIFACT_ROOT/<version.artifact_path>; vLLM is given the same relative path under
  HUB_INFERENCE_ARTIFACT_ROOT (where that host mounts the artifact volume) when set, else the absolute path.
- Every call carries HUB_INFERENCE_API_KEY as a bearer token when set (vLLM's --api-key).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.registry.models import Deployment, ModelVersion

log = logging.getLogger(__name__)

ACTOR = "registry_lora_sync"
WARNING_MARK = "\n\n⚠ vLLM: "  # what follows it in a deployment's reason is the serving warning
RESOLVED_MARK = " — loaded later, at "
TIMEOUT = httpx.Timeout(60.0, connect=5.0)  # a load reads the adapter from disk onto the GPU
_SERVED_RE = re.compile(r"^mv-[0-9]{1,18}$")
_MESSAGE_MAX = 300


@dataclass
class SyncReport:
    loaded: list[str] = field(default_factory=list)  # loaded by this sync
    present: list[str] = field(default_factory=list)  # wanted and already there
    unloaded: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # served name -> why it is not served there

    @property
    def served(self) -> set[str]:
        return set(self.loaded) | set(self.present)


class _Unavailable(Exception):
    """The server cannot be asked at all (unreachable, refusing the key, no model list)."""


def enabled() -> bool:
    return bool(settings.HUB_INFERENCE_VLLM_LORA)


def _base() -> str:
    return settings.HUB_INFERENCE_URL.rstrip("/")


def _headers() -> dict[str, str]:
    key = settings.HUB_INFERENCE_API_KEY
    return {"authorization": f"Bearer {key}"} if key else {}


def lora_path(version: ModelVersion) -> str:
    """The adapter folder as the vLLM host sees it."""
    remote = settings.HUB_INFERENCE_ARTIFACT_ROOT
    if remote:
        return str(PurePosixPath(remote) / version.artifact_path)
    return str(settings.ARTIFACT_ROOT / version.artifact_path)


# --- the deployment's warning ---------------------------------------------------------------------------
def reason_split(reason: str) -> tuple[str, str | None]:
    """(the reason as typed, the serving warning or None) of a deployment's stored reason."""
    head, sep, tail = (reason or "").partition(WARNING_MARK)
    return head, (tail if sep else None)


@transaction.atomic
def deployment_warn(*, deployment_id: int, text: str) -> None:
    """Record (or replace) the serving warning of a deployment; its typed reason is kept as it was."""
    dep = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
    if dep is None:
        return
    reason, _ = reason_split(dep.reason)
    text = text.replace(str(settings.ARTIFACT_ROOT).rstrip("/"), "<artifacts>")  # as job errors show it
    dep.reason = reason + WARNING_MARK + " ".join(text.split())[:1000]
    dep.save(update_fields=["reason"])


def _resolve_warnings(served: set[str]) -> None:
    """Deployments whose warning is about a version that is loaded now say so (with the time)."""
    if not served:
        return
    rows = (Deployment.objects.filter(reason__contains=WARNING_MARK).exclude(reason__contains=RESOLVED_MARK)
            .select_related("model_version").order_by("-id")[:50])
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    for dep in rows:
        if dep.model_version.served_name in served:
            Deployment.objects.filter(pk=dep.pk, reason=dep.reason).update(reason=dep.reason + RESOLVED_MARK + stamp)


# --- what should be loaded -------------------------------------------------------------------------------
def lora_wanted() -> dict[str, ModelVersion]:
    """Every version an alias, a running experiment's arm or a chain target routes to the inference server."""
    from apps.experiments.models import Arm, Experiment
    from apps.proxy.models import ChainTarget
    from apps.registry.models import Alias

    ids = set(Alias.objects.values_list("model_version_id", flat=True))
    ids |= set(Arm.objects.filter(experiment__status=Experiment.Status.RUNNING)
               .values_list("model_version_id", flat=True))
    ids |= set(ChainTarget.objects.filter(model_version__isnull=False).values_list("model_version_id", flat=True))
    versions = ModelVersion.objects.select_related("base_model").filter(pk__in=ids)
    return {v.served_name: v for v in versions if v.kind != ModelVersion.Kind.REMOTE}  # remote: Together


def _unservable(version: ModelVersion) -> str | None:
    name, where = version.served_name, f"vLLM at {_base()}"
    if version.kind == ModelVersion.Kind.FULL:
        return (f"{name} has full weights, but {where} serves one base model and its LoRA adapters: requests for "
                f"{name} will fail there (serve it from its own server as a provider in a chain).")
    expected = settings.HUB_INFERENCE_BASE_MODEL
    if expected and version.base_model_id != expected:
        return (f"{name} is an adapter of {version.base_model_id or 'no registered base model'}, but {where} "
                f"serves {expected} (HUB_INFERENCE_BASE_MODEL): not loaded, requests for {name} will fail there.")
    if not version.artifact_path or not (settings.ARTIFACT_ROOT / version.artifact_path /
                                         "adapter_config.json").is_file():
        return f"{name} has no adapter files (adapter_config.json) in the artifact store: nothing to load."
    return None


# --- the server ------------------------------------------------------------------------------------------
def _message(resp: httpx.Response) -> str:
    """vLLM's error text: {"error": {"message"}} (recent), {"message"} (older), {"detail"} (FastAPI), or text."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    text = None
    if isinstance(data, dict):
        err = data.get("error")
        text = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
        text = text or data.get("message") or data.get("detail")
    text = str(text if text is not None else resp.text or resp.reason_phrase)
    return " ".join(text.split())[:_MESSAGE_MAX]


def _route_missing(resp: httpx.Response) -> bool:
    """404 from FastAPI itself (no such route: runtime LoRA updating is off), not vLLM's "adapter not found"."""
    if resp.status_code != 404:
        return False
    try:
        return resp.json() == {"detail": "Not Found"}
    except ValueError:
        return False


def _runtime_off(path: str) -> str:
    return (f"vLLM at {_base()} has no {path} endpoint: start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
            "and --enable-lora.")


def _listed(client: httpx.Client) -> set[str]:
    try:
        resp = client.get(f"{_base()}/models")
    except httpx.HTTPError as exc:
        raise _Unavailable(f"vLLM at {_base()} is unreachable ({type(exc).__name__}: {exc}).") from exc
    if resp.status_code == 401:
        raise _Unavailable(f"vLLM at {_base()} refused the key (HTTP 401): set HUB_INFERENCE_API_KEY to its --api-key.")
    if resp.status_code != 200:
        raise _Unavailable(f"vLLM at {_base()}/models answered HTTP {resp.status_code}: {_message(resp)}")
    try:
        return {m["id"] for m in resp.json()["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)}
    except (ValueError, KeyError, TypeError) as exc:
        raise _Unavailable(f"vLLM at {_base()}/models did not answer a model list.") from exc


def _load(client: httpx.Client, name: str, path: str) -> str | None:
    """None when `name` is loaded (now or before), else why not."""
    try:
        resp = client.post(f"{_base()}/load_lora_adapter", json={"lora_name": name, "lora_path": path})
    except httpx.HTTPError as exc:
        return f"vLLM at {_base()} is unreachable while loading {name} ({type(exc).__name__}: {exc})."
    if resp.status_code == 200:
        return None
    message = _message(resp)
    if resp.status_code == 400 and "already" in message.lower() and "loaded" in message.lower():
        return None
    if _route_missing(resp):
        return _runtime_off("/load_lora_adapter")
    return f"vLLM did not load {name} from {path}: HTTP {resp.status_code}: {message}"


def _unload(client: httpx.Client, name: str) -> str | None:
    try:
        resp = client.post(f"{_base()}/unload_lora_adapter", json={"lora_name": name})
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__}: {exc})"
    if resp.status_code == 200 or (resp.status_code == 404 and not _route_missing(resp)):
        return None
    return f"HTTP {resp.status_code}: {_message(resp)}"


# --- the sync --------------------------------------------------------------------------------------------
def lora_sync(*, deployment_id: int | None = None) -> SyncReport | None:
    """See the module's contract. None when the inference server is not a vLLM with runtime LoRA loading."""
    if not enabled():
        return None
    report = SyncReport()
    with httpx.Client(timeout=TIMEOUT, headers=_headers()) as client:
        try:
            listed = _listed(client)
        except _Unavailable as exc:
            listed = None
            report.problems = {name: str(exc) for name in lora_wanted()}
        if listed is not None:
            _load_wanted(client, listed, report)
            _unload_unwanted(client, listed, report)
    if deployment_id is not None:
        _record(deployment_id, report)
    _resolve_warnings(report.served)
    quiet = not (report.loaded or report.unloaded or (report.problems and deployment_id is not None))
    log.log(logging.DEBUG if quiet else logging.INFO, "vLLM LoRA sync: loaded %s, unloaded %s, problems %s",
            report.loaded, report.unloaded, report.problems)  # a standing problem: once per deploy, not a minute
    return report


def _load_wanted(client: httpx.Client, listed: set[str], report: SyncReport) -> None:
    for name, version in sorted(lora_wanted().items()):
        why = _unservable(version)
        if why:
            report.problems[name] = why
        elif name in listed:
            report.present.append(name)
        else:
            error = _load(client, name, lora_path(version))
            if error is None:
                report.loaded.append(name)
            else:
                report.problems[name] = error


def _unload_unwanted(client: httpx.Client, listed: set[str], report: SyncReport) -> None:
    for name in sorted(listed - set(lora_wanted())):  # read again: a deploy may have committed meanwhile
        if _SERVED_RE.match(name):  # adapters the hub did not name are someone else's
            error = _unload(client, name)
            if error is None:
                report.unloaded.append(name)
            else:
                log.warning("vLLM: could not unload %s: %s", name, error)


def _record(deployment_id: int, report: SyncReport) -> None:
    dep = Deployment.objects.select_related("model_version").filter(pk=deployment_id).first()
    if dep is not None and dep.model_version.served_name in report.problems:
        deployment_warn(deployment_id=deployment_id, text=report.problems[dep.model_version.served_name])


def deployment_saved(sender, instance, created=False, **kwargs) -> None:
    """A new deployment: sync the adapters once it has committed (the HTTP calls never run in its transaction)."""
    if created and enabled():
        from apps.core.jobs import enqueue as jobs

        jobs.enqueue(ACTOR, instance.pk, queue_name="default")
