"""Unit tests of the pretraining library: config errors, schedules, optimizers, untied head, data order,
checkpoint discovery. Fast (tiny models, no training runs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyclinic.errors import UserError
from polyclinic.pretraining.config import FP16_REFUSAL, load_pretrain_config
from test_pretrain_support import tiny_assets, tiny_overrides  # noqa: F401 (fixture)


def _cfg(tmp_path, tiny_assets, **extra):
    corpus, tok = tiny_assets
    return load_pretrain_config(None, tiny_overrides(tmp_path / "run", corpus, tok, **extra))


# ------------------------------------------------------------------------------------------ config errors
def test_bad_config_key_is_a_clear_error(tmp_path, tiny_assets):
    with pytest.raises(UserError) as err:
        _cfg(tmp_path, tiny_assets, **{"training.max_stepz": 3})
    msg = str(err.value)
    assert "training.max_stepz" in msg and "unknown key" in msg


def test_bad_config_key_in_recipe_names_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("run_dir: x\ntokenizer: t\nmodel: {config: {d_model: 8}}\ndata: {corpus: c}\noptimiser: {lr: 1}\n")
    with pytest.raises(UserError, match=r"r\.yaml[\s\S]*optimiser: unknown key"):
        load_pretrain_config(recipe)


def test_fp16_is_refused_with_reason(tmp_path, tiny_assets):
    with pytest.raises(UserError) as err:
        _cfg(tmp_path, tiny_assets, **{"training.mixed_precision": "fp16"})
    assert "overflow" in str(err.value) or "65504" in str(err.value)
    assert "bf16" in str(err.value)


def test_fp16_from_accelerate_launch_is_refused(tmp_path, tiny_assets, monkeypatch):
    from polyclinic.pretraining.trainer import refuse_fp16

    cfg = _cfg(tmp_path, tiny_assets)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(UserError, match="fp16 mixed precision is refused"):
        refuse_fp16(cfg)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    refuse_fp16(cfg)  # bf16 is fine
    assert "bf16" in FP16_REFUSAL


def test_model_source_required_and_exclusive(tmp_path):
    with pytest.raises(UserError, match="name_or_path"):
        load_pretrain_config(None, ["run_dir=x", "tokenizer=t", "data.corpus=c", "model.dropout_rate=0.0"])
    with pytest.raises(UserError, match="exclusive"):
        load_pretrain_config(None, ["run_dir=x", "model.name_or_path=m", "model.config={d_model: 8}", "data.corpus=c"])
    with pytest.raises(UserError, match="tokenizer"):
        load_pretrain_config(None, ["run_dir=x", "model.config={d_model: 8}", "data.corpus=c"])


# ------------------------------------------------------------------------------------------ schedules
def test_schedules_shapes():
    from polyclinic.pretraining.schedules import LRLambda

    const = LRLambda("constant", 10, 100)
    assert const(0) == pytest.approx(0.1) and const(9) == 1.0 and const(50) == 1.0
    lin = LRLambda("linear", 10, 110, min_lr_ratio=0.0)
    assert lin(10) == 1.0 and lin(60) == pytest.approx(0.5) and lin(110) == 0.0 and lin(500) == 0.0
    cos = LRLambda("cosine", 0, 100, min_lr_ratio=0.1)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    isq = LRLambda("inverse_sqrt", 100, 1000)
    assert isq(99) == 1.0 and isq(100) == 1.0 and isq(400) == pytest.approx(0.5)
    # warmup is linear and never zero
    assert [round(lin(i), 3) for i in range(3)] == [0.1, 0.2, 0.3]
    with pytest.raises(UserError):
        LRLambda("exponential", 0, 10)


def test_scheduler_state_roundtrip():
    from polyclinic.pretraining.config import SchedulerConfig
    from polyclinic.pretraining.schedules import build_scheduler

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    sch = build_scheduler(opt, SchedulerConfig(name="cosine", warmup_steps=2), total_steps=10)
    for _ in range(4):
        opt.step()
        sch.step()
    state = sch.state_dict()
    opt2 = torch.optim.SGD([p], lr=1.0)
    sch2 = build_scheduler(opt2, SchedulerConfig(name="cosine", warmup_steps=2), total_steps=10)
    sch2.load_state_dict(state)
    assert sch2.get_last_lr() == sch.get_last_lr()


# ------------------------------------------------------------------------------------------ optimizers
@pytest.mark.parametrize("name", ["adafactor", "adamw", "adamwscale"])
def test_optimizers_reduce_a_quadratic(name):
    from polyclinic.pretraining.config import OptimizerConfig
    from polyclinic.pretraining.optim import build_optimizer

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 8)
    target = torch.randn(16, 8)
    x = torch.randn(16, 8)
    opt = build_optimizer(model, OptimizerConfig(name=name, lr=1e-2 if name != "adamwscale" else 5e-2))
    first = None
    for _ in range(60):
        loss = (model(x) - target).pow(2).mean()
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.7 * first


def test_adamwscale_step_scales_with_parameter_rms():
    from polyclinic.pretraining.optim import AdamWScale

    small = torch.nn.Parameter(torch.full((4,), 0.01))
    big = torch.nn.Parameter(torch.full((4,), 10.0))
    opt = AdamWScale([small, big], lr=0.1)
    small.grad = torch.ones(4)
    big.grad = torch.ones(4)
    opt.step()
    d_small = 0.01 - small.detach()[0].item()
    d_big = 10.0 - big.detach()[0].item()
    # first Adam step has magnitude lr; scaled by rms(p): 0.01 and 10
    assert d_small == pytest.approx(0.1 * 0.01, rel=1e-3)
    assert d_big == pytest.approx(0.1 * 10.0, rel=1e-3)


# ------------------------------------------------------------------------------------------ untied lm_head
def _tiny_model(tiny_assets, tmp_path):
    from polyclinic.pretraining.model import build_model
    from polyclinic.tokenization import load_tokenizer

    cfg = _cfg(tmp_path, tiny_assets)
    tok = load_tokenizer(tiny_assets[1])
    return build_model(cfg.model, tok), tok


def test_untied_head_survives_save_and_load(tmp_path, tiny_assets):
    from transformers import AutoModelForSeq2SeqLM

    from polyclinic.pretraining.model import is_tied, load_model

    model, _ = _tiny_model(tiny_assets, tmp_path)
    assert not is_tied(model)
    assert not torch.equal(model.lm_head.weight, model.shared.weight)
    model.save_pretrained(tmp_path / "m")
    for loaded in (AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "m"), load_model(str(tmp_path / "m"))):
        assert loaded.lm_head.weight.data_ptr() != loaded.shared.weight.data_ptr()
        assert not torch.equal(loaded.lm_head.weight, loaded.shared.weight)
        assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
        assert torch.equal(loaded.shared.weight, model.shared.weight)


def test_equal_valued_separate_head_is_untied_again_on_load(tmp_path, tiny_assets):
    """transformers 5.23 ties a stored lm_head that equals the embeddings; load_model restores two parameters."""
    from transformers import AutoModelForSeq2SeqLM

    from polyclinic.pretraining.model import is_tied, load_model

    model, _ = _tiny_model(tiny_assets, tmp_path)
    with torch.no_grad():
        model.lm_head.weight.copy_(model.shared.weight)
    model.save_pretrained(tmp_path / "m")
    plain = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "m")
    assert is_tied(plain)  # the trap this guards against (if transformers changes, this documents it)
    ours = load_model(str(tmp_path / "m"))
    assert not is_tied(ours) and torch.equal(ours.lm_head.weight, ours.shared.weight)
    with torch.no_grad():
        ours.lm_head.weight.add_(1.0)
    assert not torch.equal(ours.lm_head.weight, ours.shared.weight)


def test_tied_option_keeps_sharing(tmp_path, tiny_assets):
    from polyclinic.pretraining.model import build_model, is_tied
    from polyclinic.tokenization import load_tokenizer

    cfg = _cfg(tmp_path, tiny_assets, **{"model.tie_word_embeddings": "true"})
    assert is_tied(build_model(cfg.model, load_tokenizer(tiny_assets[1])))


def test_flops_estimate_counts_encoder_and_decoder_tokens(tmp_path, tiny_assets):
    from polyclinic.pretraining.model import flops_per_row, parameter_counts

    model, _ = _tiny_model(tiny_assets, tmp_path)
    c = parameter_counts(model)
    assert c["total"] == sum(p.numel() for p in model.parameters())
    assert flops_per_row(c, 512, 114) == 6.0 * (c["encoder"] * 512 + (c["decoder"] + c["lm_head"]) * 114)


# ------------------------------------------------------------------------------------------ data order
def test_one_rank_sees_what_two_ranks_see_together(tmp_path, tiny_assets):
    from polyclinic.pretraining.data import MicroBatches, load_split, pack_split
    from polyclinic.span_corruption import SpanCorruptionCollator
    from polyclinic.tokenization import load_tokenizer

    corpus, tokp = tiny_assets
    tok = load_tokenizer(tokp)
    col = SpanCorruptionCollator(tok, 32, 0.15, 3.0, seed=0)
    split = pack_split(load_split(corpus, None, "train"), tok, col.raw_length)
    n = len(split)
    one = MicroBatches(split, col, 4, 1, 0, seed=3, shuffle=True, start=0, stop=3 * (n // 4))
    r0 = MicroBatches(split, col, 2, 2, 0, seed=3, shuffle=True, start=0, stop=3 * (n // 4))
    r1 = MicroBatches(split, col, 2, 2, 1, seed=3, shuffle=True, start=0, stop=3 * (n // 4))
    for k in (0, 5, n // 4 - 1, n // 4, 2 * (n // 4) + 3):  # across epoch boundaries too
        a = one[k]
        b0, b1 = r0[k], r1[k]
        for key in ("input_ids", "labels", "decoder_input_ids"):
            assert torch.equal(a[key], torch.cat([b0[key], b1[key]]))
    # epochs are different permutations; a resumed dataset continues exactly
    assert not np.array_equal(one.permutation(0), one.permutation(1))
    resumed = MicroBatches(split, col, 4, 1, 0, seed=3, shuffle=True, start=7, stop=20)
    assert torch.equal(resumed[0]["input_ids"], one[7]["input_ids"])


def test_eval_rows_do_not_depend_on_batching(tmp_path, tiny_assets):
    from polyclinic.pretraining.data import eval_batches, load_split, pack_split
    from polyclinic.span_corruption import SpanCorruptionCollator
    from polyclinic.tokenization import load_tokenizer

    corpus, tokp = tiny_assets
    tok = load_tokenizer(tokp)
    col = SpanCorruptionCollator(tok, 32, 0.15, 3.0, seed=1)
    split = pack_split(load_split(corpus, None, "validation"), tok, col.raw_length)
    whole = torch.cat([b["input_ids"] for b in eval_batches(split, col, 5, 13)])
    parts = [list(eval_batches(split, col, 2, 13, rank=r, world_size=3)) for r in range(3)]
    assert len({len(p) for p in parts}) == 1  # same number of forwards on every rank
    kept = [b for p in parts for b in p if "_skip" not in b]
    got = torch.cat([b["input_ids"] for b in kept])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, whole.tolist())) and len(whole) == 13


# ------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_discovery_ignores_incomplete_and_prunes(tmp_path):
    from polyclinic.pretraining import checkpoint as ck

    run = tmp_path / "run"
    for step, complete in ((2, True), (4, True), (6, True), (8, False)):
        d = ck.checkpoints_dir(run) / f"step-{step}"
        d.mkdir(parents=True)
        (d / ck.STATE_FILE).write_text("{}")
        if complete:
            (d / "COMPLETE").write_text("ok")
    (ck.checkpoints_dir(run) / "step-10.tmp-123").mkdir()
    assert ck.latest_checkpoint(run).name == "step-6"
    assert ck.resolve_resume("never", run) is None
    assert ck.resolve_resume("auto", run).name == "step-6"
    with pytest.raises(UserError, match="not a complete checkpoint"):
        ck.resolve_resume(str(ck.checkpoints_dir(run) / "step-8"), run)
    removed = ck.clean_leftovers(run)
    assert [p.name for p in removed] == ["step-10.tmp-123"]
    ck.prune(run, keep_last=2)
    assert [p.name for _, p in ck.list_checkpoints(run)] == ["step-4", "step-6"]


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path, tiny_assets):
    from polyclinic.pretraining.model import prepare_for_training
    from polyclinic.span_corruption import SpanCorruptionCollator

    model, tok = _tiny_model(tiny_assets, tmp_path)
    col = SpanCorruptionCollator(tok, 32, 0.15, 3.0, seed=0)
    batch = col([{"input_ids": np.arange(3, 3 + col.raw_length) % 50 + 3, "index": i} for i in range(2)])
    model.train()
    model(**batch).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    cfg = _cfg(tmp_path, tiny_assets, **{"model.gradient_checkpointing": "true"})
    prepare_for_training(model, cfg.model)
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    model(**batch).loss.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)


def test_yaml_no_means_no_mixed_precision(tmp_path, tiny_assets):
    corpus, tok = tiny_assets
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"run_dir: x\ntokenizer: {tok}\nmodel: {{config: {{d_model: 8}}}}\ndata: {{corpus: {corpus}}}\n"
                      "training: {mixed_precision: no}\n")
    assert load_pretrain_config(recipe).training.mixed_precision == "no"
