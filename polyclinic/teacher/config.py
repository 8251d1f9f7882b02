"""The ``polyclinic teacher label`` recipe: label set, documents, and which teacher labels them."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from polyclinic.config import StrictModel
from polyclinic.llm.client import LLMClientConfig

INSTRUCTIONS = ("You label clinical documents. Choose {how} from the label set below, using the descriptions "
                "and examples. Answer with JSON only.")


class LabelSpec(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    examples: list[str] = Field(default_factory=list, description="few-shot example documents of this label")


class DataSpec(StrictModel):
    source: Literal["file", "icd_demo"] = Field("file", description="a JSONL/CSV/Parquet file, or the packaged ICD demo")
    path: str | None = None
    id_column: str = "id"
    text_column: str = "text"
    lang_column: str | None = "lang"
    gold_column: str | None = Field("gold", description="optional verified labels in the input (used only to "
                                                        "prefill the verification sample, never shown to the teacher)")
    langs: list[str] = Field(default_factory=lambda: ["es", "en"], description="icd_demo languages")
    per_class: int = Field(60, ge=1, description="icd_demo: documents per (language, category)")
    seed: int = 0
    limit: int | None = Field(None, ge=1)


class ZeroShotSpec(StrictModel):
    model: str | None = Field(None, description="sentence-transformers folder/id; None = packaged all-MiniLM-L6-v2")
    temperature: float = Field(0.05, gt=0, description="softmax temperature over cosine similarities")
    batch_size: int = Field(64, ge=1)
    multi_label_threshold: float = Field(0.3, gt=0, le=1)


class TeacherConfig(StrictModel):
    output_dir: str = "runs/teacher"
    labels: list[LabelSpec] = Field(min_length=2)
    multi_label: bool = False
    backend: Literal["llm", "zero_shot"] = "llm"
    llm: LLMClientConfig = Field(default_factory=lambda: LLMClientConfig(cache_dir=".cache/teacher_llm", max_tokens=60))
    zero_shot: ZeroShotSpec = Field(default_factory=ZeroShotSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    instructions: str = INSTRUCTIONS
    max_examples_per_label: int = Field(3, ge=0)
    verified_size: int = Field(200, ge=1, description="documents in the exported verification sample")

    @field_validator("labels")
    @classmethod
    def _unique(cls, v: list[LabelSpec]) -> list[LabelSpec]:
        names = [l.name for l in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate label names: {dup}")
        return v

    @property
    def label_names(self) -> list[str]:
        return [l.name for l in self.labels]

    def label_set_hash(self) -> str:
        blob = json.dumps([l.model_dump() for l in self.labels] + [self.instructions, self.multi_label], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
