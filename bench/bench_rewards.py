"""Reward scoring speed (workers/engine/rewards): `score_many` on a batch of answers, as GRPO calls it each step.

Two batches of 8: the `code` preset (a sandboxed test run, ruff, lizard and a parse per answer) and the `arithmetic`
preset (answer match and length: no subprocess). Prints the median of --rounds timed calls after one warm-up.

`.venv/bin/python bench/bench_rewards.py [--batch 8] [--rounds 5]`"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from workers.engine import rewards  # noqa: E402

CODE = "```python\ndef add(a, b):\n    return a + b\n```"
CODE_TASK = {"prompt": "Write add(a, b).", "tests": "def test_add():\n    assert add(1, 2) == 3\n"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cases = [("code", [CODE] * args.batch, [CODE_TASK] * args.batch),
             ("arithmetic", ["6 + 6 = 12\n#### 12"] * args.batch, [{"prompt": "6+6?", "answer": "12"}] * args.batch)]
    print(f"cpus: {os.cpu_count()}  batch: {args.batch}  rounds: {args.rounds}")
    for preset, completions, tasks in cases:
        weights = rewards.PRESETS[preset]
        rewards.score_many(completions, tasks, weights)  # warm-up
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            out = rewards.score_many(completions, tasks, weights)
            times.append(time.perf_counter() - t0)
        mean_total = sum(o["total"] for o in out) / len(out)
        print(f"{preset:>10}: median {statistics.median(times) * 1000:7.1f} ms per batch "
              f"({statistics.median(times) * 1000 / args.batch:6.1f} ms per answer), mean total {mean_total:.3f}")


if __name__ == "__main__":
    main()
