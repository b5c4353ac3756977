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


def test_a_stored_signature_round_trips_and_one_made_another_way_is_refused():
    import numpy as np

    from apps.datasets.validation import dedup

    sigs = dedup.signatures(["the quick brown fox jumps over the lazy dog", "roll for initiative"])
    packed = dedup.pack(sigs)
    assert [len(p) for p in packed] == [dedup.SIGNATURE_BYTES] * 2
    assert all(np.array_equal(dedup.unpack(p), s) for p, s in zip(packed, sigs))
    assert np.array_equal(dedup.unpack(memoryview(packed[0])), sigs[0])  # as the database driver may hand it
    other_kind = bytes([dedup.SIGNATURE_VERSION + 1]) + packed[0][1:]
    assert dedup.unpack(other_kind) is None and dedup.unpack(packed[0][:-4]) is None and dedup.unpack(None) is None
