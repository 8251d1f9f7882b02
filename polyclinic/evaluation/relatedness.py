"""Concept relatedness: Spearman of embedding cosine vs an ontology similarity (e.g. HPO Lin/Resnik IC
similarity from ``hpo3``). Pairs come from :func:`polyclinic.concepts.benchmarks.hpo_relatedness_pairs`
or any scored-pairs file / dataset with ``sentence1, sentence2, score``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyclinic.evaluation.sts import evaluate_pairs, load_scored_pairs


def evaluate_relatedness(model, pairs: Any = None, n_pairs: int = 1000, seed: int = 0, method: str = "lin",
                         batch_size: int = 64) -> tuple[dict[str, float], int, str]:
    """(metrics, number of pairs, dataset name). ``pairs``: None (sample HPO pairs), a file path, a
    ``datasets.Dataset`` or a dict with ``sentence1``, ``sentence2``, ``score`` lists."""
    if pairs is None:
        from polyclinic.concepts.benchmarks import hpo_relatedness_pairs

        ds = hpo_relatedness_pairs(n_pairs=n_pairs, seed=seed, method=method)
        s1, s2, sc = ds["sentence1"], ds["sentence2"], ds["score"]
        name = f"hpo-{method}-{n_pairs}-seed{seed}"
    elif isinstance(pairs, (str, Path)):
        s1, s2, sc, _ = load_scored_pairs(pairs)
        name = Path(pairs).stem
    else:
        s1, s2, sc = list(pairs["sentence1"]), list(pairs["sentence2"]), list(pairs["score"])
        name = "pairs"
    s1, s2, sc = list(s1), list(s2), [float(x) for x in sc]
    return evaluate_pairs(model, s1, s2, sc, batch_size), len(sc), name
