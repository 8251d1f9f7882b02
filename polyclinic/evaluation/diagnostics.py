"""Embedding-space diagnostics: Wang & Isola alignment (positive pairs) and uniformity, and a 2-D PCA
projection coloured by language or concept, saved as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyclinic.evaluation.metrics import alignment, uniformity


def projection_plot(emb: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "",
                    max_legend: int = 12) -> Path:
    """PCA to 2-D (scikit-learn) and a scatter plot coloured by ``labels``; writes ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(np.asarray(emb, dtype=float))
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    uniq = list(dict.fromkeys(labels))
    cmap = plt.get_cmap("tab20" if len(uniq) > 10 else "tab10")
    labels = np.asarray(labels)
    for i, lab in enumerate(uniq):
        m = labels == lab
        ax.scatter(xy[m, 0], xy[m, 1], s=8, alpha=0.7, color=cmap(i % cmap.N),
                   label=lab if i < max_legend else None)
    if len(uniq) <= max_legend * 2:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title or "PCA projection")
    ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def embedding_diagnostics(model, anchors: Sequence[str], positives: Sequence[str], labels: Sequence[str] | None = None,
                          plot_path: str | Path | None = None, batch_size: int = 64, max_uniformity: int = 2000,
                          title: str = "") -> dict[str, Any]:
    """Alignment over (anchor, positive) pairs, uniformity over all distinct texts (capped), and an optional
    PCA plot of the anchor+positive embeddings coloured by ``labels`` (one per pair, e.g. language)."""
    from polyclinic.evaluation.retrieval import encode, load_model

    model = load_model(model)
    a = encode(model, anchors, batch_size)
    p = encode(model, positives, batch_size)
    both = np.concatenate([a, p])
    rng = np.random.default_rng(0)
    sample = both if len(both) <= max_uniformity else both[rng.choice(len(both), max_uniformity, replace=False)]
    out: dict[str, Any] = {"alignment": alignment(a, p), "uniformity": uniformity(sample),
                           "mean_positive_cosine": float(np.mean(np.sum(a * p, axis=1)))}
    if plot_path is not None:
        labs = list(labels) * 2 if labels is not None else ["anchor"] * len(a) + ["positive"] * len(p)
        out["plot"] = str(projection_plot(both, labs, plot_path, title))
    return out
