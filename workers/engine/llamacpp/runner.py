"""llama.cpp processes the hub starts: `llama-server` for one GGUF (serving, round-trip checks, benchmarks) and
`llama-perplexity` (round-trip checks).

Contract:
- `LlamaServer(tc, model_path, ctx=, threads=, port=, parallel=, lora=, log_path=)`: `.start()` launches it on
  127.0.0.1 (a free port unless given), waits until /health answers 200 and raises LlamaCppError with the loader's
  message when the process exits first (a file that is not a GGUF, an architecture it does not know); `.stop()`
  ends it (SIGTERM, then SIGKILL); a context manager; `.alive()`.
- `complete(url, prompt, ...) -> dict`: one non-streaming POST /completion.
- `perplexity(tc, gguf_path, text, ctx=) -> {"ppl", "chunks"}`: llama-perplexity over the text."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from workers.engine.llamacpp import proc
from workers.engine.llamacpp.toolchain import LlamaCppError, Toolchain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loader_message(log: str) -> str:
    # llama.cpp's log lines start with a timestamp and a level letter: "0.00.003.941 E gguf_init_from_reader: ..."
    lines = [re.sub(r"^[\d.]+ [EWIDT] ", "", line.strip()) for line in log.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"(error|failed|unknown model architecture|invalid|not a gguf)", line, re.I):
            return re.sub(r"^\S+:\s*", "", line)[:500] if line.startswith(("llama_", "gguf_", "main:", "srv")) \
                else line[:500]
    return lines[-1][:500] if lines else "llama-server exited without a message"


class LlamaServer:
    def __init__(self, tc: Toolchain, model_path: Path, *, ctx: int = 4096, threads: int | None = None,
                 port: int | None = None, parallel: int = 4, lora: Path | None = None, log_path: Path | None = None,
                 extra_args: list[str] | None = None):
        self.tc, self.model_path, self.ctx, self.threads = tc, Path(model_path), ctx, threads
        self.port, self.parallel, self.lora, self.extra_args = port, parallel, lora, list(extra_args or [])
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.tc.server), "-m", str(self.model_path), "--host", "127.0.0.1", "--port", str(self.port),
               "-c", str(self.ctx * self.parallel), "-np", str(self.parallel), "--no-webui", "--metrics",
               *self.tc.runtime_args]
        if self.threads:
            cmd += ["-t", str(self.threads)]
        if self.lora:
            cmd += ["--lora", str(self.lora)]
        return cmd + self.extra_args

    def start(self, *, timeout: float = 120.0) -> "LlamaServer":
        if not self.model_path.is_file():
            raise LlamaCppError(f"No GGUF file at {self.model_path}.")
        self.port = self.port or free_port()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = open(self.log_path, "wb")
        self._proc = subprocess.Popen(self.command(), stdout=self._log_file, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    log = self._read_log()
                    code = self._proc.returncode
                    self.stop()
                    if code < 0 and not self.tc.no_repack:  # killed by a signal (SIGSEGV, SIGILL), not a refusal
                        self.tc.mark_no_repack(f"llama-server died (signal {-code}) loading "
                                               f"{self.model_path.name}:\n" + "\n".join(log.splitlines()[-20:]))
                        return self.start(timeout=max(5.0, deadline - time.monotonic()))
                    raise LlamaCppError(f"llama-server could not load {self.model_path.name}: {_loader_message(log)}",
                                        "\n".join(log.splitlines()[-20:]))
                try:
                    if client.get(self.url + "/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        log = self._read_log()
        self.stop()
        raise LlamaCppError(f"llama-server did not become ready within {timeout:.0f} s.",
                            "\n".join(log.splitlines()[-20:]))

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "LlamaServer":
        return self.start() if not self.alive() else self

    def __exit__(self, *exc) -> None:
        self.stop()


def complete(url: str, prompt: str | list[int], *, n_predict: int, temperature: float = 0.0,
             stop: list[str] | None = None, n_probs: int = 0, timeout: float = 120.0, **extra) -> dict:
    body = {"prompt": prompt, "n_predict": n_predict, "temperature": temperature, "stream": False,
            "cache_prompt": True, **extra}
    if temperature <= 0:
        body["top_k"] = 1
    if stop:
        body["stop"] = stop
    if n_probs:
        body["n_probs"] = n_probs
    r = httpx.post(url.rstrip("/") + "/completion", json=body, timeout=timeout)
    if r.status_code != 200:
        raise LlamaCppError(f"llama-server answered {r.status_code}: {r.text[:300]}")
    return r.json()


_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+)")


def perplexity(tc: Toolchain, gguf_path: Path, text: str, *, ctx: int = 128, threads: int | None = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(text)
        name = fh.name
    try:
        cmd = [str(tc.perplexity), "-m", str(gguf_path), "-f", name, "-c", str(ctx), "-b", str(ctx)]
        if threads:
            cmd += ["-t", str(threads)]
        res = proc.run(cmd + tc.runtime_args, tail_lines=60)
        if res.returncode < 0 and not tc.no_repack:  # died from a signal: see Toolchain.no_repack
            tc.mark_no_repack(f"llama-perplexity died (signal {-res.returncode}):\n{res.tail}")
            res = proc.run(cmd + tc.runtime_args, tail_lines=60)
    finally:
        os.unlink(name)
    m = _PPL.search(res.tail)
    if res.returncode != 0 or not m:
        raise LlamaCppError(f"llama-perplexity failed: {_loader_message(res.tail)}", res.tail)
    chunks = re.findall(r"\[(\d+)\]\d", res.tail)
    return {"ppl": float(m.group(1)), "chunks": int(chunks[-1]) if chunks else None}
