"""Classification metrics against verified labels: one function for the teacher and the student.

Per-class precision/recall/F1, macro/micro F1 and accuracy come from the ``evaluate`` modules shipped in
:mod:`polyclinic.metrics` (loaded by path, no network); Cohen's kappa and the confusion matrix come from
scikit-learn, which ``evaluate`` has no offline module for. Multi-label: per-label scores on indicator
rows, kappa is the mean per-label kappa, and the "confusion" is a per-label 2x2 table (no plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from polyclinic.metrics import load_metric


def _indicator(rows: Sequence[Sequence[str]], labels: Sequence[str]) -> list[list[int]]:
    index = {l: i for i, l in enumerate(labels)}
    out = []
    for r in rows:
        v = [0] * len(labels)
        for l in r:
            v[index[l]] = 1
        out.append(v)
    return out


def classification_metrics(gold: Sequence, pred: Sequence, labels: Sequence[str], multi_label: bool = False) -> dict:
    """Metrics of ``pred`` against ``gold`` (label names; lists of names when ``multi_label``).

    Returns ``{"accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "cohen_kappa",
    "per_class": {label: {"precision", "recall", "f1", "support"}}, "confusion": [[...]], "labels": [...]}``.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    labels = list(labels)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels for {len(pred)} predictions")
    if not len(gold):
        raise ValueError("no examples to evaluate")
    cfg = "multilabel" if multi_label else None
    if multi_label:
        refs, preds = _indicator(gold, labels), _indicator(pred, labels)
        ids = list(range(len(labels)))
    else:
        index = {l: i for i, l in enumerate(labels)}
        refs, preds = [index[g] for g in gold], [index[p] for p in pred]
        ids = list(range(len(labels)))
    f1, prec, rec = load_metric("f1", cfg), load_metric("precision", cfg), load_metric("recall", cfg)
    kw = {"labels": ids, "zero_division": 0}
    per_f1 = f1.compute(predictions=preds, references=refs, average=None, **kw)["f1"]
    per_p = prec.compute(predictions=preds, references=refs, average=None, **kw)["precision"]
    per_r = rec.compute(predictions=preds, references=refs, average=None, **kw)["recall"]
    out = {
        "accuracy": load_metric("accuracy", cfg).compute(predictions=preds, references=refs)["accuracy"],
        "macro_f1": f1.compute(predictions=preds, references=refs, average="macro", **kw)["f1"],
        "micro_f1": f1.compute(predictions=preds, references=refs, average="micro", **kw)["f1"],
        "macro_precision": prec.compute(predictions=preds, references=refs, average="macro", **kw)["precision"],
        "macro_recall": rec.compute(predictions=preds, references=refs, average="macro", **kw)["recall"],
    }
    R, P = np.asarray(refs), np.asarray(preds)
    if multi_label:
        kappas = [cohen_kappa_score(R[:, j], P[:, j]) if len(set(R[:, j]) | set(P[:, j])) > 1 else 1.0
                  for j in range(len(labels))]
        out["cohen_kappa"] = float(np.mean(kappas))
        support = R.sum(axis=0).tolist()
        out["confusion"] = [[[int(((R[:, j] == a) & (P[:, j] == b)).sum()) for b in (0, 1)] for a in (0, 1)]
                            for j in range(len(labels))]
    else:
        k = cohen_kappa_score(R, P, labels=ids)
        out["cohen_kappa"] = float(k) if np.isfinite(k) else 1.0  # one class only in both: perfect agreement
        support = np.bincount(R, minlength=len(labels)).tolist()
        out["confusion"] = confusion_matrix(R, P, labels=ids).tolist()
    out["per_class"] = {l: {"precision": float(per_p[i]), "recall": float(per_r[i]), "f1": float(per_f1[i]),
                            "support": int(support[i])} for i, l in enumerate(labels)}
    out["labels"] = labels
    out["num_examples"] = len(gold)
    return out


def flat_metrics(m: dict) -> dict[str, float]:
    """The scalar view of :func:`classification_metrics` for an eval record (``f1.<label>`` per class)."""
    out = {k: m[k] for k in ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "cohen_kappa")}
    for label, v in m["per_class"].items():
        for key in ("precision", "recall", "f1"):
            out[f"{key}.{label}"] = v[key]
    return out


def plot_confusion(m: dict, path: str | Path, title: str) -> Path | None:
    """Confusion-matrix PNG (rows: verified label, columns: predicted), counts in the cells. None for multi-label."""
    cm = np.asarray(m["confusion"])
    if cm.ndim != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polyclinic.io import atomic_write_bytes
    import io

    labels = m["labels"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("verified")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
