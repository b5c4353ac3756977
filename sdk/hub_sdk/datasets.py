"""`hub.datasets`: upload a file (progress bar over the bytes, then over the import when the worker parses it),
list, get, versions, the validation report, examples."""
from __future__ import annotations

import io
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hub_sdk.errors import HubError
from hub_sdk.jobs import raise_if_failed
from hub_sdk.progress import Poller, ProgressFile, Tracker
from hub_sdk.types import Dataset, DatasetDetail, ValidationReport, Version, VersionSummary

if TYPE_CHECKING:
    from hub_sdk.client import Hub


class Datasets:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def upload(self, file: str | Path | bytes | IO[bytes], *, name: str | None = None, filename: str | None = None,
               dataset_id: int | None = None, format: str | None = None, split_ratio: float | None = None,
               base_model: str | None = None, target: str | None = None, background: bool | None = None,
               wait: bool = True, progress: bool = False, timeout: float | None = 600) -> Version:
        """Upload a dataset file (JSONL chat, Alpaca, ShareGPT, CSV, Parquet, ...) as a new dataset, or as a new
        version of `dataset_id`. Returns the version with its validation report; with `wait` (default), once
        it is imported (`ready` or `failed`) — a large file is parsed on the worker after the upload."""
        owned: IO[bytes] | None = None
        if isinstance(file, (str, Path)):
            path = Path(file).expanduser()
            if not path.is_file():
                raise HubError(f"No such file: {path}", code="no_file")
            owned = fh = open(path, "rb")  # noqa: SIM115 - closed below
            filename = filename or path.name
        elif isinstance(file, bytes):
            fh = io.BytesIO(file)
            filename = filename or "dataset.jsonl"
        else:
            fh = file
            filename = filename or Path(str(getattr(file, "name", "dataset.jsonl"))).name
        size = _size(fh)
        data: dict[str, Any] = {"name": name if name is not None else Path(filename).stem}
        for key, value in (("dataset_id", dataset_id), ("format", format), ("split_ratio", split_ratio),
                           ("base_model", base_model), ("target", target)):
            if value is not None:
                data[key] = str(value)
        if background is not None:
            data["background"] = "true" if background else "false"
        try:
            with Tracker(f"Uploading {filename}", kind="bytes", total=size, enabled=progress) as bar:
                upload = (filename, ProgressFile(fh, bar), "application/octet-stream")
                _, version = self._hub.send("POST", "/api/datasets", data=data, files={"file": upload},
                                            timeout=max(60.0, (size or 0) / 2e6))
        finally:
            if owned is not None:
                owned.close()
        if wait and version["status"] == "importing":
            version = self.wait(version["id"], progress=progress, timeout=timeout)
        return version

    def wait(self, version_id: int, *, progress: bool = False, interval: float = 0.5,
             timeout: float | None = 600) -> Version:
        """Poll an importing version until it is `ready` or `failed` (a bar over the examples parsed)."""
        poller = Poller(f"The import of version {version_id}", interval=interval, timeout=timeout)
        version = self.version(version_id)
        with Tracker("Importing", kind="count", enabled=progress) as bar:
            while version["status"] == "importing":
                p = version.get("progress") or {}
                bar.update(completed=p.get("examples") or 0, total=p.get("total") or None,
                           description=f"Importing ({p.get('stage') or 'queued'})", message="examples")
                poller.sleep()
                version = self.version(version_id)
            bar.update(completed=version.get("example_count") or 0, total=version.get("example_count") or None,
                       description=f"Import {version['status']}", message="examples")
        if version["status"] == "failed":
            raise_if_failed({"status": "failed", "error": version.get("error")}, f"The import of version {version_id}")
        return version

    def list(self) -> list[Dataset]:
        return self._hub.request("GET", "/api/datasets")

    def get(self, dataset_id: int) -> DatasetDetail:
        return self._hub.request("GET", f"/api/datasets/{dataset_id}")

    def find(self, name_or_id: str | int) -> Dataset:
        """A dataset by id or by exact name (the newest of that name)."""
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            return self.get(int(name_or_id))
        matches = [d for d in self.list() if d["name"] == name_or_id]
        if not matches:
            from hub_sdk.errors import NotFound

            raise NotFound(f"No dataset named {name_or_id!r}.", code="not_found")
        return max(matches, key=lambda d: d["id"])

    def versions(self, dataset_id: int) -> list[VersionSummary]:
        return self._hub.request("GET", f"/api/datasets/{dataset_id}/versions")

    def version(self, version_id: int) -> Version:
        return self._hub.request("GET", f"/api/datasets/versions/{version_id}")

    def validate(self, version_id: int) -> ValidationReport:
        """The version's validation report: errors (block training) and warnings, with line and example."""
        return self.version(version_id)["validation"]

    def examples(self, dataset_id: int, *, version: int | None = None, page: int = 1, page_size: int = 50,
                 **filters: Any) -> dict:
        return self._hub.request("GET", f"/api/datasets/{dataset_id}/examples",
                                 params={"version": version, "page": page, "page_size": page_size, **filters})


def _size(fh: IO[bytes]) -> int | None:
    try:
        pos = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        fh.seek(pos)
        return end - pos
    except (AttributeError, OSError):
        return None
