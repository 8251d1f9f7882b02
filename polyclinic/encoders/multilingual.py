"""Phase 4: multilingual knowledge distillation (Reimers & Gurevych 2020, BioLORD-2023-M).

An English teacher embeds the English side ``s`` of each parallel pair (``s``, ``t``); the student is
trained so that ``student(s) ≈ teacher(s)`` and ``student(t) ≈ teacher(s)`` (``MSELoss`` with the
teacher embedding as a broadcast label). Optionally (``contrastive_weight > 0``) an in-batch
MultipleNegativesRankingLoss between ``student(t)`` and ``student(s)`` sharpens cross-lingual
retrieval. Teacher embeddings are computed once, before training (a ``label`` column).

Parallel data come from files (TSV/JSONL/parquet: source, translation) or from code-aligned
terminologies: concepts that share a ``concept_id`` across languages (CIE-10 Spanish <-> ICD-10-CM
English for the same code) give (English name, translated name) pairs.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("encoders.multilingual")


def parallel_from_table(
    table,
    source_lang: str = "en",
    target_langs: Sequence[str] = ("es",),
    concept_ids: Iterable[str] | None = None,
    include_synonyms: bool = True,
    max_pairs: int | None = None,
    seed: int = 0,
    hard_negatives: bool = False,
):
    """(english, non_english) pairs from a concept table: names of the same concept in two languages.

    Every target-language name (and synonym) is paired with the concept's preferred source-language
    name; source synonyms become extra (synonym, target name) pairs. ``concept_ids`` restricts the
    concepts (e.g. training codes only, so held-out codes stay unseen). ``hard_negatives`` adds a
    ``negative`` column: the source-language name of a sibling code (same ICD category, or for a
    category the same two-character prefix), seeded, among the kept concepts only.
    """
    from datasets import Dataset

    keep = set(concept_ids) if concept_ids is not None else None
    src: dict[str, list[str]] = {}
    tgt: dict[str, list[tuple[str, str]]] = {}
    cols = {k: table[k] for k in ("concept_id", "lang", "name", "synonyms")}
    for cid, lang, name, syns in zip(cols["concept_id"], cols["lang"], cols["name"], cols["synonyms"]):
        if keep is not None and cid not in keep:
            continue
        names = [name] + (list(syns or []) if include_synonyms else [])
        if lang == source_lang:
            src.setdefault(cid, [])
            for n in names:
                if n not in src[cid]:
                    src[cid].append(n)
        elif lang in target_langs:
            tgt.setdefault(cid, []).extend((lang, n) for n in names)
    pairs: list[tuple[str, str, str, str]] = []
    for cid in sorted(set(src) & set(tgt)):
        en = src[cid]
        for i, (lang, t) in enumerate(dict.fromkeys(tgt[cid])):
            pairs.append((en[0], t, cid, lang))
            if len(en) > 1:
                pairs.append((en[1 + i % (len(en) - 1)], t, cid, lang))
    pairs = list(dict.fromkeys(pairs))
    if max_pairs is not None and len(pairs) > max_pairs:
        rng = random.Random(seed)
        pairs = rng.sample(pairs, max_pairs)
    if not pairs:
        raise UserError(f"no {source_lang}->{list(target_langs)} concept pairs found in the concept table")
    columns = {
        "english": [p[0] for p in pairs],
        "non_english": [p[1] for p in pairs],
        "concept_id": [p[2] for p in pairs],
        "lang": [p[3] for p in pairs],
    }
    if hard_negatives:
        columns["negative"] = sibling_negatives(columns["concept_id"], {c: names[0] for c, names in src.items()}, seed)
    return Dataset.from_dict(columns)


def _sibling_key(concept_id: str) -> str:
    code = concept_id.split(":", 1)[-1]
    return code[:3] if len(code) > 3 else code[:2]


def sibling_negatives(concept_ids: Sequence[str], names: dict[str, str], seed: int = 0) -> list[str]:
    """For each concept, the name of a seeded random sibling (same ICD category / 2-character prefix);
    concepts without a sibling get a random other concept's name (never their own)."""
    groups: dict[str, list[str]] = {}
    for cid in sorted(names):
        groups.setdefault(_sibling_key(cid), []).append(cid)
    everyone = sorted(names)
    rng = random.Random(seed)
    out = []
    for cid in concept_ids:
        siblings = [c for c in groups.get(_sibling_key(cid), []) if c != cid and names[c] != names.get(cid)]
        pool = siblings or [c for c in rng.sample(everyone, min(8, len(everyone))) if c != cid and names[c] != names.get(cid)]
        out.append(names[rng.choice(pool)] if pool else "")
    return out


def add_teacher_labels(dataset, teacher, batch_size: int = 128, column: str = "english"):
    """Add a ``label`` column: the teacher's embedding of each English text (computed once, unique texts)."""
    texts = list(dict.fromkeys(dataset[column]))
    emb = teacher.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    index = {t: i for i, t in enumerate(texts)}
    labels = [emb[index[t]].tolist() for t in dataset[column]]
    return dataset.add_column("label", labels)


class MultilingualDistillLoss(nn.Module):
    """m * [MSE(student(en), T(en)) + MSE(student(xx), T(en))] / 2  +  w * MNRL(student(xx) -> student(en) [, negatives]).

    Inputs: columns ``english, non_english[, negative]`` and a ``label`` of teacher embeddings. The ranking
    term uses in-batch negatives (and the ``negative`` column, English names of sibling codes, when
    given); ``symmetric`` also ranks the translations for each English text (en -> xx search), with a
    separate softmax per direction. ``mse_weight=0`` drops the MSE term (contrastive only).
    """

    def __init__(self, model, contrastive_weight: float = 0.0, scale: float = 20.0, gather_across_devices: bool = False,
                 mse_weight: float = 1.0, symmetric: bool = False) -> None:
        super().__init__()
        from sentence_transformers.sentence_transformer.losses import MSELoss, MultipleNegativesRankingLoss

        if mse_weight <= 0 and contrastive_weight <= 0:
            raise UserError("multilingual distillation needs mse_weight > 0 or contrastive_weight > 0")
        self.model = model
        self.mse = MSELoss(model)
        self.contrastive_weight = float(contrastive_weight)
        self.mse_weight = float(mse_weight)
        self.symmetric = bool(symmetric)
        directions = ("query_to_doc", "doc_to_query") if symmetric else ("query_to_doc",)
        self.mnrl = MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather_across_devices,
                                                 directions=directions,
                                                 partition_mode="per_direction" if symmetric else "joint")

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> dict[str, Tensor] | Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features = list(sentence_features)
        if next(self.model.parameters()).device.type == "cpu":
            # one forward per column: a merged batch pads every row to the longest text of all columns
            # (Spanish names run ~2x the English ones), which cost 1.7x on CPU (benchmarks/bench_distill_speed.py)
            embeddings = [self.model(f)["sentence_embedding"] for f in features]
        else:  # on a GPU one merged forward (fewer, larger kernels) is the faster one
            embeddings = embed_columns(self.model, features, separate_first=False)
        labels = labels.detach()
        out: dict[str, Tensor] = {}
        if self.mse_weight > 0:  # the teacher target is for the English text and its translation, not negatives
            out["mse"] = self.mse_weight * self.mse.compute_loss_from_embeddings(embeddings[:2], [labels, labels])
        if self.contrastive_weight > 0:
            # anchors: the translations; candidates: the English texts (+ sibling negatives)
            ranking = self.mnrl.compute_loss_from_embeddings([embeddings[1], embeddings[0], *embeddings[2:]], None)
            out["contrastive"] = self.contrastive_weight * ranking
        return out["mse"] if list(out) == ["mse"] else out

    def get_config_dict(self) -> dict[str, Any]:
        return {"mse_weight": self.mse_weight, "contrastive_weight": self.contrastive_weight, "scale": self.mnrl.scale,
                "symmetric": self.symmetric}

    @property
    def citation(self) -> str:
        return self.mse.citation


@torch.no_grad()
def distillation_mse(student, teacher_embeddings, texts: list[str], batch_size: int = 128) -> float:
    """Mean squared error between student embeddings of ``texts`` and the given teacher embeddings."""
    import numpy as np

    emb = student.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    target = np.asarray(teacher_embeddings, dtype=np.float32)
    return float(((emb - target) ** 2).mean())


def evaluate_distillation(student, dev_dataset, batch_size: int = 128) -> dict[str, float]:
    """MSE (x100, as sentence-transformers reports it) of student(translation) and student(English) vs teacher(English)."""
    labels = dev_dataset["label"]
    return {
        "mse_translation_x100": 100 * distillation_mse(student, labels, dev_dataset["non_english"], batch_size),
        "mse_english_x100": 100 * distillation_mse(student, labels, dev_dataset["english"], batch_size),
    }


def check_dimensions(student, teacher) -> None:
    from polyclinic.encoders.model import embedding_dim

    ds, dt = embedding_dim(student), embedding_dim(teacher)
    if ds != dt:
        raise UserError(
            f"student embeddings have {ds} dimensions, the teacher's {dt}; MSE distillation needs equal sizes "
            "(pick a student of the teacher's width, or add a Dense layer to the student first)"
        )
