"""Preference pairs -> unpaired, labelled token ids for TRL's KTOTrainer. Knows nothing of Django.

KTO learns from single answers marked desirable or not. Each preference pair (workers/engine/dpo/data.py)
gives two rows: its prompt with the chosen answer (label True) and its prompt with the rejected answer
(label False), encoded exactly as DPO encodes the pair (`encode_pair`: the hub's chat layout, the
completion being what follows the prompt ids both sequences share).

Row order: KTOTrainer estimates its KL term from mismatched (prompt, completion) rows, the completion of
the previous row in the same batch, so it trains with a sequential sampler. The rows are laid out as
chosen of pair i followed by rejected of pair i+2 (mod n), so neighbours have different prompts whenever
there are at least three pairs, and every batch holds desirable and undesirable rows.

Contract: `pair_rows(encoded)` -> the two labelled rows of one encoded pair; `tokenize_unpaired(tokenizer,
pairs, max_len=)` -> (a `datasets.Dataset` with prompt_ids / completion_ids / label / length columns, stats
{examples (rows), truncated, dropped (pairs), tokens, trained_tokens}). Pairs with nothing to prefer, or whose
prompt alone fills max_len, are dropped; longer rows are truncated at the end by TRL's collator.
"""
from __future__ import annotations

from workers.engine.dpo.data import encode_pair


def pair_rows(encoded: dict) -> list[dict]:
    """[desirable row, undesirable row] of a pair encoded by `encode_pair`."""
    return [{"prompt_ids": encoded["prompt_ids"], "completion_ids": encoded["chosen_ids"], "label": True},
            {"prompt_ids": encoded["prompt_ids"], "completion_ids": encoded["rejected_ids"], "label": False}]


def _interleave(rows: list[list[dict]]) -> list[dict]:
    n = len(rows)
    shift = 2 if n >= 3 else 0
    out: list[dict] = []
    for i in range(n):
        out += [rows[i][0], rows[(i + shift) % n][1]]
    return out


def tokenize_unpaired(tokenizer, pairs: list[dict], *, max_len: int):
    """Encode pairs as labelled rows; drop pairs with nothing to prefer. Returns (datasets.Dataset, stats)."""
    from datasets import Dataset

    encoded: list[list[dict]] = []
    dropped = 0
    for pair in pairs:
        enc = encode_pair(tokenizer, pair)
        if enc is None or len(enc["prompt_ids"]) >= max_len:
            dropped += 1
            continue
        encoded.append(pair_rows(enc))
    cols: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "label": [], "length": []}
    truncated = tokens = trained = 0
    for row in _interleave(encoded):
        p, c = len(row["prompt_ids"]), len(row["completion_ids"])
        truncated += int(p + c > max_len)
        tokens += min(p + c, max_len)
        trained += min(c, max_len - p)
        for key in ("prompt_ids", "completion_ids", "label"):
            cols[key].append(row[key])
        cols["length"].append(min(p + c, max_len))
    stats = {"examples": len(cols["label"]), "truncated": truncated, "dropped": dropped, "tokens": tokens,
             "trained_tokens": trained}
    return Dataset.from_dict(cols), stats
