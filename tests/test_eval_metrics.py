"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyclinic.evaluation.metrics import (
    accuracy_at_k,
    alignment,
    average_ranks,
    mrr_at_k,
    ndcg_at_k,
    pearson,
    ranking_metrics,
    recall_at_k,
    spearman,
    uniformity,
)

RANKED = [["a", "b", "c"], ["x", "y", "z"], ["p", "q", "r"]]
RELEVANT = [{"b": 1}, {"z": 1, "y": 1}, {"s": 1}]


def test_recall_accuracy_mrr():
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 + 0.5 + 0) / 3)
    assert recall_at_k(RANKED, RELEVANT, 3) == pytest.approx(2 / 3)
    assert accuracy_at_k(RANKED, RELEVANT, 2) == pytest.approx(2 / 3)
    assert mrr_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert mrr_at_k(RANKED, RELEVANT, 1) == 0.0
    # queries without relevant documents are ignored
    assert recall_at_k(RANKED + [["a"]], RELEVANT + [{}], 3) == pytest.approx(2 / 3)


def test_ndcg_hand_computed():
    q1 = (1 / math.log2(3)) / 1.0
    q2 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx((q1 + q2 + 0) / 3)
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx(0.441453, abs=1e-6)
    # graded relevance: ideal order puts the grade-2 document first
    assert ndcg_at_k([["b", "a"]], [{"a": 2, "b": 1}], 2) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    m = ranking_metrics(RANKED, RELEVANT, (1, 3))
    assert set(m) == {"recall@1", "accuracy@1", "recall@3", "accuracy@3", "mrr@3", "ndcg@3"}


def test_spearman_with_ties():
    assert list(average_ranks([1, 2, 2, 3])) == [1.0, 2.5, 2.5, 4.0]
    x, y = [1, 2, 2, 3], [1, 3, 2, 4]
    assert spearman(x, y) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))  # 0.948683
    assert spearman(x, y) == pytest.approx(0.9486833, abs=1e-6)
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 50), rng.integers(0, 5, 50)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933993)


def test_alignment_uniformity():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert alignment(x, y) == pytest.approx(1.0)  # (2 + 0) / 2
    assert alignment(x, y, alpha=1) == pytest.approx(math.sqrt(2) / 2)
    assert alignment(3 * x, y) == pytest.approx(1.0)  # normalised first
    assert uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    three = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert uniformity(three) == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3))
    assert uniformity(three, t=1) == pytest.approx(math.log((2 * math.exp(-2) + math.exp(-4)) / 3))
