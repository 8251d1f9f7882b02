"""Pure metric functions (numpy/scipy only), each checked against hand-computed values in the tests.

Ranking metrics take, per query, the ranked list of retrieved ids and a ``{doc_id: relevance}`` dict:
  recall@k      |relevant ∩ top-k| / |relevant|   (BEIR's recall; equals hit rate with one relevant doc)
  accuracy@k    1 if any relevant doc is in the top k
  MRR@k         1 / rank of the first relevant doc within the top k (0 if none)
  NDCG@k        DCG@k / IDCG@k with gain = relevance and discount 1/log2(rank+1)
All are averaged over queries that have at least one relevant document.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


def _check(ranked: Sequence[Sequence[str]], relevant: Sequence[Mapping[str, float]]) -> None:
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} ranked lists for {len(relevant)} queries")


def recall_at_k(ranked, relevant, k: int) -> float:
    _check(ranked, relevant)
    vals = []
    for r, rel in zip(ranked, relevant):
        pos = {d for d, s in rel.items() if s > 0}
        if pos:
            vals.append(len(pos & set(r[:k])) / len(pos))
    return float(np.mean(vals)) if vals else 0.0


def accuracy_at_k(ranked, relevant, k: int) -> float:
    _check(ranked, relevant)
    vals = []
    for r, rel in zip(ranked, relevant):
        pos = {d for d, s in rel.items() if s > 0}
        if pos:
            vals.append(1.0 if pos & set(r[:k]) else 0.0)
    return float(np.mean(vals)) if vals else 0.0


def mrr_at_k(ranked, relevant, k: int) -> float:
    _check(ranked, relevant)
    vals = []
    for r, rel in zip(ranked, relevant):
        pos = {d for d, s in rel.items() if s > 0}
        if not pos:
            continue
        rr = 0.0
        for i, d in enumerate(r[:k]):
            if d in pos:
                rr = 1.0 / (i + 1)
                break
        vals.append(rr)
    return float(np.mean(vals)) if vals else 0.0


def ndcg_at_k(ranked, relevant, k: int) -> float:
    _check(ranked, relevant)
    vals = []
    for r, rel in zip(ranked, relevant):
        gains = sorted((s for s in rel.values() if s > 0), reverse=True)
        if not gains:
            continue
        dcg = sum(rel.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(r[:k]) if rel.get(d, 0.0) > 0)
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
        vals.append(dcg / idcg)
    return float(np.mean(vals)) if vals else 0.0


def ranking_metrics(ranked, relevant, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """recall@k and accuracy@k for every k, plus MRR@max(k) and NDCG@max(k)."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        out[f"accuracy@{k}"] = accuracy_at_k(ranked, relevant, k)
    kmax = max(ks)
    out[f"mrr@{kmax}"] = mrr_at_k(ranked, relevant, kmax)
    out[f"ndcg@{kmax}"] = ndcg_at_k(ranked, relevant, kmax)
    return out


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span (as Spearman needs)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("pearson needs two sequences of the same length >= 2")
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xc ** 2).sum() * (yc ** 2).sum()))
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho = Pearson correlation of average ranks (handles ties)."""
    return pearson(average_ranks(x), average_ranks(y))


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.clip(n, 1e-12, None)


def alignment(x: np.ndarray, y: np.ndarray, alpha: float = 2.0, normalize: bool = True) -> float:
    """Wang & Isola alignment: E ||f(x) - f(y)||^alpha over positive pairs (lower is better)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if normalize:
        x, y = _normalize(x), _normalize(y)
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(x: np.ndarray, t: float = 2.0, normalize: bool = True) -> float:
    """Wang & Isola uniformity: log E_{i<j} exp(-t ||f(x_i) - f(x_j)||^2) (lower is better)."""
    x = np.asarray(x, dtype=float)
    if normalize:
        x = _normalize(x)
    if len(x) < 2:
        raise ValueError("uniformity needs at least two embeddings")
    sq = np.sum(x ** 2, axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0, None)
    iu = np.triu_indices(len(x), k=1)
    vals = -t * d2[iu]
    m = vals.max()
    return float(m + np.log(np.mean(np.exp(vals - m))))
