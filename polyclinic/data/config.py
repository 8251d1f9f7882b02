"""``CorpusConfig``: what `polyclinic corpus build` reads (YAML + ``key=value`` overrides).

Defaults are chosen for medical pretraining text mixed with short terminology documents:

- ``cleaning.min_chars: 20`` / ``min_words: 3`` drop fragments but keep one-line terminology entries.
- ``langid.min_chars: 200``: shorter texts skip language verification. py3langid is unreliable on short,
  Latin-heavy medical strings ("Mycoplasma pneumoniae"), and terminology documents are short; their declared
  language is trusted.
- ``dedup.near.threshold: 0.85`` Jaccard over word 5-gram shingles, 128 permutations.
- ``split.validation_fraction: 0.01`` decided by a hash of ``seed:id`` (stable, order independent).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from polyclinic.config import StrictModel

SourceType = Literal["jsonl", "text", "parquet", "hub", "packaged"]


class SourceConfig(StrictModel):
    """One input. ``path`` for files (a file, a folder or a glob), ``id`` for Hub datasets and packaged sources."""

    type: SourceType
    name: str | None = None  # label used in the ``source`` column and stats; default derived from path/id
    path: str | None = None
    id: str | None = None
    lang: str | None = None  # fixed language of every document ...
    lang_field: str | None = None  # ... or the record field holding it
    text_field: str = "text"
    id_field: str | None = None  # default: a content hash (stable across runs and input order)
    config: str | None = None  # Hub dataset config name
    split: str = "train"  # Hub dataset split
    revision: str | None = None  # Hub dataset revision
    text_unit: Literal["line", "paragraph", "file"] = "paragraph"  # plain text: what one document is
    max_docs: int | None = Field(default=None, ge=1)
    # Provenance for the dataset card (packaged sources fill these in themselves).
    license: str | None = None
    license_url: str | None = None
    citation: str | None = None
    url: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "SourceConfig":
        if self.type in ("jsonl", "text", "parquet") and not self.path:
            raise ValueError(f"a {self.type} source needs `path` (a file, a folder or a glob)")
        if self.type in ("hub", "packaged") and not self.id:
            raise ValueError(f"a {self.type} source needs `id`")
        if self.type != "packaged" and not (self.lang or self.lang_field):
            raise ValueError("set `lang` (every document) or `lang_field` (per record)")
        if self.type == "text" and self.lang_field:
            raise ValueError("plain text sources have no fields: use `lang`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.type == "packaged" or self.type == "hub":
            return str(self.id)
        from pathlib import PurePath

        stem = PurePath(str(self.path)).name
        for suffix in (".jsonl", ".json", ".txt", ".parquet", ".gz"):
            stem = stem.removesuffix(suffix)
        return stem or str(self.path)


class CleaningConfig(StrictModel):
    unicode_normalization: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control_chars: bool = True
    collapse_whitespace: bool = True  # runs of spaces/tabs -> one space; >2 newlines -> one blank line
    keep_newlines: bool = True  # False: every whitespace run becomes one space
    min_chars: int = Field(default=20, ge=0)
    min_words: int = Field(default=3, ge=0)
    max_chars: int | None = Field(default=None, ge=1)  # longer documents are rejected (None: no limit)


class NearDedupConfig(StrictModel):
    enabled: bool = True
    threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingle_words: int = Field(default=5, ge=1)
    # Bounded mode: the LSH index holds at most this many documents; when full it is cleared and refilled,
    # so near-duplicates are found within windows of this many kept documents. None: unbounded (~1-2 KB/doc).
    max_index_docs: int | None = Field(default=2_000_000, ge=1)


class DedupConfig(StrictModel):
    exact: bool = True  # 8-byte digests of the normalised text, in a compact open-addressing table
    near: NearDedupConfig = NearDedupConfig()


class LangIdConfig(StrictModel):
    enabled: bool = True
    min_chars: int = Field(default=200, ge=0)  # shorter texts keep their declared language unverified
    min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)  # below: a disagreement is only counted
    max_chars: int = Field(default=1_000, ge=50)  # only the first max_chars characters are classified (speed)
    on_language_mismatch: Literal["drop", "retag", "keep"] = "drop"


class SplitConfig(StrictModel):
    validation_fraction: float = Field(default=0.01, ge=0.0, lt=1.0)
    seed: str = "polyclinic"


class OutputConfig(StrictModel):
    max_rows_per_shard: int = Field(default=500_000, ge=1)
    max_bytes_per_shard: int = Field(default=256 * 1024 * 1024, ge=1024)  # UTF-8 bytes of text per shard
    batch_rows: int = Field(default=2_000, ge=1)  # rows buffered before a Parquet row group is written ...
    batch_bytes: int = Field(default=4_000_000, ge=1)  # ... or this many bytes of text (bounds memory per writer)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


class CardConfig(StrictModel):
    pretty_name: str | None = None
    description: str | None = None
    license: str | None = None  # override the licence derived from the sources (Hub licence id)
    tags: list[str] = ["medical", "biomedical", "clinical", "multilingual", "pretraining"]


class CorpusConfig(StrictModel):
    name: str
    output_dir: str | None = None  # default data/<name>
    languages: list[str]
    sources: list[SourceConfig]
    cleaning: CleaningConfig = CleaningConfig()
    dedup: DedupConfig = DedupConfig()
    langid: LangIdConfig = LangIdConfig()
    split: SplitConfig = SplitConfig()
    output: OutputConfig = OutputConfig()
    card: CardConfig = CardConfig()
    tokenizer: str | None = None  # tokenizer folder / Hub id to count tokens; None: tokens not counted
    max_rejected_examples: int = Field(default=5, ge=0)  # per reason, in stats.json
    # A requested language that keeps no document fails the build (it is almost always a broken input);
    # true: it only gets no dataset config. Zero documents in total always fails.
    allow_empty_languages: bool = False
    overwrite: bool = True
    progress: bool = True

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        out = [normalize_lang(x) for x in v]
        if not out:
            raise ValueError("list at least one language")
        bad = [x for x in out if not x.isalpha() or not 2 <= len(x) <= 3]
        if bad:
            raise ValueError(f"not ISO 639 language codes: {bad}")
        if len(set(out)) != len(out):
            raise ValueError(f"duplicate languages: {out}")
        return out

    @model_validator(mode="after")
    def _check(self) -> "CorpusConfig":
        if not self.sources:
            raise ValueError("list at least one source")
        labels = [s.label for s in self.sources]
        dups = sorted({x for x in labels if labels.count(x) > 1})
        if dups:
            raise ValueError(f"source names must be unique, repeated: {dups} (set `name:` on each)")
        for s in self.sources:
            if s.lang and normalize_lang(s.lang) not in self.languages:
                raise ValueError(f"source {s.label!r} has lang {s.lang!r}, which is not in languages {self.languages}")
        return self

    @property
    def resolved_output_dir(self) -> str:
        return self.output_dir or f"data/{self.name}"


def normalize_lang(code: object) -> str:
    """``"ES"``, ``"es-ES"``, ``"es_ES"`` -> ``"es"``; anything else is returned lower-cased and stripped."""
    s = str(code or "").strip().lower().replace("_", "-")
    return s.split("-", 1)[0] if s else ""
