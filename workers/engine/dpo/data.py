"""Preference pairs -> token ids for TRL's DPOTrainer, rendered the way the hub renders every chat.
Knows nothing of Django.

A pair is a chat example with a rejected answer: ``{"messages": prompt + chosen answer, "rejected":
[assistant messages], "tools": ...}``. The chosen answer is the trailing run of assistant turns of
``messages`` (what the datasets app stores for a preference row: its input messages followed by its
preferred output); the prompt is everything before it.

Rendering is chat_format.render_chat, as in supervised training and serving: the prompt with the
generation prompt, and prompt + chosen / prompt + rejected without it. The completion tokens are what
follows the longest token prefix the prompt shares with both full sequences (TRL's own rule), so the
chosen and the rejected sequence start from the same prompt ids.

Contract: `split_pair(pair)` -> (prompt, chosen, rejected); `encode_pair(tokenizer, pair)` -> {"prompt_ids",
"chosen_ids", "rejected_ids"} or None (no completion to prefer, or both answers the same);
`tokenize_pairs(tokenizer, pairs, max_len=)` -> (a `datasets.Dataset` with those columns and a "length"
column for length-grouped batches, stats {examples, truncated, dropped, tokens, trained_tokens}).
Pairs whose prompt alone fills max_len are dropped (nothing of the answers would be left); longer pairs
are truncated at the end by TRL's collator and counted in `truncated`.
"""
from __future__ import annotations

from workers.engine.chat_format import render_chat


def split_pair(pair: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen, rejected) messages of a pair."""
    messages = list(pair.get("messages") or [])
    cut = len(messages)
    while cut > 0 and messages[cut - 1].get("role") == "assistant":
        cut -= 1
    rejected = [m for m in (pair.get("rejected") or []) if isinstance(m, dict)]
    return messages[:cut], messages[cut:], rejected


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_pair(tokenizer, pair: dict) -> dict | None:
    prompt, chosen, rejected = split_pair(pair)
    if not chosen or not rejected:
        return None
    tools = pair.get("tools")
    prompt_text = render_chat(tokenizer, prompt, tools, add_generation_prompt=True) if prompt else ""
    chosen_text = render_chat(tokenizer, prompt + chosen, tools, add_generation_prompt=False)
    rejected_text = render_chat(tokenizer, prompt + rejected, tools, add_generation_prompt=False)
    if chosen_text == rejected_text:
        return None
    prompt_ids, chosen_ids, rejected_ids = (_ids(tokenizer, t) for t in (prompt_text, chosen_text, rejected_text))
    cut = min(_common_prefix(prompt_ids, chosen_ids), _common_prefix(prompt_ids, rejected_ids))
    out = {"prompt_ids": prompt_ids[:cut], "chosen_ids": chosen_ids[cut:], "rejected_ids": rejected_ids[cut:]}
    if not out["chosen_ids"] or not out["rejected_ids"]:
        return None
    return out


def tokenize_pairs(tokenizer, pairs: list[dict], *, max_len: int):
    """Encode pairs; drop those with nothing to prefer. Returns (datasets.Dataset, stats)."""
    from datasets import Dataset

    cols: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": [], "length": []}
    truncated = dropped = tokens = trained = 0
    for pair in pairs:
        enc = encode_pair(tokenizer, pair)
        if enc is None or len(enc["prompt_ids"]) >= max_len:
            dropped += 1
            continue
        p = len(enc["prompt_ids"])
        c, r = len(enc["chosen_ids"]), len(enc["rejected_ids"])
        truncated += int(p + max(c, r) > max_len)
        tokens += min(p + c, max_len) + min(p + r, max_len)
        trained += min(c, max_len - p) + min(r, max_len - p)
        for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
            cols[key].append(enc[key])
        cols["length"].append(min(p + max(c, r), max_len))
    stats = {"examples": len(cols["length"]), "truncated": truncated, "dropped": dropped, "tokens": tokens,
             "trained_tokens": trained}
    return Dataset.from_dict(cols), stats


def pair_lengths(tokenizer, pairs: list[dict]) -> list[tuple[int, int] | None]:
    """(prompt + chosen, prompt + rejected) token counts of each pair (None: nothing to prefer), for the
    estimate before launch."""
    out: list[tuple[int, int] | None] = []
    for pair in pairs:
        enc = encode_pair(tokenizer, pair)
        if enc is None:
            out.append(None)
            continue
        p = len(enc["prompt_ids"])
        out.append((p + len(enc["chosen_ids"]), p + len(enc["rejected_ids"])))
    return out
