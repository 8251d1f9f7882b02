"""Encoder training and encoding throughput: polyclinic's runner vs plain SentenceTransformerTrainer.

Same process, same model (the packaged all-MiniLM-L6-v2, max_seq_length 32 as in the demo), same pairs (packaged
ICD-10 concept pairs from polyclinic.concepts when available, else synthetic medical-looking pairs), same
loss (MultipleNegativesRankingLoss), same batch sampler (NO_DUPLICATES), same optimizer settings and
number of steps. Each side runs ``--repeats`` times, interleaved (A B A B ...) so the load of a shared
machine hits both alike; the best run of each counts. polyclinic's number includes what the runner adds
(COMPLETE-marker callback, log history); checkpoint/final-model writes are excluded on both sides.

Also measures encode throughput (sentences/s) of the demo model (``--model``, default the demo run's
``final/`` when it exists) against the base MiniLM in the same process.

Prints pairs/s, sentences/s and the ratios; writes ``benchmarks/results/encoder.json``.

    python benchmarks/bench_encoder.py [--steps 12 --batch-size 16 --repeats 2 --model runs/demo/encoder/final]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "encoder.json"
ROOT = Path(__file__).resolve().parents[1]


def load_pairs(n: int, seed: int = 0):
    from datasets import Dataset

    try:
        from polyclinic.concepts.loaders import load_sources
        from polyclinic.concepts.pairs import PairConfig, build_pairs

        table, _ = load_sources([{"source": "icd10cm", "max_code_length": 4}, "cie10"])
        pairs = build_pairs(table, PairConfig(kinds=["description", "cross_lang"], hard_negatives=False, seed=seed)).train
        pairs = pairs.shuffle(seed=seed).select(range(min(n, len(pairs))))
        return pairs.select_columns(["anchor", "positive"]), "packaged ICD-10-CM + CIE-10 concept pairs"
    except Exception as exc:  # noqa: BLE001 - fall back to synthetic pairs
        print(f"(concept pairs unavailable: {exc}; using synthetic pairs)")
    organs = ["heart", "lung", "liver", "kidney", "brain", "skin", "bone", "eye", "colon", "thyroid"]
    kinds = ["acute", "chronic", "congenital", "infectious", "malignant", "traumatic"]
    anchors, positives = [], []
    for i in range(n):
        o, k = organs[i % len(organs)], kinds[(i // len(organs)) % len(kinds)]
        anchors.append(f"{k} disorder of the {o}, type {i}")
        positives.append(f"{k.capitalize()} {o} disease (variant {i}) is a kind of {o} disorder")
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), "synthetic pairs"


def base_model(max_seq_length: int):
    from polyclinic.encoders.model import load_sentence_transformer

    return load_sentence_transformer("packaged:all-MiniLM-L6-v2", max_seq_length=max_seq_length, device="cpu")


def run_plain(pairs, steps: int, batch_size: int, max_seq_length: int, out: str) -> float:
    """The reference: what a user writes from the sentence-transformers documentation."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = base_model(max_seq_length)
    args = SentenceTransformerTrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=1e-4,
        warmup_steps=0.1, weight_decay=0.01, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
        report_to="none", logging_steps=10, seed=0, data_seed=0, disable_tqdm=True, dataloader_pin_memory=False,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs, loss=MultipleNegativesRankingLoss(model))
    t = time.perf_counter()
    trainer.train()
    return steps * batch_size / (time.perf_counter() - t)


def run_polyclinic(pairs, steps: int, batch_size: int, max_seq_length: int, out: str) -> float:
    import polyclinic.encoders.trainer as runner
    from polyclinic.encoders.config import ContrastiveLossSettings, TrainSettings
    from polyclinic.encoders.contrastive import build_contrastive_loss

    model = base_model(max_seq_length)
    settings = TrainSettings(max_steps=steps, batch_size=batch_size, learning_rate=1e-4, warmup_ratio=0.1,
                             save_steps=10 * steps, logging_steps=10, resume=False)
    loss = build_contrastive_loss(model, ContrastiveLossSettings())
    # train_model times trainer.train() only, like the reference (the final-model write is skipped)
    res = runner.train_model(model, pairs, loss, settings, out, seed=0, save_final=False)
    return steps * batch_size / res.metrics["seconds"]


def encode_speed(model, sentences, batch_size: int, repeats: int = 2) -> float:
    model.encode(sentences[:batch_size], batch_size=batch_size)  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        model.encode(sentences, batch_size=batch_size, show_progress_bar=False)
        best = max(best, len(sentences) / (time.perf_counter() - t))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-seq-length", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--encode-sentences", type=int, default=1000)
    ap.add_argument("--model", default=None, help="demo model folder (default: runs/demo/encoder/final or runs/encoder-demo/final if present)")
    ap.add_argument("--output", default=str(RESULTS))
    args = ap.parse_args()

    import torch

    from polyclinic.logging_utils import setup_logging

    setup_logging("WARNING")
    pairs, source = load_pairs(args.steps * args.batch_size * 2)
    print(f"data: {len(pairs)} {source}; model all-MiniLM-L6-v2 (max_seq_length {args.max_seq_length}); "
          f"{args.steps} steps x batch {args.batch_size}; torch threads {torch.get_num_threads()}")
    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # alternate which side goes first, so an order effect (warm caches, load drift) favours neither
            if r % 2 == 0:
                plain.append(run_plain(pairs, args.steps, args.batch_size, args.max_seq_length, f"{tmp}/plain{r}"))
                ours.append(run_polyclinic(pairs, args.steps, args.batch_size, args.max_seq_length, f"{tmp}/ours{r}"))
            else:
                ours.append(run_polyclinic(pairs, args.steps, args.batch_size, args.max_seq_length, f"{tmp}/ours{r}"))
                plain.append(run_plain(pairs, args.steps, args.batch_size, args.max_seq_length, f"{tmp}/plain{r}"))
            print(f"  repeat {r}: plain {plain[-1]:.1f} pairs/s   polyclinic {ours[-1]:.1f} pairs/s")
    import statistics

    train_ratio = max(ours) / max(plain)
    median_ratio = statistics.median(ours) / statistics.median(plain)
    print(f"training: plain SentenceTransformerTrainer {max(plain):.1f} pairs/s, polyclinic runner {max(ours):.1f} pairs/s, "
          f"ratio best/best {train_ratio:.3f}, median/median {median_ratio:.3f} (target ~1.0: the runner adds no work per step)")

    from polyclinic.encoders.model import load_sentence_transformer

    candidates = [ROOT / "runs" / "demo" / "encoder" / "final", ROOT / "runs" / "encoder-demo" / "final"]  # make demo, then encoder train
    demo = args.model or next((str(c) for c in candidates if c.is_dir()), None)
    sentences = [f"{a}" for a in pairs["anchor"]] + [p for p in pairs["positive"]]
    sentences = (sentences * (1 + args.encode_sentences // max(1, len(sentences))))[: args.encode_sentences]
    base = base_model(args.max_seq_length)
    base_sps = encode_speed(base, sentences, 128)
    demo_sps = None
    if demo:
        dm = load_sentence_transformer(demo, max_seq_length=args.max_seq_length, device="cpu")
        demo_sps = encode_speed(dm, sentences, 128)
    print(f"encode: base MiniLM {base_sps:.1f} sentences/s" + (f", demo model {demo_sps:.1f} sentences/s, ratio {demo_sps / base_sps:.3f}" if demo_sps else " (no demo model found)"))

    result = {
        "benchmark": "encoder",
        "data": source,
        "model": "all-MiniLM-L6-v2",
        "max_seq_length": args.max_seq_length,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "train_pairs_per_s": {"plain_sentence_transformers": round(max(plain), 2), "polyclinic": round(max(ours), 2),
                              "all_plain": [round(x, 2) for x in plain], "all_polyclinic": [round(x, 2) for x in ours]},
        "train_ratio_polyclinic_over_plain": round(train_ratio, 4),
        "train_ratio_median": round(median_ratio, 4),
        "encode_sentences_per_s": {"base": round(base_sps, 1), "demo": round(demo_sps, 1) if demo_sps else None,
                                   "demo_model": demo, "batch_size": 128, "sentences": len(sentences)},
        "encode_ratio_demo_over_base": round(demo_sps / base_sps, 4) if demo_sps else None,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "cuda": torch.cuda.is_available()},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
