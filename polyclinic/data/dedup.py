"""Duplicate removal.

Exact: an 8-byte BLAKE2b digest of the case-folded, whitespace-normalised text, kept in
:class:`DigestSet`, an open-addressing table of ``uint64`` (≈16-32 bytes per document, no Python
objects per entry), so 100M documents fit in a few GB.

Near: MinHash over word shingles (``shingle_words``-grams), banded as datasketch's ``MinHashLSH`` would
for the threshold; a document whose band collides with an already kept document's is dropped. Bands
are stored as 8-byte digests (≈16-32 bytes per band, a few hundred bytes per kept document);
``max_index_docs`` bounds it (the index is cleared when full, so near-duplicates are then only found
among documents within the same window).
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from polyclinic.data.config import NearDedupConfig


def text_digest(text: str, words: list[str] | None = None) -> int:
    """Stable 64-bit digest of ``text`` after case folding and whitespace normalisation
    (``words``: ``text.casefold().split()`` when the caller already has it)."""
    norm = " ".join(words if words is not None else text.casefold().split())
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest(), "little")


class DigestSet:
    """A set of 64-bit integers in a flat ``uint64`` array (linear probing, grows at 50% load)."""

    def __init__(self, capacity: int = 1 << 16):
        cap = 1
        while cap < capacity:
            cap <<= 1
        self._table = np.zeros(cap, dtype=np.uint64)
        self._mask = cap - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._table.nbytes)

    @staticmethod
    def _key(value: int) -> int:
        value &= 0xFFFFFFFFFFFFFFFF
        return value or 1  # 0 marks an empty slot

    def _slot(self, key: int) -> tuple[int, bool]:
        table, mask = self._table, self._mask
        i = (key ^ (key >> 29)) & mask
        while True:
            cur = int(table[i])
            if cur == 0:
                return i, False
            if cur == key:
                return i, True
            i = (i + 1) & mask

    def __contains__(self, value: int) -> bool:
        return self._slot(self._key(value))[1]

    def add(self, value: int) -> bool:
        """Insert; returns False when the value was already present."""
        key = self._key(value)
        i, found = self._slot(key)
        if found:
            return False
        self._table[i] = key
        self._size += 1
        if self._size * 2 > len(self._table):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._table[self._table != 0]
        self._table = np.zeros(len(self._table) * 2, dtype=np.uint64)
        self._mask = len(self._table) - 1
        self._size = 0
        for key in old.tolist():
            i, _ = self._slot(key)
            self._table[i] = key
            self._size += 1


_MULT = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(words: list[str], n: int) -> np.ndarray:
    """32-bit hashes of the word ``n``-grams of ``words`` (case-folded tokens), vectorised.

    Each word is hashed once (CRC-32); an n-gram hash mixes its words' hashes by position with 64-bit
    multiply/xor and folds to 32 bits. Deterministic across runs and machines.
    """
    if not words:
        return np.zeros(0, dtype=np.uint64)
    crc = zlib.crc32
    wh = np.array([crc(w.encode("utf-8")) for w in words], dtype=np.uint64)
    if len(words) <= n:  # the whole (short) text is one shingle
        acc = 0
        for k, v in enumerate(wh.tolist(), 1):
            acc = ((acc ^ v) * 0x9E3779B97F4A7C15 + k) & 0xFFFFFFFFFFFFFFFF
        h = np.array([acc], dtype=np.uint64)
    else:
        m = len(words) - n + 1
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                h = (h ^ wh[k : k + m]) * _MULT + np.uint64(k + 1)
    with np.errstate(over="ignore"):
        return (h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


def shingles(text: str, n: int) -> list[bytes]:
    """The word n-grams themselves (for inspection; the index uses :func:`shingle_hashes`)."""
    words = text.casefold().split()
    if len(words) <= n:
        return [" ".join(words).encode("utf-8")] if words else []
    return [" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)]


def _identity(x):
    return x


class NearDuplicateIndex:
    """MinHash LSH over word shingles; ``is_duplicate_then_add`` is the only call the pipeline needs.

    Signatures are datasketch ``MinHash``es; the banding (``b`` bands of ``r`` rows) is the one datasketch's
    ``MinHashLSH`` picks for ``threshold``/``num_perm``. Instead of datasketch's in-memory storage (a Python
    set per bucket, ~4 KB per document at 128 permutations), each band of a kept document is stored as one
    8-byte digest in a :class:`DigestSet`, ~16-32 bytes per band, ~0.2-0.5 KB per document. A document is a
    near duplicate when any of its bands collides with a kept document's band: the same candidate rule as
    ``MinHashLSH.query`` (no second Jaccard check).
    """

    CHUNK = 4096  # shingles hashed per numpy batch (bounds the temporary (n, num_perm) matrix)

    def __init__(self, cfg: NearDedupConfig):
        from datasketch import MinHash, MinHashLSH

        self.cfg = cfg
        self._MinHash = MinHash
        template = MinHash(num_perm=cfg.num_perm, seed=1, hashfunc=_identity)
        self._perms = template.permutations
        self._scheme = template.scheme
        lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
        self.bands, self.rows = int(lsh.b), int(lsh.r)
        self._bands = DigestSet()
        self._count = 0  # documents in the current index
        self.resets = 0

    @property
    def nbytes(self) -> int:
        return self._bands.nbytes

    def minhash(self, text: str, words: list[str] | None = None):
        """MinHash of ``text`` (``words``: ``text.casefold().split()`` when the caller already has it)."""
        m = self._MinHash(num_perm=self.cfg.num_perm, hashfunc=_identity, permutations=self._perms, scheme=self._scheme)
        hv = shingle_hashes(words if words is not None else text.casefold().split(), self.cfg.shingle_words)
        values = hv.tolist()  # plain ints: datasketch hashes item by item with the identity function
        for i in range(0, len(values), self.CHUNK):
            m.update_batch(values[i : i + self.CHUNK])
        return m

    def band_digests(self, m) -> list[int]:
        hv = np.asarray(m.hashvalues)
        r = self.rows
        out = []
        for i in range(self.bands):
            h = hashlib.blake2b(hv[i * r : (i + 1) * r].tobytes(), digest_size=8, person=b"band%04d" % i)
            out.append(int.from_bytes(h.digest(), "little"))
        return out

    def is_duplicate_then_add(self, text: str, words: list[str] | None = None) -> bool:
        digests = self.band_digests(self.minhash(text, words))
        if self._count and any(d in self._bands for d in digests):
            return True
        if self.cfg.max_index_docs is not None and self._count >= self.cfg.max_index_docs:
            self._bands = DigestSet()
            self._count = 0
            self.resets += 1
        for d in digests:
            self._bands.add(d)
        self._count += 1
        return False
