"""End-to-end pretraining runs on a tiny model: artefacts, loss going down, resume keeps the head untied,
exact resume after a SIGKILL, 1 rank == 2 ranks (real `accelerate launch`), DeepSpeed ZeRO-2 on CPU, and the
held-out span-corruption evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from polyclinic.pretraining import load_pretrain_config, train
from test_pretrain_support import REPO, SCRIPT, load_weights, tiny_assets, tiny_overrides  # noqa: F401 (fixture)


def _cfg(run_dir, tiny_assets, **extra):
    corpus, tok = tiny_assets
    return load_pretrain_config(None, tiny_overrides(run_dir, corpus, tok, **extra))


def _losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "logs" / "loss.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_assets):
    """One 24-step run with checkpoints, eval, TensorBoard and the loss plot, shared by several tests."""
    run = tmp_path_factory.mktemp("trained") / "run"
    cfg = _cfg(run, tiny_assets, **{"training.max_steps": 24, "training.save_every": 8, "training.eval_every": 12,
                                    "logging.trackers": "[tensorboard]", "logging.loss_plot": "true",
                                    "scheduler.name": "cosine", "scheduler.warmup_steps": 3,
                                    "scheduler.min_lr_ratio": 0.5})
    metrics = train(cfg)
    return run, metrics


def test_run_folder_artefacts(trained, tiny_assets):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    run, metrics = trained
    for name in ("config.yaml", "manifest.json", "metrics.json", "loss.png", "final/COMPLETE", "final/model.safetensors"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-16", "step-24"]  # keep_last=2
    assert all((run / "checkpoints" / n / "COMPLETE").is_file() for n in ("step-16", "step-24"))
    assert list((run / "logs").rglob("events.out.tfevents*")), "no TensorBoard events"
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("final_train_loss", "eval_loss", "steps", "tokens_seen", "raw_tokens_seen", "wall_time_s",
                "tokens_per_s", "hardware", "world_size", "device"):
        assert saved[key] is not None, key
    assert saved["steps"] == 24 and saved["world_size"] == 1
    assert saved["tokens_seen"] == 24 * 4 * (32 + saved["targets_length"])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["corpus"]["fingerprint"] and manifest["inputs"]["tokenizer"]["fingerprint"]
    model = AutoModelForSeq2SeqLM.from_pretrained(run / "final")
    tok = AutoTokenizer.from_pretrained(run / "final")
    assert model.config.vocab_size >= len(tok)
    assert not torch.equal(model.lm_head.weight, model.shared.weight)
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()


def test_loss_goes_down(trained):
    run, metrics = trained
    losses = _losses(run)
    first = sum(losses[s] for s in (1, 2, 3)) / 3
    last = sum(losses[s] for s in (22, 23, 24)) / 3
    assert last < first - 0.5, (first, last)
    assert metrics["eval_loss"] < first


def test_resume_keeps_head_untied(trained, tmp_path, tiny_assets):
    """Continue the 24-step run to 30 steps from its newest checkpoint: head still separate and both trained."""
    import shutil

    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = load_weights(copy / "final")
    # the schedule's horizon comes back with the scheduler state (24); past it the lr stays at the floor (0.5)
    metrics = train(_cfg(copy, tiny_assets, **{"training.max_steps": 30, "scheduler.name": "cosine",
                                                "scheduler.warmup_steps": 3, "scheduler.min_lr_ratio": 0.5}))
    assert metrics["resumed_from"].endswith("step-24") and metrics["steps"] == 30 and metrics["steps_this_session"] == 6
    after = load_weights(copy / "final")
    assert not torch.equal(after["lm_head.weight"], after["shared.weight"])
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])
    assert not torch.equal(after["shared.weight"], before["shared.weight"])


def test_span_corruption_evaluation(trained, tiny_assets, tmp_path):
    from polyclinic.evaluation.span_corruption import evaluate_span_corruption

    run, metrics = trained
    corpus, _ = tiny_assets
    out = tmp_path / "eval" / "span-corruption.json"
    res = evaluate_span_corruption(run / "final", corpus, input_length=32, batch_size=4, max_batches=2, output=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["task"] == "span-corruption" and res["split"] == "validation" and res["languages"] == ["en", "es"]
    m = res["metrics"]
    assert set(m) >= {"loss", "token_accuracy", "loss_en", "loss_es", "token_accuracy_es"}
    assert res["num_examples"] == 16 and 0.0 <= m["token_accuracy"] <= 1.0
    # the overall loss is the token-weighted mean of the languages (same number of tokens each here)
    assert m["loss"] == pytest.approx((m["loss_en"] + m["loss_es"]) / 2, rel=1e-6)
    # a trained model beats its untrained self (same seed/arch), so the number measures something
    fresh = run.parent / "fresh"
    from polyclinic.pretraining.model import build_model
    from polyclinic.tokenization import load_tokenizer

    tok = load_tokenizer(run / "final")
    torch.manual_seed(0)
    build_model(_cfg(fresh, tiny_assets).model, tok).save_pretrained(fresh)
    tok.save_pretrained(fresh)
    base = evaluate_span_corruption(fresh, corpus, input_length=32, batch_size=4, max_batches=2)
    assert m["loss"] < base["metrics"]["loss"] - 0.5
    # the same model gives the same number whatever the batch size
    again = evaluate_span_corruption(run / "final", corpus, input_length=32, batch_size=8, max_batches=1)
    assert again["metrics"]["loss"] == pytest.approx(m["loss"], rel=1e-5)


def test_gradient_accumulation_matches_the_big_batch(tiny_assets, tmp_path):
    """batch 4 x 1 == batch 2 x 2 accumulation steps (same rows per optimizer step, loss averaged)."""
    extra = {"training.max_steps": 4, "scheduler.name": "linear", "scheduler.warmup_steps": 1}
    m_big = train(_cfg(tmp_path / "big", tiny_assets, **extra))
    m_acc = train(_cfg(tmp_path / "acc", tiny_assets, **{**extra, "training.per_device_batch_size": 2,
                                                          "training.gradient_accumulation_steps": 2}))
    assert m_big["rows_per_step"] == m_acc["rows_per_step"] == 4 and m_acc["gradient_accumulation_steps"] == 2
    a, b = load_weights(tmp_path / "big" / "final"), load_weights(tmp_path / "acc" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=k)
    la, lb = _losses(tmp_path / "big"), _losses(tmp_path / "acc")
    assert [la[s] for s in sorted(la)] == pytest.approx([lb[s] for s in sorted(lb)], rel=1e-5)


def test_bf16_autocast_path_runs_on_cpu(tiny_assets, tmp_path):
    """The GPU recipe path (accelerate bf16 autocast + gradient checkpointing) also runs on CPU autocast."""
    metrics = train(_cfg(tmp_path / "run", tiny_assets, **{"training.mixed_precision": "bf16", "training.max_steps": 3,
                                                           "model.gradient_checkpointing": "true"}))
    assert metrics["mixed_precision"] == "bf16" and torch.isfinite(torch.tensor(metrics["final_train_loss"]))
    weights = load_weights(tmp_path / "run" / "final")
    assert weights["shared.weight"].dtype == torch.float32  # master weights stay fp32; autocast only computes in bf16


def test_fp16_refused_by_the_script(tiny_assets, tmp_path):
    corpus, tok = tiny_assets
    args = tiny_overrides(tmp_path / "run", corpus, tok)
    env = _env()
    env["ACCELERATE_MIXED_PRECISION"] = "fp16"
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "fp16 mixed precision is refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "final").exists()


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(tiny_assets, tmp_path):
    steps = 60
    extra = {"training.max_steps": steps, "training.save_every": 5, "training.keep_last": 2,
             "scheduler.name": "linear", "scheduler.warmup_steps": 5, "optimizer.name": "adamwscale",
             "optimizer.lr": 1e-2}
    corpus, tok = tiny_assets
    killed = tmp_path / "killed"
    args = [sys.executable, str(SCRIPT), *tiny_overrides(killed, corpus, tok, **extra)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = killed / "checkpoints" / "step-10" / "COMPLETE"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed (rc {proc.returncode}): {stderr[-1500:]}"
    assert not (killed / "final").exists() and not (killed / "metrics.json").exists()
    # a leftover of an interrupted checkpoint write must be cleaned, never resumed from
    (killed / "checkpoints" / "step-999.tmp-1").mkdir(parents=True)

    resumed = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from"] and metrics["steps"] == steps
    resume_step = int(Path(metrics["resumed_from"]).name.split("-")[1])
    assert 10 <= resume_step < steps
    assert not (killed / "checkpoints" / "step-999.tmp-1").exists()

    ref = tmp_path / "ref"
    train(_cfg(ref, tiny_assets, **extra))
    a, b = load_weights(killed / "final"), load_weights(ref / "final")
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(a["lm_head.weight"], a["shared.weight"])
    la, lb = _losses(killed), _losses(ref)
    assert sorted(la) == sorted(lb) == list(range(1, steps + 1))  # the log reads like one run
    after = [s for s in la if s > resume_step]
    assert [la[s] for s in after] == pytest.approx([lb[s] for s in after], rel=1e-6, abs=1e-7)


@pytest.mark.slow
def test_two_ranks_match_one_rank(tiny_assets, tmp_path):
    corpus, tok = tiny_assets
    extra = {"training.max_steps": 4, "training.per_device_batch_size": 2, "scheduler.name": "cosine",
             "scheduler.warmup_steps": 1}
    two = tmp_path / "two"
    cmd = ["accelerate", "launch", "--config_file", str(REPO / "accelerate_configs" / "cpu_2ranks.yaml"),
           "--main_process_port", str(_free_port()), str(SCRIPT), *tiny_overrides(two, corpus, tok, **extra)]
    cmd[0] = str(Path(sys.executable).with_name("accelerate"))
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m2 = json.loads((two / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m2["distributed_type"] == "MULTI_CPU", m2
    assert m2["rows_per_step"] == 4

    one = tmp_path / "one"
    m1 = train(_cfg(one, tiny_assets, **{**extra, "training.per_device_batch_size": 4}))
    assert m1["world_size"] == 1 and m1["rows_per_step"] == 4
    a, b = load_weights(one / "final"), load_weights(two / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=k)
    changed = load_weights(one / "final")["shared.weight"]
    l1, l2 = _losses(one), _losses(two)
    assert [l1[s] for s in sorted(l1)] == pytest.approx([l2[s] for s in sorted(l2)], rel=1e-5)
    assert m1["eval_loss"] == pytest.approx(m2["eval_loss"], rel=1e-4)
    assert torch.isfinite(changed).all()


@pytest.mark.slow
def test_deepspeed_zero2_cpu(tiny_assets, tmp_path):
    pytest.importorskip("deepspeed")
    corpus, tok = tiny_assets
    run = tmp_path / "ds"
    extra = {"training.max_steps": 3, "training.save_every": 3}
    cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
           str(REPO / "accelerate_configs" / "deepspeed_zero2_cpu_test.yaml"), "--main_process_port", str(_free_port()),
           str(SCRIPT),
           *tiny_overrides(run, corpus, tok, **extra)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distributed_type"] == "DEEPSPEED", metrics["distributed_type"]
    assert metrics["final_train_loss"] == pytest.approx(metrics["final_train_loss"])  # finite, not NaN
    assert torch.isfinite(torch.tensor(metrics["final_train_loss"]))
    assert (run / "checkpoints" / "step-3" / "COMPLETE").is_file()
    # weights changed: compare with the same seed's initial model
    from accelerate.utils import set_seed

    from polyclinic.pretraining.model import build_model
    from polyclinic.tokenization import load_tokenizer

    set_seed(0)
    init = build_model(_cfg(run, tiny_assets).model, load_tokenizer(tok)).state_dict()
    final = load_weights(run / "final")
    assert not torch.equal(init["shared.weight"], final["shared.weight"])
    assert not torch.equal(final["lm_head.weight"], final["shared.weight"])
