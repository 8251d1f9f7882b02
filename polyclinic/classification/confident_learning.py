"""Confident learning in numpy: find labels that are probably wrong (Northcutt, Jiang & Chuang, 2021,
"Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70:1373-1411).

Given noisy labels ``s`` and out-of-sample predicted probabilities ``P`` (n x K), the per-class threshold
``t_j`` is the mean ``P[:, j]`` over the examples labelled ``j``. The confident joint ``C[i][j]`` counts
examples labelled ``i`` whose probability for ``j`` reaches ``t_j`` (the largest such ``j`` when several
do). After calibrating ``C`` to the label counts, ``prune_by_noise_rate`` removes, for every off-diagonal
cell, the ``n * Q[i][j]`` examples labelled ``i`` with the largest margin ``P[:, j] - P[:, i]``.
The out-of-sample probabilities come from :func:`cross_val_probabilities` (k-fold logistic regression on
frozen sentence embeddings): cheap, and never scored on the examples it was fitted on.
"""

from __future__ import annotations

import numpy as np


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    t = np.zeros(k)
    for j in range(k):
        sel = labels == j
        t[j] = probs[sel, j].mean() if sel.any() else 1.0
    return t


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=float)
    n, k = probs.shape
    t = per_class_thresholds(labels, probs)
    above = probs >= t - 1e-12
    cj = np.zeros((k, k), dtype=np.int64)
    for i in range(n):
        cand = np.flatnonzero(above[i])
        if cand.size == 0:
            continue
        j = cand[np.argmax(probs[i, cand])]
        cj[labels[i], j] += 1
    # calibrate rows to the observed label counts (Eq. 2 of the paper)
    counts = np.bincount(labels, minlength=k)
    row = cj.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cal = np.where(row > 0, cj / row * counts[:, None], 0.0)
    return cal


def find_label_issues(labels, probs) -> np.ndarray:
    """Boolean mask of examples whose given label is probably wrong (prune by noise rate)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=float)
    n, k = probs.shape
    cal = confident_joint(labels, probs)
    q = cal / max(cal.sum(), 1e-12)  # joint distribution estimate Q[s, y*]
    issues = np.zeros(n, dtype=bool)
    for i in range(k):
        idx = np.flatnonzero(labels == i)
        if idx.size == 0:
            continue
        for j in range(k):
            if i == j:
                continue
            m = int(round(n * q[i, j]))
            if m <= 0:
                continue
            margin = probs[idx, j] - probs[idx, i]
            order = idx[np.argsort(-margin)][: min(m, idx.size - 1)]  # never empty a class
            issues[order[margin[np.argsort(-margin)][: order.size] > 0]] = True
    return issues


def cross_val_probabilities(embeddings: np.ndarray, labels: np.ndarray, folds: int = 3, seed: int = 0) -> np.ndarray:
    """Out-of-sample class probabilities by k-fold logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    probs = np.zeros((len(labels), k))
    min_count = np.bincount(labels, minlength=k)
    folds = max(2, min(folds, int(min_count[min_count > 0].min())))
    for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(embeddings, labels):
        clf = LogisticRegression(max_iter=1000)
        clf.fit(embeddings[tr], labels[tr])
        probs[np.ix_(te, clf.classes_)] = clf.predict_proba(embeddings[te])
    return probs
