"""The devices a job trains on: what there is, how much memory it uses, CPU threads, and agreement
between the ranks of a distributed (torchrun) job. Knows nothing of Django.

Contract: `device_info()` describes the device ({"device": "cuda"|"cpu", "name", "bf16", "count", ...});
`memory_mb()` the process's RSS and the GPU's peak allocation in MiB; `setup_threads()` uses every CPU
core when there is no GPU; `agree(flag, args)` makes every rank see the same stop decision (any rank's
stop wins), else DDP waits forever."""
from __future__ import annotations

import os


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "bf16": torch.cuda.is_bf16_supported(),
                "count": torch.cuda.device_count()}
    return {"device": "cpu", "name": "cpu", "bf16": False, "threads": os.cpu_count() or 1, "count": 0}


def memory_mb() -> dict:
    import torch

    out = {}
    try:
        import psutil

        out["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    except Exception:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def setup_threads() -> None:
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def agree(flag: bool, args) -> bool:
    """Under torchrun every rank must stop at the same step (else DDP waits forever): any rank's stop wins."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([int(flag)], device=args.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
