"""Exact duplicates (content hash) and near duplicates (MinHash + LSH banding, numpy-vectorised).

Shingles are word 3-grams of the lower-cased user/assistant text, hashed with crc32. A batch of
examples is processed at once: one (shingles x permutations) matrix, reduced per example with
`np.minimum.reduceat`. Candidates sharing an LSH band are confirmed by their estimated Jaccard
similarity (>= threshold). State kept per example: its signature (32 x uint32) — no text.
"""
from __future__ import annotations

import re

import numpy as np

NUM_PERM = 32
BANDS = 8
ROWS = NUM_PERM // BANDS
THRESHOLD = 0.8
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_TOKEN_RE = re.compile(r"\w+")


def _perms(seed: int = 7):
    # Multiply-shift hashing: h_i(x) = ((a_i * x + b_i) mod 2^64) >> 32 with odd a_i (no slow modulo).
    rng = np.random.RandomState(seed)
    a = (rng.randint(0, 1 << 62, size=NUM_PERM, dtype=np.int64).astype(np.uint64) << np.uint64(1)) | np.uint64(1)
    b = rng.randint(0, 1 << 62, size=NUM_PERM, dtype=np.int64).astype(np.uint64)
    return a, b


_A, _B = _perms()


def example_text(ex: dict) -> str:
    return " ".join(m.get("content") or "" for m in ex["messages"] if m["role"] in ("user", "assistant"))


_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PAD = ("", "", "")


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures, shape (len(texts), NUM_PERM), uint32.

    Word 3-gram shingles are formed in numpy from per-word hashes (Python's str hash, seeded per
    process: signatures are only compared within one run)."""
    if not texts:
        return np.empty((0, NUM_PERM), dtype=np.uint32)
    word_h: list[int] = []
    starts = np.empty(len(texts), dtype=np.int64)
    findall = _TOKEN_RE.findall
    for i, t in enumerate(texts):
        starts[i] = len(word_h)
        words = findall(t.lower())
        if len(words) < 3:
            words = (words + list(_PAD))[:3]
        word_h.extend(map(hash, words))
    w = np.array(word_h, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        sh = w[:-2] * _C1 + w[1:-1] * _C2 + w[2:]
        ph = ((sh[:, None] * _A + _B) >> _SHIFT).astype(np.uint32)
    # shingles that straddle two examples are neutralised before the per-example minimum
    ends = starts[1:]
    ph[ends - 1] = 0xFFFFFFFF
    ph[ends - 2] = 0xFFFFFFFF
    return np.minimum.reduceat(ph, starts, axis=0)


class NearDuplicateIndex:
    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self.buckets = [dict() for _ in range(BANDS)]
        self.sigs = np.empty((0, NUM_PERM), dtype=np.uint32)
        self.count = 0

    def add_batch(self, sigs: np.ndarray) -> list[tuple[int, int, float] | None]:
        """Add signatures; return, per new item, (its index, index of an earlier near duplicate, similarity)
        or None."""
        if self.count + len(sigs) > len(self.sigs):
            grown = np.empty((max(2 * len(self.sigs), self.count + len(sigs), 1024), NUM_PERM), dtype=np.uint32)
            grown[: self.count] = self.sigs[: self.count]
            self.sigs = grown
        base = self.count
        self.sigs[base: base + len(sigs)] = sigs
        band_keys = np.ascontiguousarray(sigs).view(np.uint8).reshape(len(sigs), BANDS, ROWS * 4)
        out = []
        for j in range(len(sigs)):
            idx = base + j
            row = band_keys[j]
            cands = set()
            for b in range(BANDS):
                key = row[b].tobytes()
                bucket = self.buckets[b]
                first = bucket.get(key)
                if first is None:
                    bucket[key] = idx
                else:
                    cands.add(first)
            best = None
            if cands:
                sig = self.sigs[idx]
                for c in cands:
                    sim = float(np.count_nonzero(self.sigs[c] == sig)) / NUM_PERM
                    if sim >= self.threshold and (best is None or sim > best[2]):
                        best = (idx, c, sim)
            out.append(best)
        self.count += len(sigs)
        return out
