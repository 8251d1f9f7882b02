"""``evaluate`` metric modules shipped inside the package, so metrics load with no network.

``evaluate.load("f1")`` fetches its script from the Hub; these folders are loaded by path instead
(:func:`load_metric`). Each wraps scikit-learn's implementation (Pedregosa et al., 2011) with the same
inputs/outputs as the Hub modules (``predictions``, ``references``, ``average``, ``labels``; the
``multilabel`` config takes indicator rows).
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
SHIPPED = ("f1", "precision", "recall", "accuracy")


def metric_path(name: str) -> Path:
    if name not in SHIPPED:
        raise ValueError(f"no shipped metric {name!r} (have {', '.join(SHIPPED)})")
    return METRICS_DIR / name


def load_metric(name: str, config_name: str | None = None):
    """``evaluate.load`` of a shipped module by local path (no Hub access)."""
    import evaluate

    return evaluate.load(str(metric_path(name)), config_name, trust_remote_code=False) if config_name else \
        evaluate.load(str(metric_path(name)))
