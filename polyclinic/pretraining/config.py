"""Typed config of a span-corruption pretraining run (``recipes/pretrain/*.yaml``).

One YAML = one run. Sections: ``model`` (Hub/local checkpoint or a from-scratch architecture), ``data``
(corpus folder, languages, lengths, noise), ``optimizer``, ``scheduler``, ``training`` (batch, steps, precision,
checkpoints, resume) and ``logging``. Unknown keys are errors (``StrictModel``), so a typo never silently
falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import Field, field_validator, model_validator

from polyclinic.config import ConfigError, StrictModel, load_config

FP16_REFUSAL = (
    "fp16 mixed precision is refused for T5/mT5: activations of the feed-forward blocks exceed the fp16 range "
    "(max 65504) and the loss becomes inf/NaN (a long-known T5 failure). Use `mixed_precision: bf16` on GPUs that "
    "support it (A100/H100/…), or `no` (fp32) elsewhere."
)


class ModelConfig(StrictModel):
    # Hub id or local folder of a T5/mT5 checkpoint (e.g. google/mt5-large); null = from scratch with `config`.
    name_or_path: Optional[str] = None
    # Architecture for a from-scratch model (MT5Config keys: d_model, d_ff, num_layers, num_decoder_layers,
    # num_heads, d_kv, feed_forward_proj, ...). vocab_size comes from the tokenizer unless given.
    config: Optional[dict[str, Any]] = None
    # 0 for pretraining (T5 1.1 / nanoT5); set e.g. 0.1 for small-data continued pretraining.
    dropout_rate: float = Field(0.0, ge=0.0, lt=1.0)
    # mT5 / T5 1.1 have a separate lm_head. False keeps it separate through save, load and resume.
    tie_word_embeddings: bool = False
    gradient_checkpointing: bool = False
    # torch.compile through accelerate's dynamo plugin (inductor); nanoT5 measured ~2x on A100.
    compile: bool = False

    @model_validator(mode="after")
    def _one_source(self):
        if self.name_or_path is None and not self.config:
            raise ValueError("model: give either name_or_path (Hub id / folder) or config (from-scratch architecture)")
        if self.name_or_path is not None and self.config:
            raise ValueError("model: name_or_path and config are exclusive (config builds a model from scratch)")
        return self


class DataConfig(StrictModel):
    corpus: str  # corpus folder: <lang>/train-*.parquet, <lang>/validation-*.parquet
    langs: Optional[list[str]] = None  # null = every language in the corpus
    text_column: str = "text"
    # encoder input length after corruption (T5: 512 -> 568 raw tokens / 114 targets)
    input_length: int = Field(512, ge=8)
    noise_density: float = Field(0.15, gt=0.0, lt=1.0)
    mean_noise_span_length: float = Field(3.0, ge=1.0)
    shuffle: bool = True
    validation_split: str = "validation"
    num_proc: Optional[int] = None  # processes for tokenisation/packing
    num_workers: int = Field(0, ge=0)  # DataLoader workers (collation runs there)


class OptimizerConfig(StrictModel):
    # adafactor: transformers' Adafactor with a fixed lr (Medical mT5: 1e-3 constant)
    # adamw: torch AdamW; adamwscale: nanoT5's AdamW with the step scaled by the parameter RMS
    name: Literal["adafactor", "adamw", "adamwscale"] = "adafactor"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    # Adafactor only
    beta1: Optional[float] = None
    clip_threshold: float = 1.0
    scale_parameter: bool = False


class SchedulerConfig(StrictModel):
    name: Literal["constant", "linear", "cosine", "inverse_sqrt"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # floor of linear/cosine, as a fraction of lr
    total_steps: Optional[int] = None  # decay horizon; null = the run's total optimizer steps


class TrainingConfig(StrictModel):
    per_device_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)  # optimizer steps; null = num_epochs over the packed corpus
    num_epochs: float = Field(1.0, gt=0.0)
    # auto = whatever `accelerate launch` / the accelerate config says (default no); fp16 is refused
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    tf32: bool = True  # TF32 matmuls on Ampere+ GPUs (ignored on CPU)
    # torch intra-op threads per process on CPU (null = torch's default). Tiny models on a busy or small
    # machine run far faster with 1 (measured 540 ms -> 18 ms per step on 2 shared cores).
    cpu_threads: Optional[int] = Field(None, ge=1)
    max_grad_norm: Optional[float] = Field(1.0, gt=0.0)  # null = no clipping
    log_every: int = Field(10, ge=1)
    eval_every: Optional[int] = Field(None, ge=1)  # null = only at the end
    # held-out rows per evaluation (the first N packed validation rows; null = all). The set does not depend
    # on batch size or process count, so eval losses of different launches are comparable.
    eval_max_rows: Optional[int] = Field(256, ge=1)
    eval_batch_size: Optional[int] = Field(None, ge=1)  # per device; null = per_device_batch_size
    save_every: Optional[int] = Field(None, ge=1)  # checkpoint every N optimizer steps; null = no checkpoints
    keep_last: int = Field(2, ge=1)
    resume: str = "auto"  # auto | never | PATH of a checkpoint folder
    # resuming under a config that differs from the checkpoint's (lr, seed, corpus, noise, ...) is refused with a
    # diff unless this is true (`--allow-config-change`); the change is then recorded in config_changes.json.
    allow_config_change: bool = False
    # re-check the sha256 of checkpoint files on resume: auto = when the checkpoint is <= 2 GiB (sizes and file
    # structure are always checked), always, never. See polyclinic/checkpoints.py.
    checkpoint_hashes: Literal["auto", "always", "never"] = "auto"
    save_final: bool = True

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, v):
        # YAML 1.1 reads an unquoted `no` as False
        return "no" if v is False else v


class LoggingConfig(StrictModel):
    trackers: list[Literal["tensorboard", "trackio", "wandb"]] = ["tensorboard"]
    project: str = "polyclinic-pretrain"
    progress_bar: bool = True
    loss_plot: bool = True


class PretrainConfig(StrictModel):
    run_dir: str
    seed: int = 0
    tokenizer: Optional[str] = None  # null = model.name_or_path
    model: ModelConfig
    data: DataConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    training: TrainingConfig = TrainingConfig()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("training")
    @classmethod
    def _resume_value(cls, v: TrainingConfig):
        if v.resume not in ("auto", "never") and not v.resume:
            raise ValueError("training.resume must be auto, never or a checkpoint path")
        return v

    @model_validator(mode="after")
    def _checks(self):
        if self.tokenizer is None and self.model.name_or_path is None:
            raise ValueError("tokenizer: required when the model is built from scratch (model.config)")
        if self.training.mixed_precision == "fp16":
            raise ValueError(FP16_REFUSAL)
        return self

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer or str(self.model.name_or_path)


def load_pretrain_config(path: str | Path | None, overrides: Iterable[str] = ()) -> PretrainConfig:
    """Load a recipe (with ``_base_`` inheritance) plus ``key.sub=value`` overrides into a :class:`PretrainConfig`."""
    return load_config(PretrainConfig, path, overrides)


__all__ = [
    "ConfigError",
    "DataConfig",
    "FP16_REFUSAL",
    "LoggingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PretrainConfig",
    "SchedulerConfig",
    "TrainingConfig",
    "load_pretrain_config",
]
