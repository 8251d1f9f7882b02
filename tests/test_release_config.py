"""Release YAML: typed, strict, overridable; the demo release parses; benchmark folders are Hub-loadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyclinic.config import ConfigError
from polyclinic.hub.release import build_config_from_dict, load_release_config

REPO = Path(__file__).resolve().parents[1]


def test_demo_release_parses_and_resolves_paths_under_root(tmp_path):
    cfg = load_release_config(REPO / "recipes" / "release" / "demo.yaml", [f"root={tmp_path}", "endpoint=http://127.0.0.1:9"])
    kinds = [a.kind for a in cfg.artefacts]
    assert kinds == ["corpus", "benchmark", "pairs", "mt5", "encoder", "encoder", "classifier"]
    assert [a.phase for a in cfg.artefacts if a.kind == "encoder"] == [None, "contrastive"]
    assert cfg.endpoint == "http://127.0.0.1:9" and cfg.version == "v0.1.0"
    assert all(a.repo_id.startswith("polyclinic-demo/") for a in cfg.artefacts)
    mt5 = next(a for a in cfg.artefacts if a.kind == "mt5")
    assert cfg.artefact_path(mt5) == tmp_path / "mt5" and mt5.repo_type == "model"
    assert cfg.staging_path(mt5) == tmp_path / "release" / "polyclinic-demo__mt5-demo"
    bench = next(a for a in cfg.artefacts if a.kind == "benchmark")
    assert bench.repo_type == "dataset" and bench.build.builder == "coding_search_benchmark"


def test_typos_and_bad_values_are_reported_with_their_key(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("version: v1\nartefacts:\n  - kind: mt5\n    path: x\n    repo_id: a/b\n    licence: mit\n")
    with pytest.raises(ConfigError, match=r"artefacts\.0\.licence: unknown key"):
        load_release_config(bad)
    with pytest.raises(ConfigError, match="artefacts.0.kind"):
        build_config_from_dict({"artefacts": [{"kind": "reranker", "path": "x", "repo_id": "a/b"}]})
    with pytest.raises(ConfigError, match="artefacts.0.repo_id"):
        build_config_from_dict({"artefacts": [{"kind": "mt5", "path": "x", "repo_id": "no-org"}]})
    with pytest.raises(ConfigError, match="version"):
        build_config_from_dict({"version": "v 1", "artefacts": []})
    with pytest.raises(ConfigError, match="also used by artefacts.0"):
        build_config_from_dict({"artefacts": [{"kind": "mt5", "path": "x", "repo_id": "a/b"},
                                              {"kind": "encoder", "path": "y", "repo_id": "a/b"}]})


def test_overrides_and_absolute_paths(tmp_path):
    cfg = build_config_from_dict({"root": "runs/x", "artefacts": [{"kind": "corpus", "path": str(tmp_path), "repo_id": "a/b"}]})
    assert cfg.artefact_path(cfg.artefacts[0]) == tmp_path
    assert cfg.message() == "polyclinic release v0.1.0"


def test_retrieval_benchmark_folder_loads_per_config(tmp_path):
    from datasets import load_dataset

    from polyclinic.hub.benchmark_datasets import write_retrieval_benchmark
    from polyclinic.hub.cards import dataset_layout

    out = write_retrieval_benchmark(
        tmp_path / "bench",
        queries={"q1": "infarto agudo de miocardio", "q2": "diabetes tipo 2"},
        corpus=[{"code": "I21", "text": "Acute myocardial infarction"}, {"code": "E11", "text": "Type 2 diabetes mellitus"},
                {"code": "J18", "text": "Pneumonia, unspecified organism"}],
        qrels=[("q1", "I21", 1), ("q2", "E11", 1)],
        query_lang="es", corpus_lang="en", builder="test",
    )
    assert set(dataset_layout(out)) == {"queries-es", "corpus-en", "qrels"}
    q = load_dataset("parquet", data_files=str(out / "queries-es" / "test-00000-of-00001.parquet"), split="train")
    assert q.column_names == ["_id", "text"] and len(q) == 2
    c = load_dataset("parquet", data_files=str(out / "corpus-en" / "*.parquet"), split="train")
    assert c.column_names == ["_id", "title", "text"] and c[0]["_id"] == "I21"


def test_retrieval_benchmark_rejects_dangling_qrels(tmp_path):
    from polyclinic.errors import UserError
    from polyclinic.hub.benchmark_datasets import write_retrieval_benchmark

    with pytest.raises(UserError, match="unknown ids"):
        write_retrieval_benchmark(tmp_path / "b", queries={"q1": "x"}, corpus={"d1": "y"}, qrels={"q1": {"d9": 1}},
                                  query_lang="es", corpus_lang="en")
    assert not (tmp_path / "b").exists()


def test_pairs_dataset_one_config_per_language(tmp_path):
    from polyclinic.hub.benchmark_datasets import write_benchmark
    from polyclinic.hub.cards import dataset_layout

    pairs = [{"anchor": "infarto", "positive": "ataque al corazón", "lang": "es", "split": "train"},
             {"anchor": "infarction", "positive": "heart attack", "lang": "en", "split": "train"},
             {"anchor": "neumonía", "positive": "infección pulmonar", "lang": "es", "split": "test"}]
    out = write_benchmark(tmp_path / "pairs", pairs, split_column="split")
    layout = dataset_layout(out)
    assert {k: sorted(v) for k, v in layout.items()} == {"es": ["test", "train"], "en": ["train"]}
