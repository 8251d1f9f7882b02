"""The ``polyclinic concepts`` config: which sources to load, how to build pairs, the LLM, the benchmark."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from polyclinic.concepts.llm_definitions import LLMConfig
from polyclinic.concepts.pairs import PairConfig
from polyclinic.config import StrictModel


class BenchmarkConfig(StrictModel):
    query_lang: str = "es"
    corpus_lang: str = "en"
    corpus_scope: Literal["queries", "codes", "chapters", "all"] = "codes"
    query_systems: list[str] | None = Field(default_factory=lambda: ["CIE-10"])
    corpus_systems: list[str] | None = Field(default_factory=lambda: ["ICD-10-CM"])
    max_queries: int | None = None


class ConceptsConfig(StrictModel):
    # each: a packaged name (icd10cm, icd10who, cie10, hpo), a file path, or {source: ..., <loader options>}
    sources: list[str | dict[str, Any]] = Field(default_factory=lambda: ["icd10cm", "cie10"])
    pairs: PairConfig = Field(default_factory=PairConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
