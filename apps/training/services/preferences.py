"""Preference pairs of a dataset version, for DPO and KTO runs: what the engine trains on and what
run_create checks.

A preference row (apps/datasets/formats/rows.py: `input`, `preferred_output`, `non_preferred_output`) is
stored as an example whose messages are the input followed by the preferred answer, with
`meta.kind == "preference"` and the rejected answer in `meta.non_preferred_output`.

Contract: `version_preference_pairs(version)` returns (train, validation) pairs in the engine's shape
({"messages", "tools", "rejected"}, workers/engine/dpo/data.py); `preference_problem(version)` is the
message run_create shows on the dataset field when the version does not hold only preference pairs (None
when it does); `preference_token_stats(version, tokenizer_path=, max_len=)` the train split's token counts
for the estimate, tokenized with the run's tokenizer the way the engine tokenizes them. Reads only."""
from __future__ import annotations

from django.db.models import Q

_PAIR = Q(meta__kind="preference") & Q(meta__has_key="non_preferred_output")
_REQUIRED = "`input`, `preferred_output` and `non_preferred_output`"


def _rejected(meta: dict) -> list[dict]:
    return [{"role": "assistant", "content": m.get("content") or ""}
            for m in (meta or {}).get("non_preferred_output") or [] if isinstance(m, dict)]


def _message(m: dict) -> dict:
    """A stored message as the engine reads it (the shape of apps.datasets.selectors' training examples)."""
    out = {"role": m["role"], "content": m.get("content") or ""}
    out.update({k: m[k] for k in ("weight", "tool_calls", "tool_call_id", "name") if m.get(k) is not None})
    return out


def _pairs(version, split: str) -> list[dict]:
    qs = version.examples.filter(_PAIR, split=split).order_by("index").only("messages", "tools", "meta", "index")
    return [{"messages": [_message(m) for m in e.messages], "tools": e.tools or None,
             "rejected": _rejected(e.meta)} for e in qs.iterator(chunk_size=2000)]


def version_preference_pairs(version) -> tuple[list[dict], list[dict]]:
    """(train, validation) preference pairs of a dataset version, in order."""
    return _pairs(version, "train"), _pairs(version, "validation")


def preference_problem(version, *, method: str = "dpo") -> str | None:
    """Why a version cannot be trained with DPO or KTO (every example must be a preference pair), or None."""
    total = version.examples.count()
    if total == 0:
        return None  # "no training examples" is reported by the estimate
    others = version.examples.exclude(_PAIR)
    missing = others.count()
    if not missing:
        return None
    first = others.order_by("index").only("source_file", "source_line", "index").first()
    where = (f"line {first.source_line}" + (f" of {first.source_file}" if first.source_file else "")
             if first.source_line else f"example {first.index + 1}")
    if missing == total:
        return (f"{method.upper()} trains on preference pairs, and this dataset version holds none ({total} "
                f"examples without a rejected answer, first at {where}): import rows with {_REQUIRED}.")
    return (f"{method.upper()} trains on preference pairs, and {missing} of {total} examples of this version are "
            f"not pairs (first at {where}): every row needs {_REQUIRED}.")


def preference_token_stats(version, *, tokenizer_path: str, max_len: int) -> dict:
    """{examples, too_long, longest, tokens} of the train split's pairs: tokens count the chosen and the
    rejected sequence (each capped at max_len), as the trainer processes both."""
    from apps.training.services.estimates import _tokenizer
    from workers.engine.dpo import pair_lengths

    train, _ = version_preference_pairs(version)
    lengths = [n for n in pair_lengths(_tokenizer(tokenizer_path), train) if n is not None]
    return {"examples": len(lengths), "too_long": sum(1 for c, r in lengths if max(c, r) > max_len),
            "longest": max((max(c, r) for c, r in lengths), default=0),
            "tokens": sum(min(c, max_len) + min(r, max_len) for c, r in lengths), "source": "tokenized"}
