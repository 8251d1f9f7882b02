"""Stable train/validation assignment: a hash of ``seed:id`` (never the input order or a RNG state)."""

from __future__ import annotations

import hashlib

_SCALE = 1 << 64


def split_of(doc_id: str, validation_fraction: float, seed: str = "polyclinic") -> str:
    if validation_fraction <= 0.0:
        return "train"
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{doc_id}".encode("utf-8"), digest_size=8).digest(), "big")
    return "validation" if h / _SCALE < validation_fraction else "train"
