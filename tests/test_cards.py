"""Cards rendered from run folders: metadata parses with ModelCard/DatasetCard, eval results round-trip
through ``model-index``, required sections are present, and a broken card is caught."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import DatasetCard, ModelCard

from polyclinic.hub import cards
from polyclinic.hub.release import ArtefactSpec
from test_push_verify import make_corpus, make_encoder_run, make_mt5_run  # shared tiny-artefact builders

VERIF = {"metric": "loss", "value": 3.25, "num_examples": 6}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    corpus = make_corpus(root / "corpus")
    return {"root": root, "corpus": corpus, "mt5": make_mt5_run(root / "mt5", corpus), "encoder": make_encoder_run(root / "encoder")}


def _spec(**kw):
    return ArtefactSpec(**{"path": "x", "repo_id": "polyclinic-demo/x", **kw})


def test_mt5_card_metadata_sections_and_eval_round_trip(runs):
    spec = _spec(kind="mt5", repo_id="polyclinic-demo/mt5-demo", languages=["es", "en"], datasets=["polyclinic-demo/corpus"])
    text = cards.render_model_card(runs["mt5"], spec, version="v0.1.0", verification=VERIF)
    assert cards.validate_card(text, "model", "mt5") == []
    card = ModelCard(text)
    meta = card.data.to_dict()
    assert meta["pipeline_tag"] == "text2text-generation" and meta["library_name"] == "transformers"
    assert meta["language"] == ["es", "en"] and meta["license"] == "apache-2.0" and meta["datasets"] == ["polyclinic-demo/corpus"]
    assert "medical" in meta["tags"] and "polyclinic-v0.1.0" in meta["tags"]
    # model-index -> EvalResult list -> the same numbers as eval/*.json (+ the verification slice)
    results = card.data.eval_results
    numbers = sorted((r.dataset_config, r.metric_type, r.metric_value) for r in results if r.dataset_config)
    assert numbers == [("en", "accuracy", 0.1), ("en", "loss", 5.72), ("es", "accuracy", 0.12), ("es", "loss", 5.61)]
    (slice_,) = [r for r in results if r.dataset_type == cards.VERIFICATION_DATASET]
    assert slice_.metric_value == 3.25
    expected = cards.evals_to_eval_results(cards.read_eval_dir(runs["mt5"]), "mt5")
    expected.append(cards.verification_eval_result("mt5", 3.25, "loss", 6))
    assert cards.eval_roundtrip_problems(text, expected) == []
    # recipe, compute, corpus statistics per language and source, limitations per language, citations
    for needle in ("noise density 0.15", "| Tokens seen | 12,800 |", "| Hardware | cpu (2 cores) |",
                   "| es | packaged-a |", "| en | 5 | 39 |", "not a medical device", "- Spanish:", "- English:",
                   "@article{raffel2020t5", "@inproceedings{xue2021mt5", "garciaferrero2024medicalmt5",
                   "AutoModelForSeq2SeqLM.from_pretrained(repo)", 'repo = "polyclinic-demo/mt5-demo"'):
        assert needle in text, needle


def test_round_trip_check_catches_a_wrong_number(runs):
    spec = _spec(kind="mt5", languages=["es"])
    text = cards.render_model_card(runs["mt5"], spec, verification=VERIF)
    expected = cards.evals_to_eval_results(cards.read_eval_dir(runs["mt5"]), "mt5")
    expected.append(cards.verification_eval_result("mt5", 3.25, "loss", 6))
    tampered = text.replace("value: 5.61", "value: 5.71")
    assert tampered != text
    problems = cards.eval_roundtrip_problems(tampered, expected)
    assert problems and "5.71" in problems[0]


def test_encoder_card(runs):
    spec = _spec(kind="encoder", repo_id="polyclinic-demo/enc", languages=["es", "en"])
    text = cards.render_model_card(runs["encoder"], spec, verification={"metric": "cosine_similarity", "value": 0.9, "num_examples": 6})
    assert cards.validate_card(text, "model", "encoder") == []
    meta = ModelCard(text).data.to_dict()
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "sentence-similarity"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # from config.yaml
    ev = ModelCard(text).data.eval_results
    assert {(r.metric_type, r.metric_value) for r in ev} == {("mrr@10", 0.41), ("ndcg@10", 0.45), ("cosine_similarity", 0.9)}
    assert "@article{remy2024biolord2023" in text and "reimers2019sbert" in text
    assert 'SentenceTransformer("polyclinic-demo/enc")' in text


def test_validation_lists_what_is_missing(runs):
    spec = _spec(kind="mt5", languages=["es"])
    text = cards.render_model_card(runs["mt5"], spec, verification=VERIF)
    broken = text.replace("license: apache-2.0\n", "").replace("## Out-of-scope use", "## Other")
    problems = cards.validate_card(broken, "model", "mt5")
    assert "metadata key 'license' is missing or empty" in problems
    assert "section '## Out-of-scope use' is missing" in problems
    assert cards.validate_card("# no metadata\n", "model") == ["no YAML metadata block at the top of README.md"]
    assert any("language code" in p for p in cards.validate_card(text.replace("- es\n", "- Spanish\n", 1), "model", "mt5"))


def test_missing_languages_and_final_are_user_errors(runs, tmp_path):
    from polyclinic.errors import UserError

    with pytest.raises(UserError, match="no final/"):
        cards.render_model_card(tmp_path, _spec(kind="mt5", languages=["es"]))
    with pytest.raises(UserError, match="no languages known"):
        cards.render_dataset_card(_empty_lang_dataset(tmp_path), _spec(kind="pairs"))


def _empty_lang_dataset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "default").mkdir()
    pq.write_table(pa.Table.from_pylist([{"a": "x", "b": "y"}]), tmp_path / "default" / "train-00000-of-00001.parquet")
    return tmp_path


def test_corpus_card_gets_configs_and_row_counts(runs):
    text = cards.render_dataset_card(runs["corpus"], _spec(kind="corpus", license="cc-by-4.0", tags=["icd-10"]))
    card = DatasetCard(text)
    info = {d["config_name"]: {s["name"]: s["num_examples"] for s in d["splits"]} for d in card.data.dataset_info}
    assert info == {"es": {"train": 5, "validation": 1}, "en": {"train": 4, "validation": 1}}
    assert [c["config_name"] for c in card.data.configs] == ["en", "es"]
    assert "icd-10" in card.data.tags and card.data.license == "cc-by-4.0"
    assert cards.validate_card(text, "dataset", "corpus") == []
    stats = cards.corpus_statistics(runs["corpus"])
    assert stats["total_documents"] == 11 and {s["source"] for s in stats["per_source"]} == {"packaged-a", "packaged-b"}


def test_benchmark_and_pairs_cards(tmp_path):
    from polyclinic.hub.benchmark_datasets import write_pairs_dataset, write_retrieval_benchmark

    bench = write_retrieval_benchmark(tmp_path / "b", queries={"q1": "infarto", "q2": "diabetes"},
                                      corpus={"I21": "Acute myocardial infarction", "E11": "Type 2 diabetes"},
                                      qrels={"q1": {"I21": 1}, "q2": {"E11": 1}}, query_lang="es", corpus_lang="en",
                                      builder="coding_search_benchmark")
    text = cards.render_dataset_card(bench, _spec(kind="benchmark", repo_id="polyclinic-demo/bench", license="cc-by-4.0"))
    assert cards.validate_card(text, "dataset", "benchmark") == []
    card = DatasetCard(text)
    assert sorted(card.data.language) == ["en", "es"] and card.data.task_categories == ["text-retrieval"]
    assert {c["config_name"] for c in card.data.configs} == {"queries-es", "corpus-en", "qrels"}
    assert 'load_dataset("polyclinic-demo/bench", "corpus-en", split="test")' in text
    assert "| `qrels` | test | 2 |" in text

    pairs = write_pairs_dataset(tmp_path / "p", [{"anchor": "infarto", "positive": "ataque cardiaco", "lang": "es"},
                                                 {"anchor": "infarction", "positive": "heart attack", "lang": "en"}])
    text = cards.render_dataset_card(pairs, _spec(kind="pairs", repo_id="polyclinic-demo/pairs"))
    assert cards.validate_card(text, "dataset", "pairs") == []
    assert json.loads(json.dumps(DatasetCard(text).data.dataset_info))[0]["splits"][0]["num_examples"] == 1


def test_card_command_writes_readme(runs, tmp_path, capsys):
    from polyclinic.commands.card import main

    out = tmp_path / "release" / "mt5" / "README.md"
    rc = main([str(runs["mt5"]), "--kind", "mt5", "--repo-id", "polyclinic-demo/mt5-demo", "--language", "es",
               "--language", "en", "--output", str(out), "--no-verification-slice"], prog="polyclinic card")
    assert rc == 0 and out.is_file()
    assert ModelCard(out.read_text()).data.pipeline_tag == "text2text-generation"
