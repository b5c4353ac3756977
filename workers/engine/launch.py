"""Multi-GPU runs on the same code path: torchrun (or `accelerate launch`) starts N copies of
`python -m workers.engine.launch JOB.json`; each calls :func:`workers.engine.sft.run_training`, the
transformers Trainer sees WORLD_SIZE/LOCAL_RANK and trains with DistributedDataParallel. Rank 0
writes progress to `events.jsonl`; the worker process that launched it tails that file and forwards
it to the database and websocket, and asks for a stop by creating `STOP`. Knows nothing of Django.

By hand:  torchrun --nproc_per_node=4 -m workers.engine.launch /path/run-12/job.json
      or  accelerate launch --multi_gpu --num_processes=4 -m workers.engine.launch /path/run-12/job.json
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def job_to_json(job, path: Path) -> None:
    data = dataclasses.asdict(job)
    data["output_dir"] = str(job.output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def job_from_json(path: Path):
    from workers.engine.sft import Job, Stage

    data = json.loads(Path(path).read_text())
    data["stages"] = [Stage(**s) for s in data["stages"]]
    data["output_dir"] = Path(data["output_dir"])
    return Job(**data)


def main(argv: list[str]) -> int:
    from workers.engine.sft import TrainingOOM, run_training

    job = job_from_json(Path(argv[0]))
    out = Path(job.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    events = out / "events.jsonl"
    stop = out / "STOP"

    def emit(kind: str, **payload) -> None:
        if rank == 0:
            with events.open("a") as fh:
                fh.write(json.dumps({"type": kind, **payload}) + "\n")

    try:
        result = run_training(
            job,
            report=lambda step, metrics: emit("report", step=step, metrics=metrics),
            should_stop=stop.exists,
            on_checkpoint=lambda step, path, metrics: emit("checkpoint", step=step, path=path, metrics=metrics),
        )
    except TrainingOOM as exc:
        emit("error", oom=True, message=str(exc))
        return 3
    except Exception as exc:  # noqa: BLE001
        emit("error", oom=False, message=f"{type(exc).__name__}: {exc}")
        return 1
    emit("result", result=result)
    return 0


def run_distributed(job, *, gpus: int, report, should_stop, on_checkpoint, launcher: list[str] | None = None,
                    poll_s: float = 0.5) -> dict:
    """Launch `gpus` processes with torchrun and forward their progress. Returns rank 0's result."""
    from workers.engine.sft import TrainingOOM

    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if job.method == "scratch":  # build tokenizer + initial model once, before the ranks start
        from workers.engine.sft import scratch_prepare

        job.base_model_path = scratch_prepare(job)
    elif job.method == "grow":  # grow (and check) once, before the ranks start
        from workers.engine.grow import grow_prepare

        job.base_model_path = grow_prepare(job, report=report)
    job_path = out / "job.json"
    job_to_json(job, job_path)
    events = out / "events.jsonl"
    events.unlink(missing_ok=True)
    (out / "STOP").unlink(missing_ok=True)
    cmd = (launcher or [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
           ) + ["-m", "workers.engine.launch", str(job_path)]
    proc = subprocess.Popen(cmd, cwd=str(Path(__file__).resolve().parents[2]))
    offset = 0
    result, error = None, None

    def drain():
        nonlocal offset, result, error
        if not events.exists():
            return
        with events.open() as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith("\n"):
                    break
                offset += len(line.encode())
                ev = json.loads(line)
                if ev["type"] == "report":
                    report(ev["step"], ev["metrics"])
                elif ev["type"] == "checkpoint":
                    on_checkpoint(ev["step"], ev["path"], ev["metrics"])
                elif ev["type"] == "result":
                    result = ev["result"]
                elif ev["type"] == "error":
                    error = ev

    while proc.poll() is None:
        drain()
        if should_stop():
            (out / "STOP").touch()
        time.sleep(poll_s)
    drain()
    if error:
        raise (TrainingOOM if error.get("oom") else RuntimeError)(error["message"])
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"distributed training exited with code {proc.returncode}")
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
