"""A fake Together.ai fine-tuning API for tests, served over real HTTP on loopback by uvicorn.

Mirrors the endpoints and field names the hub uses (docs.together.ai/reference, together-python's
resources/finetune.py and types/finetune.py):

    POST /v1/files/upload            multipart: purpose, file_name, file_type, file
                                     -> {"id": "file-...", "object": "file", "filename", "bytes", "purpose", ...}
    POST /v1/fine-tunes              JSON: training_file, model, n_epochs, learning_rate, batch_size, suffix,
                                     training_type {"type": "Lora"|"Full", lora_r, ...}
                                     -> job {"id": "ft-...", "status": "pending", "model_output_name", ...}
    GET  /v1/fine-tunes/{id}         the job; each call moves it one stage along `script`
    GET  /v1/fine-tunes/{id}/events  {"object": "list", "data": [{"object": "fine-tune-event", ...}]}
    POST /v1/fine-tunes/{id}/cancel  -> the job, status "cancel_requested" ("cancelled" at the next GET)

Errors use Together's shape: {"error": {"message": ..., "type": ...}}. Knobs on FakeTogether:
    api_key        the only Bearer token accepted (401 otherwise)
    script         statuses a job walks through, one per GET (default: pending, queued, running x3,
                   uploading, completed); end it with "error" or "user_error" to fail the job
    error_message  the message of the JOB_ERROR event when the script ends in an error
    faults         list of [method, path regex, action, times]: action is an HTTP status code to answer with,
                   or "hang" (sleep hang_s before answering); times is how often (None: always)
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_SCRIPT = ["pending", "queued", "running", "running", "running", "uploading", "completed"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _error(status: int, message: str, type_: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_}}, status_code=status)


class FakeTogether:
    def __init__(self, *, api_key: str = "test-together-key"):
        self.api_key = api_key
        self.script: list[str] = list(DEFAULT_SCRIPT)
        self.error_message = "Training failed: CUDA out of memory on the remote worker"
        self.faults: list[list] = []
        self.hang_s = 2.0
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.base_url = ""
        self._lock = threading.Lock()

    # -- helpers for tests -------------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, action: int | str, times: int | None = None) -> None:
        self.faults.append([method.upper(), path_regex, action, times])

    def calls(self, method: str, path_regex: str) -> int:
        return sum(1 for m, p in self.requests if m == method.upper() and re.fullmatch(path_regex, p))

    # -- app -------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/files/upload", self.upload, methods=["POST"]),
            Route("/v1/fine-tunes", self.create, methods=["POST"]),
            Route("/v1/fine-tunes/{job_id}", self.retrieve, methods=["GET"]),
            Route("/v1/fine-tunes/{job_id}/events", self.list_events, methods=["GET"]),
            Route("/v1/fine-tunes/{job_id}/cancel", self.cancel, methods=["POST"]),
        ])

    async def _gate(self, request: Request) -> JSONResponse | None:
        """Log the request, check auth, apply a configured fault."""
        method, path = request.method, request.url.path
        self.requests.append((method, path))
        fault = None
        with self._lock:
            for entry in self.faults:
                m, regex, action, times = entry
                if m == method and re.fullmatch(regex, path) and (times is None or times > 0):
                    if times is not None:
                        entry[3] = times - 1
                    fault = action
                    break
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
        elif isinstance(fault, int):
            return _error(fault, f"Simulated failure {fault}", "server_error")
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            return _error(401, "Invalid API key provided. You can find your API key at api.together.ai/settings.",
                          "authentication_error")
        return None

    async def upload(self, request: Request) -> JSONResponse:
        if (denied := await self._gate(request)) is not None:
            return denied
        form = await request.form()
        if form.get("purpose") != "fine-tune":
            return _error(400, f"Invalid purpose {form.get('purpose')!r}")
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read") or not form.get("file_name"):
            return _error(400, "Fields 'file' and 'file_name' are required")
        raw = await upload.read()
        text = raw.decode("utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except ValueError:
                return _error(400, f"Line {number} is not valid JSON")
            if isinstance(row, dict) and "non_preferred_output" in row:  # preference format (DPO)
                if not (isinstance(row.get("input"), dict) and isinstance(row["input"].get("messages"), list)
                        and all(isinstance(row.get(k), list) and len(row[k]) == 1
                                and row[k][0].get("role") == "assistant"
                                for k in ("preferred_output", "non_preferred_output"))):
                    return _error(400, f"Line {number}: expected a preference row {{input, preferred_output, "
                                       f"non_preferred_output}}")
                continue
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and m.get("role") in ("system", "user", "assistant", "tool")
                    and "content" in m for m in messages):
                return _error(400, f"Line {number}: expected {{\"messages\": [{{\"role\", \"content\"}}, ...]}}")
        file_id = f"file-{uuid.uuid4()}"
        self.files[file_id] = {"id": file_id, "object": "file", "created_at": int(time.time()),
                               "filename": form.get("file_name"), "bytes": len(raw), "purpose": "fine-tune",
                               "Processed": True, "FileType": form.get("file_type") or "jsonl",
                               "LineCount": len(lines), "content": text,
                               "preference": bool(lines) and '"non_preferred_output"' in lines[0]}
        return JSONResponse({k: v for k, v in self.files[file_id].items() if k not in ("content", "preference")})

    async def create(self, request: Request) -> JSONResponse:
        if (denied := await self._gate(request)) is not None:
            return denied
        body = await request.json()
        if body.get("training_file") not in self.files:
            return _error(400, f"Training file {body.get('training_file')!r} not found")
        if not body.get("model"):
            return _error(400, "model is required")
        if not isinstance(body.get("n_epochs"), int) or body["n_epochs"] < 1:
            return _error(400, "n_epochs must be a positive integer")
        if not isinstance(body.get("learning_rate"), (int, float)) or body["learning_rate"] <= 0:
            return _error(400, "learning_rate must be positive")
        method = (body.get("training_method") or {"method": "sft"}).get("method")
        if (method == "dpo") != self.files[body["training_file"]]["preference"]:
            return _error(400, f"training_method {method!r} does not match the training file's format")
        training_type = body.get("training_type") or {"type": "Full"}
        if training_type.get("type") not in ("Lora", "Full"):
            return _error(400, "Unknown training type")
        if training_type["type"] == "Lora" and not isinstance(training_type.get("lora_r"), int):
            return _error(400, "lora_r is required for LoRA training")
        batch = body.get("batch_size", "max")
        batch = 8 if batch == "max" else batch
        lines = self.files[body["training_file"]]["LineCount"]
        total_steps = max(1, -(-lines // batch)) * body["n_epochs"]
        job_id = f"ft-{uuid.uuid4()}"
        base = body["model"].split("/")[-1]
        suffix = f"-{body['suffix']}" if body.get("suffix") else ""
        job = {
            "id": job_id, "object": "finetune", "status": "pending", "model": body["model"],
            "training_file": body["training_file"], "model_output_name": f"hub-test/{base}{suffix}-{job_id[3:11]}",
            "n_epochs": body["n_epochs"], "learning_rate": body["learning_rate"], "batch_size": batch,
            "suffix": body.get("suffix"), "training_type": training_type, "created_at": _now(),
            "updated_at": _now(), "total_steps": total_steps, "steps_completed": 0, "epochs_completed": 0,
            "queue_depth": 2, "token_count": lines * 50, "param_count": 8_000_000_000, "total_price": 0,
            "request": body,
        }
        self.jobs[job_id] = job
        self.events[job_id] = []
        self._event(job_id, "JOB_PENDING", "Fine tune request created")
        job["_stage"] = 0
        return JSONResponse(self._public(job))

    def _public(self, job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "request"}

    def _event(self, job_id: str, type_: str, message: str, level: str = "Info") -> None:
        events = self.events[job_id]
        events.append({"object": "fine-tune-event", "created_at": _now(), "level": level, "message": message,
                       "type": type_, "hash": f"h{len(events)}-{job_id[3:11]}"})

    def _advance(self, job: dict) -> None:
        """Move a job one stage along the script and emit the events Together would."""
        job_id = job["id"]
        if job["status"] == "cancel_requested":
            job["status"] = "cancelled"
            self._event(job_id, "JOB_STOPPED", "Job was cancelled by the user")
            return
        if job["status"] in ("completed", "error", "user_error", "cancelled"):
            return
        job["_stage"] = min(job["_stage"] + 1, len(self.script) - 1)
        new = self.script[job["_stage"]]
        previous, job["status"] = job["status"], new
        job["updated_at"] = _now()
        if new == "queued":
            job["queue_depth"] = 1
            self._event(job_id, "JOB_PENDING", "Job is queued (position 1)")
        elif new == "running":
            job["queue_depth"] = 0
            if previous != "running":
                self._event(job_id, "JOB_START", "Job started")
                self._event(job_id, "TRAINING_START", f"Training started for model {job['model']}")
            per_stage = max(1, job["total_steps"] // 3)
            job["steps_completed"] = min(job["total_steps"], job["steps_completed"] + per_stage)
            step = job["steps_completed"]
            loss = round(2.5 / (1 + step), 4)
            self._event(job_id, "CHECKPOINT_SAVE", f"Step {step}/{job['total_steps']}: train loss {loss}")
        elif new in ("compressing", "uploading"):
            job["steps_completed"] = job["total_steps"]
            job["epochs_completed"] = job["n_epochs"]
            self._event(job_id, "EPOCH_COMPLETE", f"Epoch completed, at step {job['total_steps']}")
            self._event(job_id, "MODEL_UPLOADING", f"Uploading model to {job['model_output_name']}")
        elif new == "completed":
            job["steps_completed"] = job["total_steps"]
            job["epochs_completed"] = job["n_epochs"]
            job["total_price"] = 123
            self._event(job_id, "JOB_COMPLETE", f"Job finished. New model: {job['model_output_name']}")
        elif new == "error":
            self._event(job_id, "JOB_ERROR", self.error_message, level="Error")
        elif new == "user_error":
            self._event(job_id, "JOB_USER_ERROR", self.error_message, level="Error")

    async def retrieve(self, request: Request) -> JSONResponse:
        if (denied := await self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "Fine-tune job not found", "not_found")
        with self._lock:
            self._advance(job)
        return JSONResponse(self._public(job))

    async def list_events(self, request: Request) -> JSONResponse:
        if (denied := await self._gate(request)) is not None:
            return denied
        job_id = request.path_params["job_id"]
        if job_id not in self.jobs:
            return _error(404, "Fine-tune job not found", "not_found")
        return JSONResponse({"object": "list", "data": list(self.events[job_id])})

    async def cancel(self, request: Request) -> JSONResponse:
        if (denied := await self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "Fine-tune job not found", "not_found")
        with self._lock:
            if job["status"] in ("completed", "error", "user_error", "cancelled"):
                return _error(400, f"Job is already {job['status']} and cannot be cancelled")
            job["status"] = "cancel_requested"
            self._event(job["id"], "CANCEL_REQUESTED", "Cancel requested by the user")
        return JSONResponse(self._public(job))


@contextmanager
def serve(fake: FakeTogether | None = None):
    """Serve a FakeTogether on 127.0.0.1 (a free port) in a background thread; yields it with base_url set."""
    fake = fake or FakeTogether()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(fake.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1,
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-together")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Together server did not start")
        time.sleep(0.01)
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (for 'unreachable' tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
