"""Near-duplicate signatures are the same in every process (the same data gets the same report)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("from apps.datasets.validation.dedup import signatures; "
        "print(signatures(['the quick brown fox jumps over', 'roll for initiative, the goblin attacks']).tobytes().hex())")


def _signatures_in_a_process(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_signatures_do_not_depend_on_the_process_hash_seed():
    first, second = _signatures_in_a_process("1"), _signatures_in_a_process("2")
    assert first and first == second
