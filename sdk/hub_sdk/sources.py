"""`hub.sources`: repositories as sources of training data (a path the hub can read, a git URL, or an uploaded
archive), their analyses, and generations of scenarios into a dataset version — each a job on the hub's worker,
followed with a progress bar."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hub_sdk.jobs import raise_if_failed
from hub_sdk.progress import ProgressFile, Tracker
from hub_sdk.types import Analysis, Generation, Source

if TYPE_CHECKING:
    from hub_sdk.client import Hub


def is_url(location: str) -> bool:
    return "://" in location or location.startswith("git@")


class Sources:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def list(self) -> list[Source]:
        return self._hub.request("GET", "/api/sources")

    def get(self, source_id: int) -> Source:
        return self._hub.request("GET", f"/api/sources/{source_id}")

    def create(self, location: str, *, name: str | None = None, analyse: bool = True, **extra: Any) -> Source:
        """Register a repository: a git URL (cloned by the hub), or a folder *on the hub's machine* (one
        repository, or a core and its plugins). Starts its analysis unless `analyse` is false."""
        kind = "url" if is_url(location) else "path"
        if kind == "path" and os.path.exists(location):
            location = os.path.abspath(location)
        body = {"kind": kind, "location": location, "analyse": analyse, **extra}
        if name:
            body["name"] = name
        return self._hub.request("POST", "/api/sources", json=body)

    def upload_archive(self, file: str | Path | IO[bytes], *, name: str | None = None, rules: str | None = None,
                       analyse: bool = True, progress: bool = False) -> Source:
        """Register a zip or tar(.gz) of a working tree, uploaded with a progress bar."""
        path = Path(file) if isinstance(file, (str, Path)) else None
        fh = open(path, "rb") if path else file  # noqa: SIM115 - closed below
        filename = path.name if path else Path(str(getattr(file, "name", "source.zip"))).name
        data = {"analyse": "true" if analyse else "false"}
        if name:
            data["name"] = name
        if rules:
            data["rules"] = rules
        try:
            size = os.fstat(fh.fileno()).st_size if hasattr(fh, "fileno") else None
            with Tracker(f"Uploading {filename}", kind="bytes", total=size, enabled=progress) as bar:
                return self._hub.request("POST", "/api/sources/archive", data=data,
                                         files={"file": (filename, ProgressFile(fh, bar), "application/octet-stream")},
                                         timeout=600)
        finally:
            if path:
                fh.close()

    def find(self, location: str) -> Source | None:
        wanted = os.path.abspath(location) if not is_url(location) and os.path.exists(location) else location
        matches = [s for s in self.list() if s["location"] in (location, wanted)]
        return max(matches, key=lambda s: s["id"]) if matches else None

    def analysis(self, analysis_id: int) -> Analysis:
        return self._hub.request("GET", f"/api/sources/analyses/{analysis_id}")

    def analyse(self, source_id: int, *, wait: bool = True, progress: bool = False,
                timeout: float | None = None) -> Analysis:
        analysis = self._hub.request("POST", f"/api/sources/{source_id}/analyses")
        return self.wait_analysis(analysis["id"], progress=progress, timeout=timeout) if wait else analysis

    def wait_analysis(self, analysis_id: int, *, progress: bool = False, timeout: float | None = None) -> Analysis:
        analysis = self.analysis(analysis_id)
        if analysis.get("job"):
            self._hub.jobs.wait(analysis["job"]["id"], progress=progress, description="Analysis",
                                timeout=timeout, raise_on_failure=False)
            analysis = self.analysis(analysis_id)
        raise_if_failed(analysis, f"The analysis {analysis_id}")
        return analysis

    def estimate(self, source_id: int, **options: Any) -> dict:
        return self._hub.request("POST", f"/api/sources/{source_id}/estimate", json=_options(options))

    # -- generations ---------------------------------------------------------------------------------------------
    def generate(self, repository: str | int, *, wait: bool = True, progress: bool = False,
                 timeout: float | None = None, **options: Any) -> Generation:
        """Generate scenarios from `repository` (a source id, or a path / git URL: registered and analysed first
        when the hub does not know it yet) into a new version of the source's dataset."""
        if isinstance(repository, int) or str(repository).isdigit():
            source = self.get(int(repository))
        else:
            source = self.find(str(repository)) or self.create(str(repository))
            if source.get("analysis_id"):
                self.wait_analysis(source["analysis_id"], progress=progress, timeout=timeout)
        gen = self._hub.request("POST", f"/api/sources/{source['id']}/generations", json=_options(options))
        return self.wait_generation(gen["id"], progress=progress, timeout=timeout) if wait else gen

    def generation(self, generation_id: int) -> Generation:
        return self._hub.request("GET", f"/api/generations/{generation_id}")

    def generations(self, *, source_id: int | None = None) -> list[Generation]:
        return self._hub.request("GET", "/api/generations", params={"source": source_id})

    def cancel_generation(self, generation_id: int) -> Generation:
        return self._hub.request("POST", f"/api/generations/{generation_id}/cancel")

    def wait_generation(self, generation_id: int, *, progress: bool = False,
                        timeout: float | None = None) -> Generation:
        gen = self.generation(generation_id)
        if gen.get("job"):
            self._hub.jobs.wait(gen["job"]["id"], progress=progress, description="Generation", timeout=timeout,
                                raise_on_failure=False)
            gen = self.generation(generation_id)
        raise_if_failed(gen, f"Generation {generation_id}")
        return gen


def _options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}
