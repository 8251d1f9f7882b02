"""Phase 2: self-distillation. The phase-1 model is frozen as a teacher; training continues on the
same pairs while the student is kept close to the teacher's *similarity structure*.

The loss (implemented as a sentence-transformers loss module, :class:`SelfDistillationLoss`)::

    L = w_c * MNRL(student)                                   # keep learning names <-> descriptions
      + lambda * mean( (S_student - S_teacher)^2 )            # keep what phase 1 learned

where, for a batch of anchors A and candidates C (positives, plus hard negatives when present),
``S = [cos(A, C) | cos(A, A)]`` is the in-batch cosine-similarity matrix (the anchor-anchor block is
optional, ``include_anchor_anchor``) and ``S_teacher`` comes from the frozen teacher under
``torch.no_grad`` in eval mode.

Why this loss:
  * It is exactly 0, with exactly 0 gradient, when the student equals the teacher (dropout off): the
    regulariser only pushes back when the student drifts. Its gradient is 2 (S_s - S_t) dS_s.
  * It constrains what the model is used for (cosine similarities between texts), not the embedding
    coordinates: any rotation of the teacher space costs nothing, so the student keeps the freedom
    to reorganise while preserving relative distances (relatedness/STS, which BioLORD reports).
  * It needs no extra data and one teacher forward per batch (no backward), on the same pairs.
  * Matching the full matrix (not only the positives' scores) keeps the ranking of in-batch
    negatives, i.e. the graded relatedness between *different* concepts, which plain contrastive
    training tends to flatten.
Scale: the squared cosine differences are small (1e-3 .. 1e-2 once the student drifts), while
MNRL at scale 20 is O(0.1 .. 1), so lambda is O(10 .. 100); the recipe default is 50.
With dropout on (training), the term also acts as a consistency regulariser (R-Drop-like).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    a = torch.nn.functional.normalize(a, p=2, dim=-1)
    b = torch.nn.functional.normalize(b, p=2, dim=-1)
    return a @ b.T


def similarity_structure(embeddings: list[Tensor], include_anchor_anchor: bool = True) -> Tensor:
    """``[cos(anchors, all candidates) | cos(anchors, anchors)]`` for one batch."""
    anchors = embeddings[0]
    candidates = torch.cat(embeddings[1:], dim=0)
    blocks = [cosine_matrix(anchors, candidates)]
    if include_anchor_anchor:
        blocks.append(cosine_matrix(anchors, anchors))
    return torch.cat(blocks, dim=1)


def distillation_term(student: list[Tensor], teacher: list[Tensor], include_anchor_anchor: bool = True) -> Tensor:
    s = similarity_structure(student, include_anchor_anchor)
    t = similarity_structure([x.to(s.dtype) for x in teacher], include_anchor_anchor)
    return torch.mean((s - t) ** 2)


class SelfDistillationLoss(nn.Module):
    """MNRL on the student + lambda * MSE between student and teacher in-batch cosine matrices.

    Returns a dict ``{"contrastive": ..., "self_distill": ...}`` so both terms are logged; the
    sentence-transformers trainer sums them.
    """

    def __init__(
        self,
        model,
        teacher,
        distill_weight: float = 50.0,
        contrastive_weight: float = 1.0,
        scale: float = 20.0,
        gather_across_devices: bool = False,
        symmetric: bool = False,
        include_anchor_anchor: bool = True,
    ) -> None:
        super().__init__()
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        self.model = model
        self.teacher = teacher
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.distill_weight = float(distill_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.include_anchor_anchor = include_anchor_anchor
        directions = ("query_to_doc", "doc_to_query") if symmetric else ("query_to_doc",)
        self.contrastive = MultipleNegativesRankingLoss(
            model,
            scale=scale,
            gather_across_devices=gather_across_devices,
            directions=directions,
            partition_mode="per_direction" if symmetric else "joint",
        )

    @torch.no_grad()
    def teacher_embeddings(self, sentence_features: list[dict[str, Any]]) -> list[Tensor]:
        self.teacher.eval()
        # Shallow copies: sentence-transformers modules write their outputs into the feature dict.
        return [self.teacher(dict(f))["sentence_embedding"].detach() for f in sentence_features]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> dict[str, Tensor]:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features = list(sentence_features)
        teacher = self.teacher_embeddings(features)
        student = embed_columns(self.model, [dict(f) for f in features])
        out: dict[str, Tensor] = {}
        if self.contrastive_weight > 0:
            out["contrastive"] = self.contrastive_weight * self.contrastive.compute_loss_from_embeddings(student, labels)
        out["self_distill"] = self.distill_weight * distillation_term(student, teacher, self.include_anchor_anchor)
        return out

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "distill_weight": self.distill_weight,
            "contrastive_weight": self.contrastive_weight,
            "scale": self.contrastive.scale,
            "include_anchor_anchor": self.include_anchor_anchor,
            "teacher": "frozen phase-1 model",
        }

    @property
    def citation(self) -> str:
        return """
@article{remy2024biolord,
  title={BioLORD-2023: semantic textual representations fusing large language models and clinical knowledge graph insights},
  author={Remy, Fran{\\c{c}}ois and Demuynck, Kris and Demeester, Thomas},
  journal={Journal of the American Medical Informatics Association},
  year={2024}
}
"""
