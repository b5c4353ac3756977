"""Resource probes of this process and its host: CPU, memory and GPUs. Imports no Django (workers call it
from a reporting thread; tests call it directly).

Contract:
- `Meter().sample()` -> {cpu_percent, rss_mb, host_cpu_percent, host_memory_percent, gpus}. CPU values are
  the average since the meter's previous sample (the first sample measures over FIRST_INTERVAL_S); process
  CPU is a share of one core (200 = two busy cores), host CPU a share of all cores.
- psutil when it is installed, else Linux's /proc (`use_psutil=False` forces /proc); a value neither can
  read is None, never an exception.
- GPUs: `nvidia-smi` when it is on PATH, else torch.cuda when torch is already imported and sees a device
  (memory from `mem_get_info`; utilisation when torch can read it), else []. One dict per device:
  {index, name, util_percent, memory_used_mb, memory_total_mb, memory_percent}.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time

log = logging.getLogger(__name__)

FIRST_INTERVAL_S = 0.25
NVIDIA_SMI_TIMEOUT_S = 5.0

try:  # pragma: no branch - either is fine
    import psutil
except ImportError:  # pragma: no cover - psutil is optional
    psutil = None


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def proc_host_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    text = _read("/proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    fields = [float(v) for v in text.split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


def proc_memory_percent() -> float | None:
    """Used share of memory from /proc/meminfo: (MemTotal - MemAvailable) / MemTotal."""
    text = _read("/proc/meminfo")
    if not text:
        return None
    info = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[name] = float(parts[0])
    total, available = info.get("MemTotal"), info.get("MemAvailable")
    if not total or available is None:
        return None
    return round((total - available) / total * 100, 1)


def proc_process_rss_mb(pid: int | None = None) -> float | None:
    text = _read(f"/proc/{pid or 'self'}/statm")
    if not text:
        return None
    return round(int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def proc_process_cpu_s(pid: int | None = None) -> float | None:
    """User + system CPU seconds of the process so far, from /proc/<pid>/stat."""
    text = _read(f"/proc/{pid or 'self'}/stat")
    if not text:
        return None
    after = text.rsplit(")", 1)[-1].split()  # the command name may hold spaces
    return (float(after[11]) + float(after[12])) / os.sysconf("SC_CLK_TCK")


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
    --format=csv,noheader,nounits` as dicts; a value nvidia-smi cannot read ([N/A]) is None."""
    def num(v: str) -> float | None:
        try:
            return float(v)
        except ValueError:
            return None

    out = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        index, name, util, used, total = parts[0], ", ".join(parts[1:-3]), *parts[-3:]
        used_mb, total_mb = num(used), num(total)
        out.append({"index": int(num(index) or 0), "name": name, "util_percent": num(util),
                    "memory_used_mb": used_mb, "memory_total_mb": total_mb,
                    "memory_percent": round(used_mb / total_mb * 100, 1) if used_mb is not None and total_mb else None})
    return out


def gpus() -> list[dict]:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run([smi, "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                 timeout=NVIDIA_SMI_TIMEOUT_S)
            if res.returncode == 0:
                return parse_nvidia_smi(res.stdout)
            log.debug("nvidia-smi exited with %s: %s", res.returncode, res.stderr[-300:])
        except (OSError, subprocess.SubprocessError):
            log.debug("nvidia-smi failed", exc_info=True)
    return torch_gpus()


def torch_gpus() -> list[dict]:
    torch = sys.modules.get("torch")  # never imported here: a worker without torch stays without it
    try:
        if torch is None or not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            try:
                util = float(torch.cuda.utilization(i))
            except Exception:  # needs pynvml
                util = None
            used_mb, total_mb = (total - free) / 2**20, total / 2**20
            out.append({"index": i, "name": torch.cuda.get_device_name(i), "util_percent": util,
                        "memory_used_mb": round(used_mb, 1), "memory_total_mb": round(total_mb, 1),
                        "memory_percent": round(used_mb / total_mb * 100, 1) if total_mb else None})
        return out
    except Exception:
        log.debug("torch.cuda could not be read", exc_info=True)
        return []


class Meter:
    """CPU shares between successive samples of one process (this one unless `pid`)."""

    def __init__(self, *, use_psutil: bool | None = None, pid: int | None = None, gpu: bool = True):
        self.psutil = psutil if (use_psutil is None or use_psutil) else None
        if use_psutil and psutil is None:
            raise RuntimeError("psutil is not installed")
        self.pid = pid
        self.gpu = gpu
        self._host = None  # (busy, total) from /proc/stat
        self._proc = None  # (cpu seconds, monotonic time)
        self._ps_proc = self.psutil.Process(pid) if self.psutil else None
        self._primed = False

    def _prime(self) -> None:
        if self.psutil:
            self.psutil.cpu_percent(interval=None)
            self._ps_proc.cpu_percent(interval=None)
        else:
            self._host = proc_host_cpu_times()
            cpu = proc_process_cpu_s(self.pid)
            self._proc = (cpu, time.monotonic()) if cpu is not None else None
        self._primed = True

    def _cpu(self) -> tuple[float | None, float | None]:
        if self.psutil:
            return round(self._ps_proc.cpu_percent(interval=None), 1), round(self.psutil.cpu_percent(interval=None), 1)
        host = None
        now_host = proc_host_cpu_times()
        if now_host and self._host and now_host[1] > self._host[1]:
            host = round((now_host[0] - self._host[0]) / (now_host[1] - self._host[1]) * 100, 1)
        self._host = now_host
        proc = None
        cpu, t = proc_process_cpu_s(self.pid), time.monotonic()
        if cpu is not None and self._proc and t > self._proc[1]:
            proc = round((cpu - self._proc[0]) / (t - self._proc[1]) * 100, 1)
        self._proc = (cpu, t) if cpu is not None else None
        return proc, host

    def sample(self) -> dict:
        if not self._primed:
            self._prime()
            time.sleep(FIRST_INTERVAL_S)
        try:
            proc_cpu, host_cpu = self._cpu()
        except Exception:
            log.debug("CPU could not be read", exc_info=True)
            proc_cpu = host_cpu = None
        if self.psutil:
            try:
                rss = round(self._ps_proc.memory_info().rss / 2**20, 1)
                mem = round(self.psutil.virtual_memory().percent, 1)
            except Exception:
                rss = mem = None
        else:
            rss, mem = proc_process_rss_mb(self.pid), proc_memory_percent()
        return {"cpu_percent": proc_cpu, "rss_mb": rss, "host_cpu_percent": host_cpu, "host_memory_percent": mem,
                "gpus": gpus() if self.gpu else []}
