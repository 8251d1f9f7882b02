"""Every recipe in recipes/pretrain/ loads into PretrainConfig, and the Medical mT5 presets state what the paper
did (sequence lengths, tokens per step on 4 GPUs, Adafactor 1e-3 constant, bf16, one epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from polyclinic.pretraining.config import PretrainConfig, load_pretrain_config

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes" / "pretrain").glob("*.yaml"))
GPUS = 4  # the presets are written for 4 GPUs (Medical mT5: 4xA100)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path: Path):
    cfg = load_pretrain_config(path)
    assert isinstance(cfg, PretrainConfig)
    assert cfg.training.mixed_precision != "fp16"
    assert cfg.model.dropout_rate == 0.0 and not cfg.model.tie_word_embeddings


def test_expected_recipes():
    assert {p.stem for p in RECIPES} >= {"demo", "mt5-small", "mt5-base", "mt5-large", "mt5-xl"}


@pytest.mark.parametrize("name,model,length,tokens", [
    ("mt5-small", "google/mt5-small", 512, 65_536),
    ("mt5-base", "google/mt5-base", 512, 65_536),
    ("mt5-large", "google/mt5-large", 1024, 65_536),
    ("mt5-xl", "google/mt5-xl", 480, 30_720),
])
def test_medical_mt5_presets(name, model, length, tokens):
    cfg = load_pretrain_config(REPO / "recipes" / "pretrain" / f"{name}.yaml")
    t = cfg.training
    assert cfg.model.name_or_path == model and cfg.tokenizer_path == model
    assert cfg.data.input_length == length
    assert t.per_device_batch_size * GPUS * t.gradient_accumulation_steps * length == tokens
    assert cfg.optimizer.name == "adafactor" and cfg.optimizer.lr == 1e-3 and cfg.scheduler.name == "constant"
    assert t.mixed_precision == "bf16" and t.max_steps is None and t.num_epochs == 1.0
    assert t.save_every and t.resume == "auto"


def test_presets_inherit_instead_of_copying():
    for name in ("mt5-base", "mt5-large", "mt5-xl"):
        raw = yaml.safe_load((REPO / "recipes" / "pretrain" / f"{name}.yaml").read_text())
        assert "_base_" in raw and "optimizer" not in raw, name


def test_demo_recipe_is_tiny_and_cpu():
    cfg = load_pretrain_config(REPO / "recipes" / "pretrain" / "demo.yaml")
    assert cfg.model.name_or_path is None and cfg.model.config["d_model"] <= 256
    assert cfg.training.mixed_precision == "no" and cfg.training.max_steps <= 1000


def test_cli_prints_resolved_recipe_with_overrides(capsys):
    from polyclinic.commands.pretrain import main

    assert main([str(REPO / "recipes" / "pretrain" / "mt5-large.yaml"), "training.max_steps=7", "--print-config"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["training"]["max_steps"] == 7 and out["data"]["input_length"] == 1024


def test_cli_bad_key_is_a_user_error():
    from polyclinic.cli import main

    assert main(["pretrain", str(REPO / "recipes" / "pretrain" / "demo.yaml"), "training.lr=1", "--print-config"]) == 2
