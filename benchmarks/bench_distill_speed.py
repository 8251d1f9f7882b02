"""Multilingual distillation throughput: the kit's distill phase against a bare sentence-transformers training
of the same losses, batches and data, in one process (ratios, not absolute times, are the result).

* reference: ``SentenceTransformerTrainer`` + a 15-line loss that adds ``MSELoss`` (student(en), student(es)
  -> teacher(en)) and ``MultipleNegativesRankingLoss`` (es -> en), default training arguments;
* polyclinic: ``train_model`` with ``MultilingualDistillLoss`` and the arguments the recipe builds
  (no-duplicates batch sampler, checkpoint marker callback, logging);
* where the time goes: teacher labels (computed once, before training), tokenization + forward/backward
  (the trainer), and evaluation are timed separately.

    python benchmarks/bench_distill_speed.py [--steps 30] [--batch-size 64]

Writes ``benchmarks/results/distill_speed.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polyclinic.io import write_json  # noqa: E402


def bare_loss(model, mse_weight: float, contrastive_weight: float):
    from torch import nn
    from sentence_transformers.sentence_transformer.losses import MSELoss, MultipleNegativesRankingLoss

    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.mse = MSELoss(model)
            self.mnrl = MultipleNegativesRankingLoss(model)

        def forward(self, features, labels):
            emb = [self.model(f)["sentence_embedding"] for f in features]
            mse = self.mse.compute_loss_from_embeddings(emb, [labels, labels])
            return mse_weight * mse + contrastive_weight * self.mnrl.compute_loss_from_embeddings([emb[1], emb[0]], None)

    return Bare()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two trainings this many times")
    args = parser.parse_args(argv)

    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from polyclinic.concepts.loaders import load_sources
    from polyclinic.encoders.config import TrainSettings
    from polyclinic.encoders.model import load_sentence_transformer
    from polyclinic.encoders.multilingual import MultilingualDistillLoss, add_teacher_labels, parallel_from_table
    from polyclinic.encoders.trainer import train_model
    from polyclinic.logging_utils import setup_logging

    setup_logging()
    table, _ = load_sources([{"source": "icd10cm", "max_code_length": 4}, "cie10"])
    pairs = parallel_from_table(table, "en", ["es"]).select_columns(["english", "non_english"])
    pairs = pairs.shuffle(seed=0).select(range(args.steps * args.batch_size))
    teacher = load_sentence_transformer("packaged:all-MiniLM-L6-v2", 128)
    t0 = time.perf_counter()
    labelled = add_teacher_labels(pairs, teacher, 128)
    label_seconds = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    results: dict[str, list[float]] = {"bare sentence-transformers": [], "polyclinic distill phase": []}
    try:
        for r in range(args.repeats):
            for name in results:
                student = load_sentence_transformer("packaged:all-MiniLM-L6-v2", 128)
                if name.startswith("bare"):
                    targs = SentenceTransformerTrainingArguments(
                        output_dir=str(tmp / f"bare{r}"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                        learning_rate=1e-4, warmup_steps=0.1, report_to="none", save_strategy="no", disable_tqdm=True, seed=42)
                    trainer = SentenceTransformerTrainer(model=student, args=targs, train_dataset=labelled,
                                                         loss=bare_loss(student, 100.0, 1.0))
                    t = time.perf_counter()
                    trainer.train()
                    results[name].append(time.perf_counter() - t)
                else:
                    settings = TrainSettings(max_steps=args.steps, batch_size=args.batch_size, learning_rate=1e-4,
                                             save_steps=10 ** 6, resume=False)
                    loss = MultilingualDistillLoss(student, 1.0, 20.0, False, 100.0)
                    t = time.perf_counter()
                    train_model(student, labelled, loss, settings, tmp / f"kit{r}", 42, save_final=False)
                    results[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        teacher.encode(pairs["non_english"][:2000], batch_size=256, show_progress_bar=False)
        encode_rate = 2000 / (time.perf_counter() - t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pairs_total = args.steps * args.batch_size
    report = {
        "steps": args.steps, "batch_size": args.batch_size, "repeats": args.repeats,
        "seconds": {k: [round(x, 2) for x in v] for k, v in results.items()},
        "pairs_per_second": {k: round(pairs_total / min(v), 1) for k, v in results.items()},
        "ratio_polyclinic_over_bare": round(min(results["bare sentence-transformers"]) / min(results["polyclinic distill phase"]), 3),
        "teacher_label_seconds": round(label_seconds, 2), "teacher_labels": len(pairs),
        "inference_texts_per_second": round(encode_rate, 1),
    }
    write_json(ROOT / "benchmarks" / "results" / "distill_speed.json", report)
    for k, v in report.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
