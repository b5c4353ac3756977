"""What a round-trip check compares: greedy answers to the version's prompts and perplexity on its text, measured on a
transformers model (the source version, or an adapter / merged export loaded back) or on a GGUF file (llama-server
and llama-perplexity from workers.engine.llamacpp).

Contract:
- A prompt is {"messages": [...OpenAI chat messages...], "tools": [...] | None}; it is laid out with the hub's chat
  format (workers.engine.chat_format.render_chat) and tokenized with the source's tokenizer, so both sides see the
  same token ids (the GGUF side gets the ids, not text). Prompts past the context keep their end.
- `prompt_ids(tokenizer, prompts, limit)` -> list of id lists; `perplexity_text(tokenizer, texts, ctx, max_chunks)`
  -> (text, ctx): the texts joined (repeated when too short) so that both perplexity tools see >= 2 chunks.
- `transformers_probe(model, tokenizer, ids, text, ctx=, max_new_tokens=, report=, should_stop=)` and
  `gguf_probe(tc, gguf_path, tokenizer, ids, text, ...)` both return
  {"answers": [str], "answer_tokens": [[int]], "perplexity": {"ppl", "chunks"}}; answer_tokens are the answers
  re-tokenized with the source's tokenizer (one yardstick for both sides).
- A GGUF that llama-server cannot load raises ExportError(code="export_unloadable") with the loader's message.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from workers.engine.export import ExportError, check_stop
from workers.engine.export.write import end_of_turn_ids

MAX_NEW_TOKENS = 48
PPL_CTX = 128
PPL_MAX_CHUNKS = 16

Report = Callable[[int, int], None] | None


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


@contextmanager
def _long_texts_ok(tokenizer):
    """The perplexity text is longer than the model's context on purpose (it is scored in chunks): no "sequence
    length is longer than the maximum" warning while it is tokenized; the tokenizer is left as it was."""
    before = getattr(tokenizer, "model_max_length", None)
    tokenizer.model_max_length = max(before or 0, 10**12)
    try:
        yield
    finally:
        tokenizer.model_max_length = before


def prompt_ids(tokenizer, prompts: list[dict], *, limit: int) -> list[list[int]]:
    from workers.engine.chat_format import render_chat

    out = []
    for p in prompts:
        try:
            text = render_chat(tokenizer, p["messages"], p.get("tools") or None, add_generation_prompt=True)
        except Exception:  # a template that rejects the tools: the prompt without them
            text = render_chat(tokenizer, p["messages"], None, add_generation_prompt=True)
        ids = _ids(tokenizer, text)
        out.append(ids[-limit:] if limit > 0 else ids)
    return out


def perplexity_text(tokenizer, texts: list[str], *, ctx: int = PPL_CTX, max_chunks: int = PPL_MAX_CHUNKS,
                    model_ctx: int | None = None) -> tuple[str, int]:
    """Plain text (no special tokens: both tools tokenize it the same way) of at least 2 and about `max_chunks`
    chunks of `ctx` tokens. `ctx` shrinks to the model's context when that is smaller."""
    if model_ctx:
        ctx = max(16, min(ctx, model_ctx))
    texts = [t for t in texts if t and t.strip()] or ["The quick brown fox jumps over the lazy dog."]
    parts, n = [], 0
    while n < 2 * ctx + 8 or (n < ctx * max_chunks and len(parts) < len(texts)):
        t = texts[len(parts) % len(texts)]
        parts.append(t)
        n += len(_ids(tokenizer, t + "\n\n"))
        if len(parts) > 10_000:
            break
    return "\n\n".join(parts), ctx


def _answer_tokens(tokenizer, answers: list[str]) -> list[list[int]]:
    return [_ids(tokenizer, a) for a in answers]


def transformers_probe(model, tokenizer, ids: list[list[int]], text: str, *, ctx: int = PPL_CTX,
                       max_new_tokens: int = MAX_NEW_TOKENS, report: Report = None,
                       should_stop: Callable[[], bool] | None = None) -> dict:
    import torch

    from workers.engine.llamacpp.convert import hf_chunked_perplexity

    eos = end_of_turn_ids(tokenizer, model.config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    answers = []
    with torch.inference_mode():
        for i, prompt in enumerate(ids):
            check_stop(should_stop)
            out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos or None,
                                 pad_token_id=pad, repetition_penalty=1.0)
            new = out[0, len(prompt):].tolist()
            if any(t in eos for t in new):
                new = new[:next(j for j, t in enumerate(new) if t in eos)]
            answers.append(tokenizer.decode(new, skip_special_tokens=True))
            if report:
                report(i + 1, len(ids) + 1)
        check_stop(should_stop)
        with _long_texts_ok(tokenizer):
            ppl = hf_chunked_perplexity(model, tokenizer, text, ctx=ctx)
    if report:
        report(len(ids) + 1, len(ids) + 1)
    return {"answers": answers, "answer_tokens": _answer_tokens(tokenizer, answers),
            "perplexity": {"ppl": ppl["ppl"], "chunks": ppl["chunks"]}}


def gguf_probe(tc, gguf_path: Path, tokenizer, ids: list[list[int]], text: str, *, ctx: int = PPL_CTX,
               max_new_tokens: int = MAX_NEW_TOKENS, threads: int | None = None, report: Report = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
    from workers.engine.llamacpp import runner
    from workers.engine.llamacpp.toolchain import LlamaCppError

    longest = max((len(p) for p in ids), default=0) + max_new_tokens + 8
    answers = []
    server = runner.LlamaServer(tc, gguf_path, ctx=max(256, longest), threads=threads, parallel=1)
    try:
        server.start()
    except LlamaCppError as exc:  # the file does not load: the loader's message
        raise ExportError(exc.message, code="export_unloadable", detail=exc.log_tail) from exc
    try:
        for i, prompt in enumerate(ids):
            check_stop(should_stop)
            out = runner.complete(server.url, prompt, n_predict=max_new_tokens, temperature=0.0,
                                  repeat_penalty=1.0)
            answers.append(out.get("content") or "")
            if report:
                report(i + 1, len(ids) + 1)
    except LlamaCppError as exc:
        raise ExportError(f"llama-server failed while answering the check prompts: {exc.message}",
                          code="check_failed", detail=exc.log_tail) from exc
    finally:
        server.stop()
    check_stop(should_stop)
    try:
        ppl = runner.perplexity(tc, gguf_path, text, ctx=ctx, threads=threads)
    except LlamaCppError as exc:
        raise ExportError(exc.message, code="perplexity_failed", detail=exc.log_tail) from exc
    if report:
        report(len(ids) + 1, len(ids) + 1)
    return {"answers": answers, "answer_tokens": _answer_tokens(tokenizer, answers),
            "perplexity": {"ppl": ppl["ppl"], "chunks": ppl["chunks"]}}
