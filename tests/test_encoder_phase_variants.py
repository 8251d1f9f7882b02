"""BioLORD-style phase variants: every phase of an encoder run keeps evaluation records of its own weights, a
release can publish a phase's model (-C, -S) with a card of that model's numbers, and cards say plainly what
each phase changed (including "did not help")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")

from polyclinic.errors import UserError  # noqa: E402
from polyclinic.hub import cards  # noqa: E402
from polyclinic.hub.release import ArtefactSpec  # noqa: E402


def test_phase_effects_verdicts_follow_the_runs_own_numbers():
    m = lambda r: {"t1": {"recall@10": r}, "t2": {"recall@10": r}}  # noqa: E731
    metrics = {
        "eval": {"base": m(0.50), "contrastive": m(0.70), "self_distill": m(0.69), "average": m(0.692), "distill": m(0.9)},
        "phases": {"contrastive": {"steps": 10}, "self_distill": {"steps": 5}, "average": {},
                   "distill": {"steps": 7, "student_before": m(0.4)}},
    }
    effects = {e["phase"]: e for e in cards.phase_effects(metrics)}
    assert effects["contrastive"]["verdict"] == "helped" and effects["contrastive"]["mean_change"] == pytest.approx(0.2)
    assert effects["self_distill"]["verdict"] == "did not help"
    assert effects["self_distill"]["rows"][0]["before"] == 0.70  # before = the previous phase's output
    assert effects["average"]["verdict"] == "no measurable change"  # before = self_distill
    assert effects["distill"]["rows"][0]["before"] == 0.4  # the student before distillation, not the teacher


def test_phase_is_only_for_encoders():
    with pytest.raises(ValueError, match="encoder only"):
        ArtefactSpec(kind="mt5", path="x", repo_id="o/x", phase="contrastive")


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    from polyclinic.encoders.config import load_encoder_config
    from polyclinic.encoders.model import build_tiny_model
    from polyclinic.encoders.trainer import run_encoder_recipe

    root = tmp_path_factory.mktemp("phases")
    tiny = build_tiny_model(root / "tiny", seed=0)
    pairs = root / "pairs.jsonl"
    organs = ["heart", "lung", "liver", "kidney", "brain", "skin", "bone", "eye"]
    pairs.write_text("".join(json.dumps({"anchor": f"{organs[i % 8]} disease {i}", "positive": f"disorder of the {organs[i % 8]} {i}"})
                             + "\n" for i in range(64)))
    run = root / "run"
    cfg = load_encoder_config(None, [
        f"base_model={tiny}", f"output_dir={run}", f"data.pairs_files=[{pairs}]", "max_seq_length=16", "data.dev_fraction=0.25",
        "phases.contrastive.train.max_steps=3", "phases.contrastive.train.batch_size=8", "phases.contrastive.train.save_steps=3",
        "phases.self_distill.enabled=true", "phases.self_distill.train.max_steps=2", "phases.self_distill.train.batch_size=8",
        "phases.self_distill.train.save_steps=2", "language=[en]",
    ])
    run_encoder_recipe(cfg)
    return run


def test_every_phase_keeps_records_of_its_own_weights(encoder_run):
    from polyclinic.evaluation.report import weights_sha256

    for phase in ("contrastive", "self_distill"):
        folder = encoder_run / "phases" / phase
        records = [json.loads(p.read_text()) for p in (folder / "eval").glob("*.json")]
        assert records, phase
        assert {r["weights_sha256"] for r in records} == {weights_sha256(folder / "final")}
    assert weights_sha256(encoder_run / "phases" / "contrastive" / "final") != weights_sha256(encoder_run / "final")


def test_phase_variant_card_describes_that_phases_weights(encoder_run):
    spec_c = ArtefactSpec(kind="encoder", path="run", repo_id="o/enc-C", phase="contrastive", languages=["en"])
    spec_final = ArtefactSpec(kind="encoder", path="run", repo_id="o/enc", languages=["en"])
    text_c = cards.render_model_card(encoder_run, spec_c)
    text_final = cards.render_model_card(encoder_run, spec_final)
    assert cards.validate_card(text_c, "model", "encoder") == []
    assert "after the contrastive (-C) phase" in text_c and "after the contrastive" not in text_final
    metrics = json.loads((encoder_run / "metrics.json").read_text())
    task = sorted(metrics["eval"]["contrastive"])[0]
    expected_c = cards.evals_to_eval_results(cards.read_eval_dir(encoder_run / "phases" / "contrastive"), "encoder")
    assert cards.eval_roundtrip_problems(text_c, expected_c) == []
    got = {(r.dataset_name, r.metric_type): r.metric_value for r in cards.card_eval_results(text_c)}
    assert got[(task, "mrr@10")] == metrics["eval"]["contrastive"][task]["mrr@10"]
    # both cards show the per-phase table with a verdict for every phase
    for text in (text_c, text_final):
        assert "## What each phase did" in text
        assert "**contrastive (-C):" in text and "**self-distillation (-S):" in text


def test_phase_variant_of_a_run_without_that_phase_is_a_clear_error(encoder_run):
    spec = ArtefactSpec(kind="encoder", path="run", repo_id="o/enc-avg", phase="average", languages=["en"])
    with pytest.raises(UserError, match="phases/average/final"):
        cards.render_model_card(encoder_run, spec)
