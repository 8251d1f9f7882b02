"""Precision as an ``evaluate`` module (shipped with polyclinic; wraps ``sklearn.metrics.precision_score``)."""

from sklearn.metrics import precision_score

from polyclinic.metrics import _sklearn


class Precision(_sklearn.SklearnMetric):
    scorer = staticmethod(precision_score)
    key = "precision"
    defaults = {"labels": None, "pos_label": 1, "average": "binary", "sample_weight": None, "zero_division": 0}
