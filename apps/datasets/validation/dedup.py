"""Exact duplicates (content hash) and near duplicates (MinHash + LSH banding, numpy-vectorised).

Shingles are word 3-grams of the lower-cased user/assistant text, hashed with crc32. A batch of
examples is processed at once: one (shingles x permutations) matrix, reduced per example with
`np.minimum.reduceat`. Candidates sharing an LSH band are confirmed by their estimated Jaccard
similarity (>= threshold). State kept per example: its signature (32 x uint32) — no text.

A signature depends on the example's text alone, so it is stored with the example (`pack`: a version byte,
then the 32 values) and a carried-over example's stored one is used instead of hashing its text again
(`unpack` refuses one made another way).
"""
from __future__ import annotations

import re
from zlib import crc32

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

# A stored signature: SIGNATURE_VERSION, then NUM_PERM little-endian uint32. Bump the version whenever the
# shingles, the hashing or NUM_PERM change: stored signatures of the old kind are then computed again.
SIGNATURE_VERSION = 1
SIGNATURE_BYTES = 1 + 4 * NUM_PERM
_PREFIX = bytes([SIGNATURE_VERSION])


def pack(sigs: np.ndarray) -> list[bytes]:
    """Signatures (n x NUM_PERM) as the bytes stored with each example."""
    raw = np.ascontiguousarray(sigs, dtype="<u4").tobytes()
    step = 4 * NUM_PERM
    return [_PREFIX + raw[i:i + step] for i in range(0, len(raw), step)]


def unpack(data) -> np.ndarray | None:
    """A stored signature (bytes or memoryview), or None when there is none or it was made another way."""
    if data is None or len(data) != SIGNATURE_BYTES or data[0] != SIGNATURE_VERSION:
        return None
    return np.frombuffer(bytes(data), dtype="<u4", offset=1).astype(np.uint32)


def example_text(ex: dict) -> str:
    return " ".join(m.get("content") or "" for m in ex["messages"] if m["role"] in ("user", "assistant"))


_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PAD = ("", "", "")


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures, shape (len(texts), NUM_PERM), uint32.

    Word 3-gram shingles are formed in numpy from per-word crc32 hashes: stable across processes, so the
    same data gets the same near-duplicate report in every worker and every run (Python's str hash is
    seeded per process)."""
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
        word_h.extend([crc32(w.encode()) for w in words])
    w = np.array(word_h, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        sh = w[:-2] * _C1 + w[1:-1] * _C2 + w[2:]
        ph = ((sh[:, None] * _A + _B) >> _SHIFT).astype(np.uint32)
    # shingles that straddle two examples are neutralised before the per-example minimum
    ends = starts[1:]
    ph[ends - 1] = 0xFFFFFFFF
    ph[ends - 2] = 0xFFFFFFFF
    return np.minimum.reduceat(ph, starts, axis=0)


class IntTable:
    """A numpy open-addressing hash table: uint64 key -> first int32 index. ~12 bytes a slot, load <= 0.5,
    so dedup state stays a few dozen bytes per example instead of Python dict entries (~100 bytes each)."""

    EMPTY = np.uint64(0)

    def __init__(self, capacity: int = 1 << 16):
        self.keys = np.zeros(capacity, dtype=np.uint64)
        self.vals = np.full(capacity, -1, dtype=np.int32)
        self.size = 0

    def _grow(self):
        old_k, old_v = self.keys, self.vals
        used = old_v >= 0
        self.keys = np.zeros(len(old_k) * 2, dtype=np.uint64)
        self.vals = np.full(len(old_k) * 2, -1, dtype=np.int32)
        self.size = 0
        self._insert_unique(old_k[used], old_v[used])

    def _probe(self, keys):
        """Slot of each key: where it is, or the empty slot where it would go."""
        mask = np.uint64(len(self.keys) - 1)
        slots = (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - int(len(self.keys)).bit_length() + 1)
        slots = slots & mask
        todo = np.arange(len(keys))
        while len(todo):
            s = slots[todo]
            k = self.keys[s]
            done = (self.vals[s] < 0) | (k == keys[todo])
            todo = todo[~done]
            slots[todo] = (slots[todo] + np.uint64(1)) & mask
        return slots.astype(np.int64)

    def _insert_unique(self, keys, vals):
        # keys are unique and absent; insert in chunks so that probing never races within one step
        for i in range(0, len(keys), 4096):
            k, v = keys[i:i + 4096], vals[i:i + 4096]
            slots = self._probe(k)
            # two new keys may land on the same empty slot: insert the first, re-probe the others
            uniq, first = np.unique(slots, return_index=True)
            self.keys[uniq] = k[first]
            self.vals[uniq] = v[first]
            self.size += len(first)
            rest = np.setdiff1d(np.arange(len(k)), first)
            if len(rest):
                self._insert_unique(k[rest], v[rest])

    def lookup_insert(self, keys: np.ndarray, base: int) -> np.ndarray:
        """For keys of items base, base+1, ...: the first index with the same key (earlier items, including
        earlier in this batch), or -1; unseen keys are inserted."""
        keys = np.where(keys == self.EMPTY, np.uint64(1), keys).astype(np.uint64)
        while (self.size + len(keys)) * 2 > len(self.keys):
            self._grow()
        n = len(keys)
        uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        slots = self._probe(uniq)
        found = self.vals[slots]
        prior = np.where(found >= 0, found, base + first)  # earliest index for each distinct key
        out = prior[inv].astype(np.int64)
        out[out == base + np.arange(n)] = -1  # the first occurrence is not a duplicate of itself
        new = found < 0
        if new.any():
            self._insert_unique(uniq[new], (base + first[new]).astype(np.int32))
        return out


class NearDuplicateIndex:
    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self.tables = [IntTable() for _ in range(BANDS)]
        self.sigs = np.empty((0, NUM_PERM), dtype=np.uint32)
        self.count = 0

    def add_batch(self, sigs: np.ndarray) -> list[tuple[int, int, float] | None]:
        """Add signatures; return, per new item, (its index, index of an earlier near duplicate, similarity)
        or None."""
        n = len(sigs)
        if self.count + n > len(self.sigs):
            grown = np.empty((max(2 * len(self.sigs), self.count + n, 1024), NUM_PERM), dtype=np.uint32)
            grown[: self.count] = self.sigs[: self.count]
            self.sigs = grown
        base = self.count
        self.sigs[base: base + n] = sigs
        self.count += n
        rows = sigs.reshape(n, BANDS, ROWS).astype(np.uint64)
        with np.errstate(over="ignore"):
            band_keys = rows[:, :, 0]
            for r in range(1, ROWS):
                band_keys = band_keys * np.uint64(0x100000001B3) + rows[:, :, r]
        cands = np.stack([self.tables[b].lookup_insert(band_keys[:, b], base) for b in range(BANDS)], axis=1)
        out: list = [None] * n
        js = np.nonzero((cands >= 0).any(axis=1))[0]
        if not len(js):
            return out
        # every item's candidates (one per band; -1: none) compared at once: the most similar one wins, the
        # earliest of those on a tie
        c = cands[js]
        valid = c >= 0
        sims = (self.sigs[np.where(valid, c, 0)] == self.sigs[base + js][:, None, :]).mean(axis=2)
        sims = np.where(valid, sims, -1.0)
        best = sims.max(axis=1)
        first = np.where(valid & (sims == best[:, None]), c, np.iinfo(np.int64).max).min(axis=1)
        for j, k, sim in zip(js.tolist(), first.tolist(), best.tolist()):
            if sim >= self.threshold:
                out[j] = (base + j, k, sim)
        return out
