"""A release, described in YAML: which artefacts go to which Hub repos, under which version tag.

Example (``recipes/release/demo.yaml``)::

    version: v0.1.0
    root: runs/demo                 # artefact paths are relative to this folder
    endpoint: null                  # null -> HF_ENDPOINT or huggingface.co
    artefacts:
      - kind: corpus
        path: corpus
        repo_id: polyclinic-demo/demo-corpus
        license: cc-by-4.0
        languages: [es, en]
      - kind: mt5
        path: mt5
        repo_id: polyclinic-demo/mt5-demo

``load_release_config(path, overrides)`` accepts ``key=value`` overrides like every polyclinic config
(``root=runs/demo2 endpoint=http://127.0.0.1:8080``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, field_validator, model_validator

from polyclinic.config import StrictModel, build_config, load_config

ArtefactKind = Literal["mt5", "encoder", "classifier", "corpus", "benchmark", "pairs"]
MODEL_KINDS = ("mt5", "encoder", "classifier")
DATASET_KINDS = ("corpus", "benchmark", "pairs")

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class BenchmarkBuild(StrictModel):
    """How to build a benchmark/pairs dataset folder when ``path`` does not exist yet."""

    builder: str = Field(description="function name in polyclinic.concepts.benchmarks, e.g. coding_search_benchmark")
    source: str | None = Field(default=None, description="saved concept table (folder/file) passed as the first argument")
    sources: list[str | dict[str, Any]] = Field(
        default_factory=list, description="or: concept sources for polyclinic.concepts.loaders.load_sources (icd10cm, cie10, ...)")
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ArtefactSpec(StrictModel):
    kind: ArtefactKind
    path: str = Field(description="run folder (mt5/encoder) or dataset folder (corpus/benchmark/pairs); relative to root")
    repo_id: str
    private: bool = False
    license: str = "apache-2.0"
    languages: list[str] = Field(default_factory=list)
    card_template: str | None = Field(default=None, description="template path relative to the repository root")
    tags: list[str] = Field(default_factory=list)
    base_model: str | None = Field(default=None, description="Hub id of the starting model (default: from config.yaml)")
    datasets: list[str] = Field(default_factory=list, description="Hub ids of training datasets for the card")
    pretty_name: str | None = None
    description: str | None = None
    build: BenchmarkBuild | None = None
    optional: bool = Field(default=False, description="skip (with a warning) when the folder is missing")
    phase: Literal["contrastive", "self_distill", "average", "distill"] | None = Field(
        default=None, description="encoder: publish the model of this phase of the run (BioLORD's -C = contrastive, "
        "-S = self_distill) instead of the run's final model; its card says what the later phases changed")

    @model_validator(mode="after")
    def _phase_only_for_encoders(self) -> "ArtefactSpec":
        if self.phase is not None and self.kind != "encoder":
            raise ValueError(f"phase: {self.phase!r} applies to kind encoder only (this artefact is {self.kind})")
        return self

    def model_folders(self, run_dir: Path) -> tuple[Path, Path]:
        """(the weights folder to publish, the folder whose ``eval/`` describes them) of a model run."""
        run_dir = Path(run_dir)
        if self.phase is None:
            return run_dir / "final", run_dir
        return run_dir / "phases" / self.phase / "final", run_dir / "phases" / self.phase

    @field_validator("repo_id")
    @classmethod
    def _check_repo_id(cls, v: str) -> str:
        if not _REPO_ID.match(v) or ".." in v or "--" in v:
            raise ValueError("must look like 'org/name' (letters, digits, '.', '_', '-'; no '--' or '..')")
        return v

    @property
    def repo_type(self) -> str:
        return "model" if self.kind in MODEL_KINDS else "dataset"

    @property
    def name(self) -> str:
        return self.repo_id.split("/", 1)[1]


class ReleaseConfig(StrictModel):
    version: str = Field(default="v0.1.0", description="git tag created on every repo of the release")
    branch: str | None = Field(default=None, description="also create this branch at the release commit")
    endpoint: str | None = Field(default=None, description="Hub endpoint; null -> HF_ENDPOINT or huggingface.co")
    root: str = Field(default=".", description="folder that artefact paths are relative to")
    staging_dir: str = Field(default="release", description="rendered cards go to <root>/<staging_dir>/<repo>/README.md")
    commit_message: str | None = None
    move_tag: bool = Field(default=False, description="move an existing version tag to the new commit instead of refusing")
    verify_tolerance: float = Field(default=1e-3, description="absolute tolerance for re-run evaluation slices")
    artefacts: list[ArtefactSpec] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _check_version(cls, v: str) -> str:
        if not _VERSION.match(v):
            raise ValueError("must be a git tag name such as v0.1.0")
        return v

    @field_validator("branch")
    @classmethod
    def _check_branch(cls, v: str | None) -> str | None:
        if v is not None and (not _VERSION.match(v.replace("/", "-")) or v in ("main",)):
            raise ValueError("must be a branch name other than main, such as release/v0.1")
        return v

    @model_validator(mode="after")
    def _unique_repos(self) -> "ReleaseConfig":
        seen: dict[str, int] = {}
        for i, a in enumerate(self.artefacts):
            if a.repo_id in seen:
                raise ValueError(f"artefacts.{i}.repo_id {a.repo_id!r} is also used by artefacts.{seen[a.repo_id]}")
            seen[a.repo_id] = i
        return self

    def artefact_path(self, spec: ArtefactSpec) -> Path:
        p = Path(spec.path).expanduser()
        return p if p.is_absolute() else Path(self.root).expanduser() / p

    def staging_path(self, spec: ArtefactSpec) -> Path:
        s = Path(self.staging_dir).expanduser()
        base = s if s.is_absolute() else Path(self.root).expanduser() / s
        return base / spec.repo_id.replace("/", "__")

    def message(self) -> str:
        return self.commit_message or f"polyclinic release {self.version}"


def load_release_config(path: str | Path | None, overrides: Iterable[str] = ()) -> ReleaseConfig:
    """Load a release YAML (``_base_`` inheritance and ``key=value`` overrides as for every config)."""
    return load_config(ReleaseConfig, path, overrides)


def build_config_from_dict(data: dict, source: str = "<dict>") -> ReleaseConfig:
    """Validate a release given as a dict (tests, programmatic use); same errors as the YAML route."""
    return build_config(ReleaseConfig, data, source)
