"""Accuracy as an ``evaluate`` module (shipped with polyclinic; wraps ``sklearn.metrics.accuracy_score``)."""

from sklearn.metrics import accuracy_score

from polyclinic.metrics import _sklearn


class Accuracy(_sklearn.SklearnMetric):
    scorer = staticmethod(accuracy_score)
    key = "accuracy"
    defaults = {"normalize": True, "sample_weight": None}
