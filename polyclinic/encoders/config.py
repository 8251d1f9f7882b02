"""Typed config of an encoder recipe: one base model, one data section, up to four phases.

A recipe is a YAML file loaded with :func:`load_encoder_config` (``_base_`` inheritance and
``key.sub=value`` overrides as everywhere in polyclinic). The phases always run in this order and
each starts from the model the previous enabled phase produced (BioLORD-2023):

  contrastive   names vs descriptions, in-batch negatives (MultipleNegativesRankingLoss, or its
                GradCache version for large batches on small memory)
  self_distill  the contrastive model becomes a frozen teacher; training continues with the same
                contrastive loss plus a term that keeps the in-batch similarity structure close to
                the teacher's (see ``polyclinic/encoders/self_distill.py`` for the exact loss)
  average       weight averaging of checkpoints of the previous phase, of re-runs with other
                seeds, or of given model folders
  distill       multilingual distillation: the English model is the teacher, a (multilingual)
                student learns to map English text and its translations onto the teacher's
                embedding of the English text (MSE, optional contrastive term)

Phases are a mapping, not a list, so ``_base_`` recipes merge phase by phase and
``phases.contrastive.train.batch_size=64`` works on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, model_validator

from polyclinic.config import ConfigError, StrictModel, load_config

PHASE_ORDER = ("contrastive", "self_distill", "average", "distill")
#: command-line spellings of the phases (``--phase self-distill``)
PHASE_ALIASES = {
    "contrastive": "contrastive",
    "self-distill": "self_distill",
    "self_distill": "self_distill",
    "average": "average",
    "averaging": "average",
    "distill": "distill",
    "multilingual": "distill",
}


class TrainSettings(StrictModel):
    """What becomes ``SentenceTransformerTrainingArguments`` for one training phase."""

    epochs: float = 1.0
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(32, ge=1, description="per device; in-batch negatives grow with it")
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = 0.01
    lr_scheduler: str = "linear"
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = 1.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    save_steps: int = Field(500, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    logging_steps: int = Field(50, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)
    deepspeed: str | None = Field(None, description="DeepSpeed JSON config (or use an accelerate config)")
    seed: int | None = Field(None, description="defaults to the recipe seed")
    resume: bool | str = Field(
        "auto", description="'auto': continue from the newest complete checkpoint if any; a path; or false"
    )
    batch_sampler: Literal["no_duplicates", "batch_sampler", "no_duplicates_hashed"] = "no_duplicates"


class ContrastiveLossSettings(StrictModel):
    scale: float = Field(20.0, gt=0, description="1 / temperature")
    symmetric: bool = Field(False, description="also rank anchors for each positive (doc_to_query)")
    cached: bool = Field(False, description="GradCache (CachedMultipleNegativesRankingLoss): big batches, small memory")
    mini_batch_size: int = Field(32, ge=1, description="GradCache chunk size")
    gather_across_devices: Literal["auto", True, False] = Field(
        "auto", description="'auto': gather negatives from all ranks when world size > 1"
    )
    hard_negatives: bool = Field(False, description="use the 'negative' column of the pairs when present")


class ContrastivePhase(StrictModel):
    enabled: bool = True
    train: TrainSettings = TrainSettings()
    loss: ContrastiveLossSettings = ContrastiveLossSettings()


class SelfDistillPhase(StrictModel):
    enabled: bool = False
    teacher: str | None = Field(None, description="model folder; default: the model the previous phase produced")
    distill_weight: float = Field(
        50.0, ge=0, description="lambda in  MNRL + lambda * MSE(student in-batch cosines, teacher in-batch cosines)"
    )
    contrastive_weight: float = Field(1.0, ge=0)
    include_anchor_anchor: bool = Field(True, description="also match anchor-vs-anchor cosines")
    train: TrainSettings = TrainSettings(learning_rate=1e-5)
    loss: ContrastiveLossSettings = ContrastiveLossSettings()


class AveragePhase(StrictModel):
    enabled: bool = False
    source: Literal["checkpoints", "seeds", "models"] = "checkpoints"
    last_k: int = Field(3, ge=1, description="source=checkpoints: average the newest k checkpoints + the final model")
    seeds: list[int] = Field(default_factory=list, description="source=seeds: re-run the previous training phase with these seeds")
    models: list[str] = Field(default_factory=list, description="source=models: folders / Hub ids to average")
    weights: list[float] | None = None
    evaluate_members: bool = Field(True, description="also evaluate every averaged model (before) next to the average (after)")


class ParallelSettings(StrictModel):
    files: list[str] = Field(default_factory=list, description="TSV/CSV/JSONL/parquet with source/translation columns")
    source_column: str = "source"
    target_column: str = "translation"
    from_concepts: bool = Field(False, description="pair names of the same concept across languages (data.concepts)")
    source_lang: str = "en"
    target_langs: list[str] = Field(default_factory=lambda: ["es"])
    max_pairs: int | None = None
    dev_fraction: float = Field(0.05, ge=0, lt=1)
    max_heldout_pairs: int = Field(1000, ge=1, description="from_concepts: held-out (dev concept) pairs for the before/after MSE")


class DistillPhase(StrictModel):
    enabled: bool = False
    teacher: str | None = Field(None, description="English teacher; default: the model the previous phase produced")
    student: str | None = Field(None, description="student model; default: the recipe's base_model")
    student_max_seq_length: int | None = None
    parallel: ParallelSettings = ParallelSettings()
    mse_weight: float = Field(
        100.0, ge=0, description="weight of the MSE term; normalized embeddings give per-dimension errors ~1e-3, so raise it when adding a contrastive term; 0: contrastive only"
    )
    contrastive_weight: float = Field(1.0, ge=0, description="> 0 adds MNRL(translation -> English) on the student")
    contrastive_scale: float = 20.0
    contrastive_symmetric: bool = Field(True, description="also rank the translations for each English text (en -> xx), one softmax per direction")
    hard_negatives: bool = Field(False, description="parallel.from_concepts: add the English name of a sibling code as a negative")
    train: TrainSettings = TrainSettings(learning_rate=1e-4, batch_size=64, epochs=3)


class Phases(StrictModel):
    contrastive: ContrastivePhase = ContrastivePhase()
    self_distill: SelfDistillPhase = SelfDistillPhase()
    average: AveragePhase = AveragePhase()
    distill: DistillPhase = DistillPhase()


class ConceptSource(StrictModel):
    """Pairs built by ``polyclinic.concepts`` from packaged / local terminologies."""

    table: str | None = Field(None, description="a concept table folder written by `polyclinic concepts load`")
    sources: list[str | dict[str, Any]] = Field(
        default_factory=list, description="polyclinic.concepts.loaders sources: icd10cm, cie10, hpo, a file, or {source: .., options}"
    )
    langs: list[str] | None = Field(None, description="keep only pairs in these languages")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for build_pairs")
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    group_by: str | None = "category"


class DataSettings(StrictModel):
    pairs_files: list[str] = Field(default_factory=list, description="JSONL/TSV/CSV/parquet with anchor, positive[, negative]")
    eval_pairs_files: list[str] = Field(default_factory=list)
    concepts: ConceptSource | None = None
    dev_fraction: float = Field(0.1, ge=0, lt=1, description="held out from pairs_files when no eval_pairs_files")
    max_train_pairs: int | None = None
    max_eval_pairs: int | None = 1000


class CodingSearchEval(StrictModel):
    """Queries in one language against code descriptions in another (held-out codes only)."""

    query_lang: str = "es"
    corpus_lang: str = "en"
    max_queries: int | None = 1000
    corpus_scope: Literal["queries", "codes", "chapters", "all"] = Field(
        "codes", description="candidates: every held-out code (codes), their chapters, or all ICD codes"
    )


class EvalSettings(StrictModel):
    enabled: bool = True
    dev_pairs: bool = True
    coding_search: list[CodingSearchEval] = Field(default_factory=list)
    batch_size: int = 128
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])


class EncoderConfig(StrictModel):
    name: str = "encoder"
    output_dir: str = "runs/encoder"
    seed: int = 42
    base_model: str = Field("packaged:all-MiniLM-L6-v2", description="folder, Hub id, or packaged:all-MiniLM-L6-v2")
    max_seq_length: int | None = 128
    language: list[str] = Field(default_factory=lambda: ["en"], description="for the model card")
    license: str | None = "apache-2.0"
    data: DataSettings = DataSettings()
    phases: Phases = Phases()
    eval: EvalSettings = EvalSettings()

    @model_validator(mode="after")
    def _check(self) -> "EncoderConfig":
        problems: list[str] = []
        for name in ("contrastive", "self_distill"):
            phase = getattr(self.phases, name)
            if phase.enabled and phase.loss.cached and phase.train.deepspeed:
                problems.append(
                    f"phases.{name}: loss.cached=true (GradCache) cannot run under DeepSpeed "
                    f"(train.deepspeed={phase.train.deepspeed!r}); it is reported not to work there. "
                    "Use DDP/FSDP via an accelerate config, or set loss.cached=false and lower train.batch_size"
                )
        if self.phases.self_distill.enabled and self.phases.self_distill.loss.cached:
            problems.append("phases.self_distill.loss.cached: GradCache is not supported for self-distillation; set it to false")
        avg = self.phases.average
        if avg.enabled:
            if avg.source == "seeds" and len(avg.seeds) < 1:
                problems.append("phases.average: source=seeds needs seeds: [s1, s2, ...]")
            if avg.source == "models" and len(avg.models) < 2:
                problems.append("phases.average: source=models needs at least two models")
            if avg.weights is not None and any(w < 0 for w in avg.weights):
                problems.append("phases.average.weights must be non-negative")
        dist = self.phases.distill
        if dist.enabled and not (dist.parallel.files or dist.parallel.from_concepts):
            problems.append("phases.distill: give parallel.files (source/translation) or parallel.from_concepts=true")
        if dist.enabled and dist.mse_weight <= 0 and dist.contrastive_weight <= 0:
            problems.append("phases.distill: mse_weight and contrastive_weight are both 0; nothing to train")
        if dist.enabled and dist.hard_negatives and (not dist.parallel.from_concepts or dist.parallel.files):
            problems.append("phases.distill.hard_negatives needs parallel.from_concepts=true and no parallel.files "
                            "(siblings come from the code system)")
        if dist.enabled and dist.parallel.from_concepts and self.data.concepts is None:
            problems.append("phases.distill.parallel.from_concepts needs a data.concepts section")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def enabled_phases(self) -> list[str]:
        return [p for p in PHASE_ORDER if getattr(self.phases, p).enabled]


def load_encoder_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> EncoderConfig:
    """Load a recipe (``_base_`` inheritance, ``key=value`` overrides) into an :class:`EncoderConfig`."""
    return load_config(EncoderConfig, path, overrides)


def normalize_phase(name: str) -> str:
    try:
        return PHASE_ALIASES[name]
    except KeyError:
        raise ConfigError(f"unknown phase {name!r}; choose from {', '.join(sorted(set(PHASE_ALIASES)))}") from None


def check_runtime(cfg: EncoderConfig) -> None:
    """Refusals that depend on how the process was launched (not visible in the YAML)."""
    import os

    under_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true", "yes")
    for name in ("contrastive", "self_distill"):
        phase = getattr(cfg.phases, name)
        if phase.enabled and phase.loss.cached and under_deepspeed:
            raise ConfigError(
                f"phases.{name}.loss.cached=true (GradCache) was launched under DeepSpeed (accelerate config), "
                "which it is reported not to support. Launch with a DDP/FSDP accelerate config or set loss.cached=false"
            )
