"""Grow a trained from-scratch model into a larger size, keeping what it computes, then train on (method
"grow"). Knows nothing of Django.

The package, by concern: `plan` (the target's dims, checked against the source: the rules and their reasons),
`expand` (the function-preserving expansion of the weights: width Net2Net / bert2BERT style, depth by copies
whose output projections are zero, symmetry-breaking noise that cancels across copies), `check` (parent and
grown model compared on the validation split: loss and logits, the tolerance), `prepare` (the run's pre-step,
called by the training loop like scratch_prepare: `<output_dir>/grow-base/` with the report `grow.json`).
Import from the package: the names below are its public surface.
"""
from workers.engine.grow.check import REL_TOLERANCE, compare
from workers.engine.grow.expand import break_symmetry, grow_model, grown_config
from workers.engine.grow.plan import (
    DIM_KEYS,
    NEXT,
    GrowError,
    GrowPlan,
    describe,
    grow_plan,
    parameters,
    parse_target,
    source_dims,
)
from workers.engine.grow.prepare import GROW_DIR, grow_prepare, grow_report

__all__ = [
    "DIM_KEYS", "GROW_DIR", "NEXT", "REL_TOLERANCE", "GrowError", "GrowPlan", "break_symmetry", "compare",
    "describe", "grow_model", "grow_plan", "grow_prepare", "grow_report", "grown_config", "parameters",
    "parse_target", "source_dims",
]
