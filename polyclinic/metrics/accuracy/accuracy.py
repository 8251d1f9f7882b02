"""Accuracy as an ``evaluate`` module (shipped with polyclinic; wraps ``sklearn.metrics.accuracy_score``)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Accuracy: see sklearn.metrics.accuracy_score. Loaded from a local path, so no network is needed."
_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in Python}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""
_KWARGS = "predictions, references, normalize=True, sample_weight=None"


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Accuracy(evaluate.Metric):
    def _info(self):
        seq = self.config_name == "multilabel"
        value = datasets.Sequence(datasets.Value("int32")) if seq else datasets.Value("int32")
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS,
                                   features=datasets.Features({"predictions": value, "references": value}),
                                   reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"])

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score) if getattr(score, "size", 1) == 1 else score.tolist()}
