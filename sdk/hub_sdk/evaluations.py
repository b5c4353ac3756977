"""`hub.evaluations`: reward-based evaluations of a model version (optionally against a second version, usually
its parent): the version answers a task set (a dataset version's examples, or tasks given) on the hub's gpu
worker, and each answer is scored by weighted reward components (GET /api/rewards/components lists them and the
presets). Followed with a progress bar like every job."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_sdk.jobs import raise_if_failed
from hub_sdk.progress import Poller, Tracker
from hub_sdk.types import RewardEvaluation

if TYPE_CHECKING:
    from hub_sdk.client import Hub

FINISHED = ("succeeded", "failed", "cancelled")


class Evaluations:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def create(self, model_version_id: int, *, compare_to_version_id: int | None = None,
               dataset_version_id: int | None = None, tasks: list | None = None, split: str | None = None,
               preset: str | None = None, weights: dict[str, float] | None = None, max_tasks: int | None = None,
               max_new_tokens: int | None = None, name: str | None = None, wait: bool = True,
               progress: bool = False, timeout: float | None = None) -> RewardEvaluation:
        """Start an evaluation (tasks from `dataset_version_id`'s validation split, or `tasks`; weights from
        `weights`, else `preset`: autonomous-agent, code, arithmetic, tool-use). With `wait` (default), returns it
        finished, with its `summary` (per-side totals, component and category means, the paired comparison)."""
        body: dict[str, Any] = {"model_version_id": model_version_id}
        for key, value in (("compare_to_version_id", compare_to_version_id), ("dataset_version_id", dataset_version_id),
                           ("tasks", tasks), ("split", split), ("preset", preset), ("weights", weights),
                           ("max_tasks", max_tasks), ("max_new_tokens", max_new_tokens), ("name", name)):
            if value is not None:
                body[key] = value
        ev = self._hub.request("POST", "/api/evaluations", json=body)
        return self.wait(ev["id"], progress=progress, timeout=timeout) if wait else ev

    def list(self, *, model_version_id: int | None = None) -> list[RewardEvaluation]:
        return self._hub.request("GET", "/api/evaluations", params={"model_version_id": model_version_id})

    def get(self, evaluation_id: int) -> RewardEvaluation:
        return self._hub.request("GET", f"/api/evaluations/{evaluation_id}")

    def tasks(self, evaluation_id: int, *, page: int = 1) -> list[dict]:
        """The tasks with each side's answer and every component's score, error and detail (50 a page)."""
        return self._hub.request("GET", f"/api/evaluations/{evaluation_id}/tasks", params={"page": page})

    def cancel(self, evaluation_id: int) -> RewardEvaluation:
        return self._hub.request("POST", f"/api/evaluations/{evaluation_id}/cancel")

    def components(self) -> dict:
        """The reward components, their categories and the presets."""
        return self._hub.request("GET", "/api/rewards/components")

    def wait(self, evaluation_id: int, *, progress: bool = False, interval: float = 1.0,
             timeout: float | None = None) -> RewardEvaluation:
        poller = Poller(f"Evaluation {evaluation_id}", interval=interval, timeout=timeout)
        ev = self.get(evaluation_id)
        with Tracker(f"Evaluation {evaluation_id}", kind="count", enabled=progress) as bar:
            while True:
                job = ev.get("job") or {}
                p = ev.get("progress") or {}  # {done, total}: answers written / answers to write
                phase = ev["status"] if ev["status"] in FINISHED else (job.get("phase") or ev["status"])
                bar.update(completed=p.get("done") or 0, total=p.get("total") or None,
                           description=f"Evaluation {phase}", message="answers")
                if ev["status"] in FINISHED:
                    break
                poller.sleep()
                ev = self.get(evaluation_id)
        raise_if_failed(ev, f"Evaluation {evaluation_id}")
        return ev
