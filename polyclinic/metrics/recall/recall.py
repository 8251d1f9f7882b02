"""Recall as an ``evaluate`` module (shipped with polyclinic; wraps ``sklearn.metrics.recall_score``)."""

from sklearn.metrics import recall_score

from polyclinic.metrics import _sklearn


class Recall(_sklearn.SklearnMetric):
    scorer = staticmethod(recall_score)
    key = "recall"
    defaults = {"labels": None, "pos_label": 1, "average": "binary", "sample_weight": None, "zero_division": 0}
