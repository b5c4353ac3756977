"""Before-launch estimates: throughput measured on this device by earlier runs.

`tokens_per_second(base_model_id)` is the median of the non-padding tokens/s that the last
succeeded local runs on that base model measured (stored in `summary["tokens_per_s"]`).
Without history it falls back to DEFAULT_TOKENS_PER_S: LoRA on SmolLM2-135M on 2 CPU cores
(bench/bench_train.py measured 169 tokens/s on a quiet machine, 34 under heavy load from other
work), scaled by parameter count for other base models.
"""
from __future__ import annotations

import statistics

DEFAULT_TOKENS_PER_S = 160.0  # LoRA, SmolLM2-135M, 2 CPU cores (bench/bench_train.py)
_REFERENCE_PARAMS = 135_000_000
_HISTORY = 10


def tokens_per_second(base_model_id: str | None) -> float:
    from apps.registry.models import BaseModel
    from apps.training.models import TrainingRun

    qs = TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, backend=TrainingRun.Backend.LOCAL)
    if base_model_id:
        qs = qs.filter(base_model_id=base_model_id)
    measured = []
    for summary in qs.order_by("-finished_at").values_list("summary", flat=True)[:_HISTORY]:
        value = (summary or {}).get("tokens_per_s")
        if isinstance(value, (int, float)) and value > 0:
            measured.append(float(value))
    if measured:
        return float(statistics.median(measured))
    params = None
    if base_model_id:
        params = BaseModel.objects.filter(pk=base_model_id).values_list("parameters", flat=True).first()
    if params:
        # smaller models run faster, roughly in proportion (capped: overheads dominate tiny models)
        return DEFAULT_TOKENS_PER_S * min(50.0, max(0.01, _REFERENCE_PARAMS / params))
    return DEFAULT_TOKENS_PER_S
