"""Does the grown model compute what its source computes? The validation loss of both (the Trainer's own
measure: the mean of per-batch token losses, weighted by batch size) and the largest logit difference, in fp32.
Knows nothing of Django.

Contract: `compare(small, grown, items, batch_size=, pad_id=)` returns {"parent_loss", "grown_loss", "abs_diff",
"rel_diff", "max_abs_logit_diff", "examples", "tokens"} over tokenized `items` ({"input_ids", "labels"});
`REL_TOLERANCE` is the largest relative loss difference a grow run accepts (`within(result)` says whether it
holds)."""
from __future__ import annotations

from contextlib import contextmanager

from workers.engine.data import PadCollator

# |grown - parent| / parent on the validation split, in fp32. The expansion is exact in real arithmetic: what is
# left is float rounding, about 1e-7 relative on the tiny models of the tests (a naive random init is off by
# far more than 1 %).
REL_TOLERANCE = 1e-4


@contextmanager
def _exact_matmul():
    """fp32 without TF32 on CUDA, whatever the process set."""
    import torch

    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def compare(small, grown, items: list[dict], *, batch_size: int, pad_id: int) -> dict:
    import torch

    collate = PadCollator(pad_id)
    device = next(grown.parameters()).device
    total_small = total_grown = 0.0
    n = tokens = 0
    max_diff = 0.0
    with torch.no_grad(), _exact_matmul():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk).items()}
            a, b = small(**batch), grown(**batch)
            total_small += float(a.loss) * len(chunk)
            total_grown += float(b.loss) * len(chunk)
            mask = batch["attention_mask"].bool()
            max_diff = max(max_diff, float((a.logits - b.logits).abs()[mask].max()))
            n += len(chunk)
            tokens += int(mask.sum())
    parent, grown_loss = total_small / max(n, 1), total_grown / max(n, 1)
    return {"parent_loss": parent, "grown_loss": grown_loss, "abs_diff": abs(grown_loss - parent),
            "rel_diff": abs(grown_loss - parent) / max(abs(parent), 1e-12), "max_abs_logit_diff": max_diff,
            "examples": n, "tokens": tokens}


def within(result: dict) -> bool:
    return result["rel_diff"] <= REL_TOLERANCE
