"""Chat examples -> token ids + labels with loss only on assistant tokens. Knows nothing of Django.

Most chat templates (SmolLM2's ChatML included) have no ``{% generation %}`` markers, so the
assistant spans are computed from rendered prefixes: for assistant turn *i*, the text of
``messages[:i]`` rendered with the generation prompt ends where the answer starts, and the text
of ``messages[:i+1]`` ends where it ends. Tokens whose character offsets fall in such a span get
labels; everything else is -100. A turn with ``weight: 0`` is context only.

Rendering (tools, tool calls, tool results) is chat_format.render_chat, the function the inference
server uses too: a model trained here on tool-call data is served with the same layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from workers.engine.chat_format import normalize_for, normalize_messages, render_chat, tool_call_text

__all__ = ["normalize_messages", "tool_call_text", "assistant_spans", "encode_example", "tokenize_examples"]

IGNORE = -100


def _render(tokenizer, messages, tools, *, add_generation_prompt: bool) -> str:
    return render_chat(tokenizer, messages, tools, add_generation_prompt=add_generation_prompt, normalized=True)


def assistant_spans(tokenizer, messages: list[dict], tools=None) -> tuple[str, list[tuple[int, int]]]:
    """Render the conversation and return (text, [(start, end) char spans to train on])."""
    norm = normalize_for(tokenizer, messages)
    full = _render(tokenizer, norm, tools, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, (orig, m) in enumerate(zip(messages, norm)):
        if m["role"] != "assistant":
            continue
        weight = orig.get("weight", 1)
        if weight is not None and float(weight) == 0:
            continue
        before = _render(tokenizer, norm[:i], tools, add_generation_prompt=True) if i else ""
        through = _render(tokenizer, norm[: i + 1], tools, add_generation_prompt=False)
        if full.startswith(through) and through.startswith(before) and len(through) > len(before):
            spans.append((len(before), len(through)))
            cursor = len(through)
        else:  # a template that rewrites earlier turns: find the answer text itself
            at = full.find(m["content"], cursor) if m["content"] else -1
            if at >= 0:
                end = at + len(m["content"])
                eos = getattr(tokenizer, "eos_token", None)
                if eos and full.startswith(eos, end):
                    end += len(eos)
                spans.append((at, end))
                cursor = end
    return full, spans


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_example(tokenizer, messages: list[dict], tools=None, *, max_len: int) -> Encoded:
    text, spans = assistant_spans(tokenizer, messages, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for j, (s, e) in enumerate(enc["offset_mapping"]):
        if e <= s:
            continue
        for a, b in spans:
            if s < b and e > a:  # the token overlaps an assistant span
                labels[j] = ids[j]
                break
    truncated = len(ids) > max_len
    return Encoded(ids[:max_len], labels[:max_len], truncated)


def example_texts(examples: Iterable[dict]) -> list[str]:
    """Plain texts of all turns (for training a tokenizer from scratch)."""
    out = []
    for ex in examples:
        for m in normalize_messages(ex.get("messages", []), None):
            if m["content"]:
                out.append(m["content"])
    return out


class TokenizedDataset:
    """A list-backed torch-style dataset of {"input_ids", "labels"} that the Trainer accepts."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tokenize_examples(tokenizer, examples: list[dict], *, max_len: int) -> tuple[TokenizedDataset, dict]:
    """Encode examples; drop those with no trainable token. Returns (dataset, stats)."""
    items, truncated, dropped, tokens, trained = [], 0, 0, 0, 0
    for ex in examples:
        enc = encode_example(tokenizer, ex["messages"], ex.get("tools"), max_len=max_len)
        truncated += int(enc.truncated)
        n_trained = sum(1 for x in enc.labels if x != IGNORE)
        if n_trained == 0:
            dropped += 1
            continue
        tokens += len(enc.input_ids)
        trained += n_trained
        items.append({"input_ids": enc.input_ids, "labels": enc.labels})
    stats = {"examples": len(items), "truncated": truncated, "dropped": dropped, "tokens": tokens,
             "trained_tokens": trained}
    return TokenizedDataset(items), stats


class PadCollator:
    """Dynamic padding: pad each batch only to its own longest sequence (optionally to a multiple)."""

    def __init__(self, pad_id: int, multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        longest = max(len(b["input_ids"]) for b in batch)
        if self.multiple_of:
            longest = -(-longest // self.multiple_of) * self.multiple_of
        ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
