"""Hugging Face folder -> GGUF with llama.cpp's own converter and quantizer, and perplexity defined as llama.cpp's
`llama-perplexity` defines it, on a transformers model (so an export can be compared with its source on equal terms).

Contract:
- `QUANTIZATIONS`: the one table of GGUF types the hub offers (API, form, validation and docs read it).
- `hf_to_gguf(tc, model_dir, out_file, quantization=, report=, should_stop=) -> dict`: types the converter writes
  itself (f32, f16, bf16, q8_0) in one step; the others via an f16 intermediate and `llama-quantize`. out_file appears
  only complete (temp name beside it, renamed at the end); every temp is removed on failure or cancel. A converter
  failure (unsupported architecture, no space left) raises LlamaCppError with the tool's message and last lines.
- `hf_chunked_perplexity(model, tokenizer, text, ctx=) -> {"ppl", "chunks", "tokens"}`: chunks of `ctx` tokens, BOS
  in front of each when the tokenizer adds one, the second half of each chunk scored (llama-perplexity's rule)."""
from __future__ import annotations

import errno
import math
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

from workers.engine.llamacpp import proc
from workers.engine.llamacpp.toolchain import Cancelled, LlamaCppError, Toolchain

# name -> label, bits per weight (about), how it is made: ("convert", outtype) or ("quantize", llama-quantize type)
QUANTIZATIONS: dict[str, dict] = {
    "f32": {"label": "f32 (no loss, 4 bytes/weight)", "bits": 32, "via": ("convert", "f32")},
    "f16": {"label": "f16 (no practical loss)", "bits": 16, "via": ("convert", "f16")},
    "bf16": {"label": "bf16", "bits": 16, "via": ("convert", "bf16")},
    "q8_0": {"label": "q8_0 (8-bit, near lossless)", "bits": 8.5, "via": ("convert", "q8_0")},
    "q6_k": {"label": "q6_k (6-bit k-quant)", "bits": 6.6, "via": ("quantize", "Q6_K")},
    "q5_k_m": {"label": "q5_k_m (5-bit k-quant)", "bits": 5.7, "via": ("quantize", "Q5_K_M")},
    "q4_k_m": {"label": "q4_k_m (4-bit k-quant, for phones)", "bits": 4.9, "via": ("quantize", "Q4_K_M")},
    "q4_0": {"label": "q4_0 (4-bit, legacy)", "bits": 4.5, "via": ("quantize", "Q4_0")},
}
_TQDM = re.compile(r"(\d{1,3})%\|")
_QUANT_STEP = re.compile(r"^\[\s*(\d+)\s*/\s*(\d+)\]")


def _converter_message(tail: str) -> str:
    """The line of the converter's output that says what went wrong."""
    lines = [line for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"(Error|error|not supported|NotImplemented|No space left)", line):
            return line.strip()[:500]
    return lines[-1].strip()[:500] if lines else "the converter exited without a message"


def _no_space(tail: str) -> bool:
    return "No space left on device" in tail or f"Errno {errno.ENOSPC}" in tail


def hf_to_gguf(tc: Toolchain, model_dir: Path, out_file: Path, *, quantization: str,
               report: Callable[[str, float], None] | None = None,
               should_stop: Callable[[], bool] | None = None, threads: int | None = None) -> dict:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    report = report or (lambda phase, frac: None)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    how, outtype = QUANTIZATIONS[quantization]["via"]
    conv_tmp = out_file.with_name(f".{out_file.name}.convert.tmp")
    final_tmp = out_file.with_name(f".{out_file.name}.tmp")
    timings = {"convert_s": 0.0, "quantize_s": 0.0, "peak_rss_mb": 0.0, "llama_cpp_version": tc.version}
    try:
        def on_convert(line: str) -> None:
            m = _TQDM.search(line)
            if m:
                report("convert", min(1.0, int(m.group(1)) / 100))

        cmd = [sys.executable, str(tc.convert_script), str(model_dir), "--outfile", str(conv_tmp),
               "--outtype", outtype if how == "convert" else "f16"]
        res = proc.run(cmd, env=tc.python_env(), on_line=on_convert, should_stop=should_stop)
        if res.cancelled:
            raise Cancelled()
        timings["convert_s"], timings["peak_rss_mb"] = round(res.seconds, 2), round(res.peak_rss_mb, 1)
        if res.returncode != 0 or not conv_tmp.is_file():
            if _no_space(res.tail):
                raise LlamaCppError("No space left on the disk while writing the GGUF file.", res.tail)
            raise LlamaCppError(f"llama.cpp's converter failed: {_converter_message(res.tail)}", res.tail)
        report("convert", 1.0)
        if how == "convert":
            conv_tmp.replace(final_tmp)
        else:
            def on_quant(line: str) -> None:
                m = _QUANT_STEP.match(line)
                if m and int(m.group(2)):
                    report("quantize", int(m.group(1)) / int(m.group(2)))

            cmd = [str(tc.quantize), str(conv_tmp), str(final_tmp), outtype]
            if threads:
                cmd.append(str(threads))
            res = proc.run(cmd, on_line=on_quant, should_stop=should_stop)
            if res.cancelled:
                raise Cancelled()
            timings["quantize_s"] = round(res.seconds, 2)
            timings["peak_rss_mb"] = max(timings["peak_rss_mb"], round(res.peak_rss_mb, 1))
            if res.returncode != 0 or not final_tmp.is_file():
                if _no_space(res.tail):
                    raise LlamaCppError("No space left on the disk while quantizing.", res.tail)
                raise LlamaCppError(f"llama-quantize failed: {_converter_message(res.tail)}", res.tail)
            report("quantize", 1.0)
        final_tmp.replace(out_file)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise LlamaCppError("No space left on the disk while writing the GGUF file.") from exc
        raise
    finally:
        for tmp in (conv_tmp, final_tmp):
            tmp.unlink(missing_ok=True)
    timings["size_bytes"] = out_file.stat().st_size
    return timings


def hf_chunked_perplexity(model, tokenizer, text: str, *, ctx: int = 128) -> dict:
    import torch

    ids = list(tokenizer(text)["input_ids"])
    bos = tokenizer.bos_token_id
    probe = tokenizer("a")["input_ids"]
    add_bos = bos is not None and len(probe) > 0 and probe[0] == bos
    n_chunks = len(ids) // ctx
    if n_chunks < 2:
        raise ValueError(f"perplexity needs at least {2 * ctx} tokens; the text has {len(ids)}")
    first = ctx // 2
    nll, count = 0.0, 0
    with torch.inference_mode():
        for i in range(n_chunks):
            chunk = ids[i * ctx:(i + 1) * ctx]
            if add_bos:
                chunk = [bos] + chunk[1:]
            logits = model(input_ids=torch.tensor([chunk])).logits[0].float()
            logp = torch.log_softmax(logits[first:ctx - 1], dim=-1)
            target = torch.tensor(chunk[first + 1:ctx])
            nll -= float(logp.gather(1, target[:, None]).sum())
            count += ctx - 1 - first
    return {"ppl": math.exp(nll / count), "chunks": n_chunks, "tokens": len(ids)}


def disk_free_bytes(path: Path) -> int:
    path = Path(path)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free

