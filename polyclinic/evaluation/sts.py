"""STS-style evaluation: Spearman (and Pearson) of cosine similarity vs gold scores.

Reads any file of scored sentence pairs: TSV / CSV (header with ``sentence1, sentence2, score``, or
``text1/text2``, ``s1/s2``, ``label``; headerless files use the first three columns) or JSONL with the
same keys. Malformed rows are counted and skipped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from polyclinic import textfiles
from polyclinic.errors import UserError
from polyclinic.evaluation.metrics import pearson, spearman
from polyclinic.logging_utils import get_logger

log = get_logger("evaluation.sts")

_S1 = ("sentence1", "sentence_1", "text1", "text_1", "s1", "sentence_a", "anchor", "term1", "name1")
_S2 = ("sentence2", "sentence_2", "text2", "text_2", "s2", "sentence_b", "positive", "term2", "name2")
_SC = ("score", "label", "similarity", "gold", "relatedness")


def _pick(keys: Sequence[str], options: Sequence[str]) -> str | None:
    low = {k.lower().strip(): k for k in keys if k is not None}
    for o in options:
        if o in low:
            return low[o]
    return None


def load_scored_pairs(path: str | Path) -> tuple[list[str], list[str], list[float], int]:
    """(sentences1, sentences2, scores, malformed rows)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pairs file not found: {path}")
    s1, s2, sc, bad = [], [], [], 0
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        for _, line in textfiles.iter_lines(path):  # BOM, UTF-16/32, .gz/.zst (polyclinic.textfiles)
            if not line.strip():
                continue
            try:
                if textfiles.undecodable(line):
                    raise ValueError("undecodable bytes")
                row = json.loads(line)
                k1, k2, k3 = _pick(row, _S1), _pick(row, _S2), _pick(row, _SC)
                a, b, s = row[k1], row[k2], float(row[k3])
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                bad += 1
                continue
            s1.append(str(a)); s2.append(str(b)); sc.append(s)
    else:
        delim = "," if suffix == ".csv" else "\t"
        rows = list(csv.reader((line for _, line in textfiles.iter_lines(path, strict=True, newline="")), delimiter=delim))
        if not rows:
            raise UserError(f"{path}: empty file")
        header = rows[0]
        k1, k2, k3 = _pick(header, _S1), _pick(header, _S2), _pick(header, _SC)
        if k1 and k2 and k3:
            i1, i2, i3 = header.index(k1), header.index(k2), header.index(k3)
            rows = rows[1:]
        else:
            i1, i2, i3 = 0, 1, 2
            try:
                float(header[2])
            except (ValueError, IndexError):
                rows = rows[1:]  # an unrecognised header
        for row in rows:
            try:
                a, b, s = row[i1], row[i2], float(row[i3])
            except (IndexError, ValueError):
                bad += 1
                continue
            s1.append(a); s2.append(b); sc.append(s)
    if bad:
        log.warning("%s: %d malformed rows skipped", path, bad)
    if len(sc) < 2:
        raise UserError(f"{path}: fewer than two valid scored pairs")
    return s1, s2, sc, bad


def cosine_scores(model, s1: Sequence[str], s2: Sequence[str], batch_size: int = 64) -> np.ndarray:
    from polyclinic.evaluation.retrieval import encode, load_model

    model = load_model(model)
    uniq = list(dict.fromkeys(list(s1) + list(s2)))
    emb = encode(model, uniq, batch_size)
    pos = {t: i for i, t in enumerate(uniq)}
    a = emb[[pos[t] for t in s1]]
    b = emb[[pos[t] for t in s2]]
    return np.sum(a * b, axis=1)


def evaluate_pairs(model, s1: Sequence[str], s2: Sequence[str], gold: Sequence[float], batch_size: int = 64) -> dict[str, float]:
    cos = cosine_scores(model, s1, s2, batch_size)
    return {"spearman": spearman(cos, gold), "pearson": pearson(cos, gold)}


def evaluate_sts(model, path: str | Path, batch_size: int = 64) -> tuple[dict[str, float], int]:
    """(metrics, number of pairs) for a scored-pairs file."""
    s1, s2, sc, bad = load_scored_pairs(path)
    metrics = evaluate_pairs(model, s1, s2, sc, batch_size)
    metrics["malformed_rows"] = bad
    return metrics, len(sc)
