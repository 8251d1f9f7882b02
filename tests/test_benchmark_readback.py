"""A published benchmark dataset is read back by the evaluation suite with `datasets`, locally and from the Hub."""

import json
from pathlib import Path

import pytest

from polyclinic.concepts.benchmarks import BeirDataset, load_beir
from polyclinic.errors import UserError
from polyclinic.hub.benchmark_datasets import write_retrieval_benchmark

QUERIES = [{"_id": "q1", "text": "bronquitis aguda"}, {"_id": "q2", "text": "diabetes tipo 2"}]
CORPUS = [
    {"_id": "J20", "title": "", "text": "Acute bronchitis"},
    {"_id": "E11", "title": "", "text": "Type 2 diabetes mellitus"},
    {"_id": "I10", "title": "", "text": "Essential (primary) hypertension"},
]
QRELS = [{"query-id": "q1", "corpus-id": "J20", "score": 1}, {"query-id": "q2", "corpus-id": "E11", "score": 1}]


def _write(folder: Path) -> Path:
    return write_retrieval_benchmark(folder, queries=QUERIES, corpus=CORPUS, qrels=QRELS, query_lang="es", corpus_lang="en")


def _as_sets(b: BeirDataset):
    return (
        sorted((q["_id"], q["text"]) for q in b.queries),
        sorted((c["_id"], c["text"]) for c in b.corpus),
        sorted((r["query-id"], r["corpus-id"], r["score"]) for r in b.qrels),
    )


def test_pushed_folder_layout_reads_back_identically(tmp_path: Path):
    folder = _write(tmp_path / "bench")
    got = load_beir(folder)
    assert _as_sets(got) == (
        sorted((q["_id"], q["text"]) for q in QUERIES),
        sorted((c["_id"], c["text"]) for c in CORPUS),
        sorted((r["query-id"], r["corpus-id"], r["score"]) for r in QRELS),
    )
    assert got.info["configs"] == {"queries": "queries-es", "corpus": "corpus-en", "qrels": "qrels"}


def test_missing_config_is_a_clear_error(tmp_path: Path):
    folder = _write(tmp_path / "bench")
    for f in (folder / "qrels").glob("*.parquet"):
        f.unlink()
    with pytest.raises(UserError, match="qrels"):
        load_beir(folder)


@pytest.mark.slow
def test_benchmark_dataset_round_trip_through_local_hub(local_hub, tmp_path: Path):
    from polyclinic.hub.push import push_release
    from polyclinic.hub.release import build_config_from_dict

    _write(tmp_path / "bench")
    repo = local_hub.new_repo_id("bench")
    cfg = build_config_from_dict({
        "version": "v0.1.0", "root": str(tmp_path), "endpoint": local_hub.endpoint,
        "artefacts": [{"kind": "benchmark", "path": "bench", "repo_id": repo, "license": "other", "languages": ["es", "en"]}],
    })
    push_release(cfg)
    code = f"""
import json
from polyclinic.concepts.benchmarks import load_beir
b = load_beir({repo!r})
print(json.dumps({{"q": sorted(q["_id"] for q in b.queries), "c": len(b.corpus), "r": len(b.qrels), "cfg": b.info["configs"]}}))
"""
    out = local_hub.run_python(code)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data == {"q": ["q1", "q2"], "c": 3, "r": 2, "cfg": {"queries": "queries-es", "corpus": "corpus-en", "qrels": "qrels"}}
