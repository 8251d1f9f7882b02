"""The shared body of the shipped ``evaluate`` modules: one scikit-learn scorer behind the Hub modules'
interface (``predictions``, ``references``; the ``multilabel`` config takes indicator rows).

Each metric folder only names its scorer, output key and defaults. The metric scripts import this module
as a module (``from polyclinic.metrics import _sklearn``), not the class: ``evaluate`` takes the first
``EvaluationModule`` subclass it finds in a script's namespace as the metric.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import datasets
import evaluate

CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in Python}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""


class SklearnMetric(evaluate.Metric):
    """Subclasses set ``scorer`` (a ``sklearn.metrics`` function), ``key`` and ``defaults``."""

    scorer: ClassVar[Callable[..., Any]]
    key: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    @classmethod
    def kwargs_doc(cls) -> str:
        return ", ".join(["predictions", "references", *(f"{k}={v!r}" for k, v in cls.defaults.items())])

    def _info(self):
        name = self.scorer.__name__
        seq = self.config_name == "multilabel"
        value = datasets.Sequence(datasets.Value("int32")) if seq else datasets.Value("int32")
        return evaluate.MetricInfo(
            description=f"{self.key.capitalize()}: see sklearn.metrics.{name}. Loaded from a local path, so no network is needed.",
            citation=CITATION, inputs_description=self.kwargs_doc(),
            features=datasets.Features({"predictions": value, "references": value}),
            reference_urls=[f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics.{name}.html"])

    def _compute(self, predictions, references, **kwargs):
        unknown = set(kwargs) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.key}: unexpected arguments {sorted(unknown)} (takes {self.kwargs_doc()})")
        score = type(self).scorer(references, predictions, **{**self.defaults, **kwargs})
        return {self.key: float(score) if getattr(score, "size", 1) == 1 else score.tolist()}
