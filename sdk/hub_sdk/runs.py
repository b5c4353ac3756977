"""`hub.runs`: create (validated by the hub: a `ValidationError` names each bad field), estimate, list, get,
metrics, cancel, and `watch`: follow a run to its end with a live bar of its phase, step, loss, ETA and elapsed
time. `watch` polls the run's job (light) and only the metric points it has not seen yet."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from hub_sdk.jobs import FINISHED, raise_if_failed
from hub_sdk.progress import Poller, Tracker, format_seconds
from hub_sdk.types import Run, RunDetail

if TYPE_CHECKING:
    from hub_sdk.client import Hub


class Runs:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    @staticmethod
    def _body(*, dataset_version_id, dataset_id, base_model, method, backend, name, hyperparameters,
              parent_version_id, allow_truncation, stages, **top_level) -> dict[str, Any]:
        body: dict[str, Any] = {"method": method, "backend": backend}
        for key, value in (("dataset_version_id", dataset_version_id), ("dataset_id", dataset_id),
                           ("base_model", base_model), ("name", name), ("parent_version_id", parent_version_id),
                           ("stages", stages)):
            if value is not None:
                body[key] = value
        if allow_truncation:
            body["allow_truncation"] = True
        hp = {**(hyperparameters or {}), **{k: v for k, v in top_level.items() if v is not None}}
        if hp:
            body["hyperparameters"] = hp
        return body

    def create(self, *, dataset_version_id: int | None = None, dataset_id: int | None = None,
               base_model: str | None = None, method: str = "lora", backend: str = "local", name: str | None = None,
               hyperparameters: dict[str, Any] | None = None, parent_version_id: int | None = None,
               allow_truncation: bool = False, stages: list[dict] | None = None, **top_level: Any) -> Run:
        """Queue a training run. Hyperparameters go in `hyperparameters` or as keywords (`learning_rate=1e-4,
        epochs=3, max_steps=20, batch_size=4, lora_r=8`, ...: `hub runs create --help` lists the common ones,
        `python manage.py hyperparameters` all). A bad value raises `ValidationError` (422) naming the field."""
        body = self._body(dataset_version_id=dataset_version_id, dataset_id=dataset_id, base_model=base_model,
                          method=method, backend=backend, name=name, hyperparameters=hyperparameters,
                          parent_version_id=parent_version_id, allow_truncation=allow_truncation, stages=stages,
                          **top_level)
        return self._hub.request("POST", "/api/runs", json=body)

    def estimate(self, **kwargs: Any) -> dict:
        """The same arguments as `create`: tokens, steps, time (and cost for remote runs), without creating it."""
        defaults = dict(dataset_version_id=None, dataset_id=None, base_model=None, method="lora", backend="local",
                        name=None, hyperparameters=None, parent_version_id=None, allow_truncation=False, stages=None)
        return self._hub.request("POST", "/api/runs/estimate", json=self._body(**{**defaults, **kwargs}))

    def list(self, *, status: str | None = None, limit: int = 100) -> list[Run]:
        """Newest first; `status` one or several comma-separated (queued,running)."""
        return self._hub.request("GET", "/api/runs", params={"status": status, "limit": limit})

    def get(self, run_id: int) -> RunDetail:
        return self._hub.request("GET", f"/api/runs/{run_id}")

    def metrics(self, run_id: int, *, kind: str | None = None, after_step: int | None = None) -> list[dict]:
        return self._hub.request("GET", f"/api/runs/{run_id}/metrics", params={"kind": kind, "after_step": after_step})

    def cancel(self, run_id: int) -> Run:
        """Ask the run to stop (a queued run is cancelled at once; a running one stops at its next step)."""
        return self._hub.request("POST", f"/api/runs/{run_id}/cancel")

    def checkpoints(self, run_id: int) -> list[dict]:
        return self._hub.request("GET", f"/api/runs/{run_id}/checkpoints")

    def promote(self, run_id: int, *, checkpoint_id: int | None = None) -> dict:
        return self._hub.request("POST", f"/api/runs/{run_id}/promote", json={"checkpoint_id": checkpoint_id})

    def watch(self, run_id: int, *, progress: bool = False, interval: float = 1.0, timeout: float | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None, raise_on_failure: bool = False) -> RunDetail:
        """Follow the run until it succeeds, fails or is cancelled, and return it (with its metrics).
        `on_update(state)` gets {status, phase, step, total_steps, loss, eta_s, elapsed_s, new_points} at each
        poll; `progress` shows a live bar (stderr). `raise_on_failure`: a failed or cancelled run raises
        `JobFailed` instead of being returned."""
        poller = Poller(f"Run {run_id}", interval=interval, timeout=timeout)
        run = self._hub.request("GET", f"/api/runs/{run_id}")
        job_id = run.get("job_id")
        last_step = max((p["step"] for p in run.get("metrics") or []), default=0)
        train = [p for p in run.get("metrics") or [] if p.get("kind") == "train"]
        latest = train[-1] if train else {}
        state = _state(run, latest, [])
        with Tracker(f"Run {run_id}", kind="steps", total=run.get("total_steps") or None, enabled=progress) as bar:
            while True:
                _show(bar, state)
                if on_update is not None:
                    on_update(state)
                if state["status"] in FINISHED:
                    break
                poller.sleep()
                points = self.metrics(run_id, after_step=last_step)
                if points:
                    last_step = max(last_step, *(p["step"] for p in points))
                    train = [p for p in points if p.get("kind") == "train"]
                    latest = train[-1] if train else latest
                if job_id:
                    job = self._hub.request("GET", f"/api/jobs/{job_id}")
                    current = {"status": job["status"], "phase": job.get("phase") or "",
                               "current_step": (job.get("progress") or {}).get("current"),
                               "total_steps": (job.get("progress") or {}).get("total"),
                               "elapsed_s": job.get("elapsed_s")}
                else:
                    current = self._hub.request("GET", f"/api/runs/{run_id}")
                state = _state(current, latest, points, previous=state)
            run = self.get(run_id)
            _show(bar, _state(run, latest, [], previous=state))
        if raise_on_failure:
            raise_if_failed(run, f"Run {run_id}")
        return run


def _state(run: dict, latest: dict, points: list, previous: dict | None = None) -> dict[str, Any]:
    previous = previous or {}
    summary = run.get("summary") or {}
    step = run.get("current_step")
    total = run.get("total_steps")
    finished = run.get("status") in FINISHED
    eta = 0 if run.get("status") == "succeeded" else (None if finished else latest.get("eta_s", summary.get("eta_s")))
    return {
        "status": run.get("status"), "phase": run.get("phase") or run.get("status") or "",
        "step": int(step if step is not None else previous.get("step") or 0),
        "total_steps": int(total or previous.get("total_steps") or 0) or None,
        "loss": latest.get("loss", summary.get("loss", summary.get("final_loss"))),
        "eta_s": eta,
        "elapsed_s": run.get("duration_s") or run.get("elapsed_s") or previous.get("elapsed_s"),
        "new_points": points,
    }


def _show(bar: Tracker, state: dict[str, Any]) -> None:
    loss = state.get("loss")
    label = state["status"] if state["status"] in FINISHED else (state.get("phase") or state["status"])
    bar.update(completed=state["step"], total=state.get("total_steps"), description=label,
               loss=f"{loss:.4f}" if isinstance(loss, (int, float)) else "–",
               eta=format_seconds(state.get("eta_s")), elapsed=format_seconds(state.get("elapsed_s")))
