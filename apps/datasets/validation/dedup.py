"""Exact duplicates (content hash) and near duplicates (MinHash + LSH banding, numpy-vectorised).

Shingles are word 3-grams of the lower-cased user/assistant text, hashed with crc32. A batch of
examples is processed at once: one (shingles x permutations) matrix, reduced per example with
`np.minimum.reduceat`. Candidates sharing an LSH band are confirmed by their estimated Jaccard
similarity (>= threshold). State kept per example: its signature (64 x uint32) — no text.
"""
from __future__ import annotations

import re
import zlib

import numpy as np

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
THRESHOLD = 0.8
_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_TOKEN_RE = re.compile(r"\w+")


def _perms(seed: int = 7):
    rng = np.random.RandomState(seed)
    a = rng.randint(1, 1 << 31, size=NUM_PERM, dtype=np.int64).astype(np.uint64)
    b = rng.randint(0, 1 << 31, size=NUM_PERM, dtype=np.int64).astype(np.uint64)
    return a, b


_A, _B = _perms()


def example_text(ex: dict) -> str:
    return " ".join(m.get("content") or "" for m in ex["messages"] if m["role"] in ("user", "assistant"))


def shingle_hashes(text: str) -> list[int]:
    words = _TOKEN_RE.findall(text.lower())
    if len(words) < 3:
        return [zlib.crc32(" ".join(words).encode())]
    # Python's tuple hash (per-process seed): signatures are only compared within one run.
    return list({hash(t) & 0xFFFFFFFF for t in zip(words, words[1:], words[2:])})


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures, shape (len(texts), NUM_PERM), uint32."""
    all_h: list[int] = []
    starts = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        starts[i] = len(all_h)
        all_h.extend(shingle_hashes(t))
    if not texts:
        return np.empty((0, NUM_PERM), dtype=np.uint32)
    h = np.asarray(all_h, dtype=np.uint64)[:, None]
    # (a*x + b) mod p, truncated to 32 bits; x < 2^32 and a < 2^31, so a*x fits in 63 bits.
    ph = ((h * _A + _B) % _PRIME) & _MASK32
    return np.minimum.reduceat(ph, starts, axis=0).astype(np.uint32)


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
