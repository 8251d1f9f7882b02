"""Multilingual distillation: the loss terms users choose between, sibling negatives, and defaults that
survive partial overrides (a recipe writing ``train: {epochs: 3}`` must not reset the phase's lr/batch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("sentence_transformers")

from polyclinic.config import ConfigError  # noqa: E402
from polyclinic.encoders.config import DistillPhase, load_encoder_config  # noqa: E402
from polyclinic.encoders.model import build_tiny_model, load_sentence_transformer  # noqa: E402
from polyclinic.encoders.multilingual import MultilingualDistillLoss, parallel_from_table, sibling_negatives  # noqa: E402
from polyclinic.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


def _features(model, columns):
    feats = []
    for texts in columns:
        f = model.tokenize(texts)
        f.pop("modality", None)
        feats.append(f)
    return feats


def test_partial_train_section_keeps_the_phase_defaults(tmp_path):
    defaults = DistillPhase().train
    recipe = tmp_path / "r.yaml"
    recipe.write_text("phases:\n  distill:\n    train:\n      epochs: 2\n  self_distill:\n    train: {max_steps: 7}\n")
    cfg = load_encoder_config(recipe)
    assert cfg.phases.distill.train.epochs == 2
    assert cfg.phases.distill.train.learning_rate == defaults.learning_rate
    assert cfg.phases.distill.train.batch_size == defaults.batch_size
    assert cfg.phases.self_distill.train.learning_rate == 1e-5 and cfg.phases.self_distill.train.max_steps == 7
    cli = load_encoder_config(None, ["phases.distill.train.epochs=1"])
    assert cli.phases.distill.train.batch_size == defaults.batch_size
    # an explicit value still wins over the section default
    assert load_encoder_config(recipe, ["phases.distill.train.batch_size=8"]).phases.distill.train.batch_size == 8


def test_loss_needs_a_term_and_config_says_so(tiny):
    model = load_sentence_transformer(tiny)
    with pytest.raises(UserError, match="mse_weight"):
        MultilingualDistillLoss(model, contrastive_weight=0, mse_weight=0)
    with pytest.raises(ConfigError, match="both 0"):
        load_encoder_config(None, ["phases.distill.enabled=true", "phases.distill.parallel.files=[x.tsv]",
                                   "phases.distill.mse_weight=0", "phases.distill.contrastive_weight=0"])
    with pytest.raises(ConfigError, match="hard_negatives"):
        load_encoder_config(None, ["phases.distill.enabled=true", "phases.distill.parallel.files=[x.tsv]",
                                   "phases.distill.hard_negatives=true"])


def test_loss_terms(tiny):
    model = load_sentence_transformer(tiny)
    model.eval()  # no dropout: the same inputs give the same embeddings
    en = ["acute bronchitis", "heart failure", "kidney stone", "skin rash"]
    es = ["bronquitis aguda", "insuficiencia cardíaca", "cálculo renal", "erupción cutánea"]
    neg = ["chronic bronchitis", "heart attack", "kidney cyst", "skin ulcer"]
    labels = torch.nn.functional.normalize(torch.randn(4, model.get_embedding_dimension()), dim=-1)
    with torch.no_grad():
        mse_only = MultilingualDistillLoss(model, contrastive_weight=0, mse_weight=100)(_features(model, [en, es]), labels)
        both = MultilingualDistillLoss(model, contrastive_weight=1, mse_weight=100)(_features(model, [en, es]), labels)
        contrastive_only = MultilingualDistillLoss(model, contrastive_weight=1, mse_weight=0)(_features(model, [en, es]), labels)
        symmetric = MultilingualDistillLoss(model, contrastive_weight=1, mse_weight=100, symmetric=True)(_features(model, [en, es]), labels)
        with_neg = MultilingualDistillLoss(model, contrastive_weight=1, mse_weight=100)(_features(model, [en, es, neg]), labels)
    assert torch.is_tensor(mse_only) and set(both) == {"mse", "contrastive"} and set(contrastive_only) == {"contrastive"}
    assert torch.allclose(mse_only, both["mse"])
    assert torch.allclose(contrastive_only["contrastive"], both["contrastive"])
    # MSE is only against the teacher's embedding of the English text, for both columns (not the negatives)
    emb = [model.encode(t, convert_to_tensor=True) for t in (en, es)]
    expected = 100 * (((emb[0] - labels) ** 2).mean() + ((emb[1] - labels) ** 2).mean()) / 2
    assert torch.allclose(both["mse"], expected, atol=1e-5)
    assert torch.allclose(with_neg["mse"], both["mse"], atol=1e-6)
    # more candidates in the softmax: the ranking loss can only grow
    assert with_neg["contrastive"] > both["contrastive"]
    assert not torch.allclose(symmetric["contrastive"], both["contrastive"])


def test_per_column_forward_matches_merged_forward(tiny):
    """The CPU path embeds each column on its own (speed); loss values must equal the merged path's."""
    from sentence_transformers.base.losses.merged_forward import embed_columns

    model = load_sentence_transformer(tiny)
    model.eval()
    en = ["a", "acute bronchitis with a rather long name of many words", "b c"]
    es = ["bronquitis", "x", "enfermedad de muchas palabras y mas palabras todavia"]
    with torch.no_grad():
        merged = embed_columns(model, _features(model, [en, es]), separate_first=False)
        separate = [model(f)["sentence_embedding"] for f in _features(model, [en, es])]
    for a, b in zip(merged, separate):
        assert torch.allclose(a, b, atol=1e-5)


def test_sibling_negatives_are_siblings_and_never_the_concept_itself():
    names = {"ICD10:J20.0": "Bronchitis due to A", "ICD10:J20.1": "Bronchitis due to B", "ICD10:J20.2": "Bronchitis due to C",
             "ICD10:K35.2": "Appendicitis with peritonitis", "ICD10:J20": "Acute bronchitis", "ICD10:J21": "Acute bronchiolitis"}
    ids = ["ICD10:J20.0", "ICD10:J20.1", "ICD10:J20", "ICD10:K35.2"]
    negs = sibling_negatives(ids, names, seed=3)
    assert negs[0] in {"Bronchitis due to B", "Bronchitis due to C"}
    assert negs[1] in {"Bronchitis due to A", "Bronchitis due to C"}
    assert negs[2] == "Acute bronchiolitis"  # categories: the same 2-character prefix
    assert negs[3] != "Appendicitis with peritonitis" and negs[3]  # no sibling: another concept, never itself
    assert sibling_negatives(ids, names, seed=3) == negs  # seeded


def test_parallel_pairs_with_hard_negatives_only_use_kept_concepts():
    from datasets import Dataset

    table = Dataset.from_dict({
        "concept_id": ["ICD10:J20.0", "ICD10:J20.0", "ICD10:J20.1", "ICD10:J20.1", "ICD10:J20.2", "ICD10:J20.2"],
        "lang": ["en", "es", "en", "es", "en", "es"],
        "name": ["Bronchitis due to A", "Bronquitis por A", "Bronchitis due to B", "Bronquitis por B",
                 "Bronchitis due to C (held out)", "Bronquitis por C"],
        "synonyms": [[], [], [], [], [], []],
    })
    ds = parallel_from_table(table, "en", ["es"], concept_ids={"ICD10:J20.0", "ICD10:J20.1"}, hard_negatives=True)
    rows = {c: n for c, n in zip(ds["concept_id"], ds["negative"])}
    assert rows == {"ICD10:J20.0": "Bronchitis due to B", "ICD10:J20.1": "Bronchitis due to A"}


def test_distill_cli_unset_flags_keep_the_recipe_defaults(tiny, tmp_path):
    from polyclinic.cli import main

    par = tmp_path / "en-es.tsv"
    par.write_text("".join(f"pain grade {i}\tdolor grado {i}\n" for i in range(24)))
    out = tmp_path / "student"
    d = DistillPhase()
    flip = "--no-symmetric" if d.contrastive_symmetric else "--symmetric"  # the one flag given: the opposite of its default
    assert main(["encoder", "distill", "--teacher", tiny, "--student", tiny, "--parallel", str(par), "--output", str(out),
                 "--max-steps", "2", "--max-seq-length", "16", flip]) == 0
    saved = load_encoder_config(Path(f"{out}.run") / "config.yaml")
    assert saved.phases.distill.train.learning_rate == d.train.learning_rate
    assert saved.phases.distill.mse_weight == d.mse_weight and saved.phases.distill.contrastive_weight == d.contrastive_weight
    assert saved.phases.distill.contrastive_symmetric is (not d.contrastive_symmetric)  # the flag wins
    metrics = json.loads((Path(f"{out}.run") / "metrics.json").read_text())["phases"]["distill"]
    assert metrics["steps"] == 2
