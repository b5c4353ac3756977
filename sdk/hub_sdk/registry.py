"""`hub.models`: model versions, deployment aliases (deploy, history, rollback) and exports (start, wait with a
progress bar, download with a progress bar)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub_sdk.jobs import raise_if_failed
from hub_sdk.progress import Poller, Tracker
from hub_sdk.types import Alias, Export, ModelVersion, ModelVersionDetail

if TYPE_CHECKING:
    from hub_sdk.client import Hub

EXPORT_FINISHED = ("succeeded", "degraded", "failed", "cancelled")


class Models:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def list(self) -> list[ModelVersion]:
        return self._hub.request("GET", "/api/models")

    def get(self, version_id: int) -> ModelVersionDetail:
        return self._hub.request("GET", f"/api/models/{version_id}")

    # -- aliases -------------------------------------------------------------------------------------------------
    def aliases(self) -> list[Alias]:
        return self._hub.request("GET", "/api/aliases")

    def alias_history(self, alias: str) -> dict:
        """{alias, model_version_id, deployments (newest first), rollback_targets}."""
        return self._hub.request("GET", f"/api/aliases/{alias}/deployments")

    def deploy(self, version_id: int, alias: str, *, reason: str | None = None, canary_percent: int | None = None,
               **canary: Any) -> Alias:
        """Point `alias` (e.g. staging, production) at this version (admins). With `canary_percent`, a canary
        takes that share of the alias's requests instead (hold_minutes, thresholds, auto_promote, ...)."""
        body: dict[str, Any] = {"alias": alias}
        if reason:
            body["reason"] = reason
        if canary_percent is not None:
            body["canary_percent"] = canary_percent
            body.update({k: v for k, v in canary.items() if v is not None})
        return self._hub.request("POST", f"/api/models/{version_id}/deploy", json=body)

    def rollback(self, alias: str, *, to_version_id: int | None = None, to_deployment_id: int | None = None,
                 reason: str | None = None) -> Alias:
        """Point the alias back at a version it served before (default: the most recent other one)."""
        body = {k: v for k, v in (("to_version_id", to_version_id), ("to_deployment_id", to_deployment_id),
                                  ("reason", reason)) if v is not None}
        return self._hub.request("POST", f"/api/aliases/{alias}/rollback", json=body)

    # -- exports -------------------------------------------------------------------------------------------------
    def export(self, version_id: int, format: str = "adapter", *, quantization: str | None = None, wait: bool = True,
               progress: bool = False, timeout: float | None = 3600) -> Export:
        """Export the version as its LoRA `adapter`, `merged` full weights or a `gguf` file (quantization
        f16, q8_0, q4_k_m, ...). With `wait` (default) returns once it is written and checked."""
        body: dict[str, Any] = {"format": format}
        if quantization:
            body["quantization"] = quantization
        export = self._hub.request("POST", f"/api/models/{version_id}/exports", json=body)
        return self.wait_export(export["id"], progress=progress, timeout=timeout) if wait else export

    def exports(self, version_id: int) -> list[Export]:
        return self._hub.request("GET", f"/api/models/{version_id}/exports")

    def get_export(self, export_id: int) -> Export:
        return self._hub.request("GET", f"/api/exports/{export_id}")

    def wait_export(self, export_id: int, *, progress: bool = False, interval: float = 1.0,
                    timeout: float | None = 3600) -> Export:
        poller = Poller(f"Export {export_id}", interval=interval, timeout=timeout)
        export = self.get_export(export_id)
        with Tracker(f"Export {export_id}", kind="count", enabled=progress) as bar:
            while True:
                p = export.get("progress") or {}
                done = export["status"] in ("succeeded", "degraded")
                total = p.get("total") or bar.total
                bar.update(completed=total if done and total else (p.get("current") or 0), total=total or None,
                           description=f"Export {export['format']} {export.get('phase') or export['status']}",
                           message=p.get("message") or p.get("unit") or "")
                if export["status"] in EXPORT_FINISHED:
                    break
                poller.sleep()
                export = self.get_export(export_id)
        raise_if_failed(export, f"Export {export_id}")
        return export

    def download_export(self, export_id: int, dest: str | Path, *, progress: bool = False) -> Path:
        """Save the export (a .gguf file, or a zip of its folder) to `dest` (a file, or a folder to put it in)."""
        dest = Path(dest).expanduser()
        with self._hub.stream("GET", f"/api/exports/{export_id}/download", timeout=None) as resp:
            name = _filename(resp.headers.get("content-disposition", "")) or f"export-{export_id}"
            target = dest / name if dest.is_dir() else dest
            total = int(resp.headers["content-length"]) if resp.headers.get("content-length") else None
            tmp = target.with_name(target.name + ".part")
            with Tracker(f"Downloading {name}", kind="bytes", total=total, enabled=progress) as bar, \
                    open(tmp, "wb") as f:
                for chunk in resp.iter_bytes(1 << 20):
                    f.write(chunk)
                    bar.update(advance=len(chunk))
            tmp.replace(target)
        return target


def _filename(disposition: str) -> str | None:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return Path(value.strip('"')).name
    return None
