"""`hub.reviews`: review queues (tasks) on a dataset version: list, get, start one, its stats, finish it into a
new dataset version."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_sdk.types import ReviewTask

if TYPE_CHECKING:
    from hub_sdk.client import Hub


class Reviews:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def list(self) -> list[ReviewTask]:
        """The review tasks you can see (owner, lead, assignee; an admin all)."""
        return self._hub.request("GET", "/api/reviews")

    def get(self, task_id: int) -> ReviewTask:
        return self._hub.request("GET", f"/api/reviews/{task_id}")

    def start(self, dataset_version_id: int, *, name: str, assignees: list[str], overlap: int = 1,
              instructions: str = "", labels: list[str] | None = None, rating: bool = False, lead: str | None = None,
              filter: dict[str, Any] | None = None, lease_seconds: int | None = None) -> ReviewTask:
        """Open a review queue over the version's examples for `assignees` (each item reviewed by `overlap`)."""
        body: dict[str, Any] = {"dataset_version_id": dataset_version_id, "name": name, "assignees": assignees,
                                "overlap": overlap, "instructions": instructions, "labels": labels or [],
                                "rating": rating}
        for key, value in (("lead", lead), ("filter", filter), ("lease_seconds", lease_seconds)):
            if value is not None:
                body[key] = value
        return self._hub.request("POST", "/api/reviews", json=body)

    def stats(self, task_id: int) -> dict:
        return self._hub.request("GET", f"/api/reviews/{task_id}/stats")

    def finish(self, task_id: int) -> dict:
        """Close the task and build the reviewed dataset version (202 while its job builds it)."""
        return self._hub.request("POST", f"/api/reviews/{task_id}/finish")
