"""F1 as an ``evaluate`` module (shipped with polyclinic; wraps ``sklearn.metrics.f1_score``)."""

from sklearn.metrics import f1_score

from polyclinic.metrics import _sklearn


class F1(_sklearn.SklearnMetric):
    scorer = staticmethod(f1_score)
    key = "f1"
    defaults = {"labels": None, "pos_label": 1, "average": "binary", "sample_weight": None, "zero_division": 0}
