"""Which student recipe is the default: variants of ``recipes/classifier/demo.yaml`` against a strong simple
baseline, on the same teacher labels.

Every variant trains on the same teacher-labelled pool (the verified subset excluded). The verified subset is
split by a hash of the document id into **verified-dev** (selection) and **verified-test** (reported, never
used to choose); the teacher-labelled validation split is shown too, but it measures agreement with the
teacher, not correctness (a model that copies the teacher's mistakes scores well there). The baseline is TF-IDF (word 1-2-grams +
character 2-5-grams) + logistic regression trained on the same teacher labels (scikit-learn). The teacher's
own score on the verified subset is the reference a student has to approach.

    python benchmarks/bench_classifier_recipes.py [--output runs/bench-classifier-recipes]

Writes ``benchmarks/results/classifier_recipes.json`` and prints a Markdown table (pasted into the README).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polyclinic.classification.metrics import classification_metrics  # noqa: E402
from polyclinic.classification.trainer import ClassifierConfig, predict, prepare_data, train  # noqa: E402
from polyclinic.config import load_config  # noqa: E402
from polyclinic.io import write_json  # noqa: E402
from polyclinic.teacher.config import TeacherConfig  # noqa: E402
from polyclinic.teacher.labeler import label  # noqa: E402
from polyclinic.teacher.labeler import load_labels  # noqa: E402
from polyclinic.teacher.verified import export_sample, import_verified  # noqa: E402

VARIANTS = {
    "default (lr 2e-4, 6 epochs)": [],
    "lr 5e-5": ["learning_rate=5e-5"],
    "lr 5e-4": ["learning_rate=5e-4"],
    "3 epochs": ["epochs=3"],
    "10 epochs": ["epochs=10"],
    "min_confidence 0.5": ["filter.min_confidence=0.5"],
    "min_confidence 0.7": ["filter.min_confidence=0.7"],
    "confident learning": ["filter.confident_learning=true"],
}


def _teacher_predictions(teacher_dir: str) -> list[dict]:
    _, labels, _ = load_labels(teacher_dir)
    return [{"id": i, **r} for i, r in labels.items()]


def tfidf_baseline(data: dict) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    t0 = time.perf_counter()
    clf = make_pipeline(make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
                        LogisticRegression(max_iter=2000, C=10.0))
    clf.fit([r["text"] for r in data["train"]], [r["label"] for r in data["train"]])
    out = {"seconds": round(time.perf_counter() - t0, 1)}
    for split, rows in _splits(data).items():
        m = classification_metrics([r["label"] for r in rows], list(clf.predict([r["text"] for r in rows])), data["names"])
        out[split] = {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}
    return out


def _splits(data: dict) -> dict[str, list[dict]]:
    import hashlib

    def dev(r):
        return int(hashlib.sha256(f"select:{r['id']}".encode()).hexdigest(), 16) % 2 == 0

    return {"validation": data["validation"], "verified-dev": [r for r in data["test"] if dev(r)],
            "verified-test": [r for r in data["test"] if not dev(r)]}


def student_scores(cfg: ClassifierConfig, data: dict) -> dict:
    """Train (or reuse) a variant; score it on the COMMON validation split (the unfiltered one: a filtering
    variant's own validation split drops exactly the hard documents) and on the verified subset."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    t0 = time.perf_counter()
    metrics = train(cfg)
    seconds = round(time.perf_counter() - t0, 1)
    final = Path(cfg.output_dir) / "final"
    model, tok = AutoModelForSequenceClassification.from_pretrained(final), AutoTokenizer.from_pretrained(final)
    out = {"seconds": seconds, "steps": metrics["global_step"], "train_examples": metrics["train_examples"],
           "dropped": metrics["dropped"]}
    for split, rows in _splits(data).items():
        preds, _ = predict(model, tok, [r["text"] for r in rows], data["names"], False, 64, cfg.max_length)
        m = classification_metrics([r["label"] for r in rows], preds, data["names"])
        out[split] = {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", default="runs/bench-classifier-recipes")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = ap.parse_args()
    out = Path(args.output)
    tcfg = load_config(TeacherConfig, ROOT / "recipes/classifier/teacher-demo.yaml", [f"output_dir={out / 'teacher'}"])
    label(tcfg)
    export_sample(tcfg.output_dir, out / "verify.csv", prefill_gold=True)
    import_verified(tcfg.output_dir, out / "verify.csv")
    rows: dict[str, dict] = {}
    base = [f"teacher_dir={tcfg.output_dir}"]
    # train splits are hash-based per document, so no variant ever trains on a document of this split
    data = prepare_data(load_config(ClassifierConfig, ROOT / "recipes/classifier/demo.yaml", base))
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        if args.only and name not in args.only:
            continue
        cfg = load_config(ClassifierConfig, ROOT / "recipes/classifier/demo.yaml",
                          [*base, f"output_dir={out / f'v{i}'}", *overrides])
        rows[name] = {"overrides": overrides, **student_scores(cfg, data)}
        print(f"{name}: {rows[name]}", flush=True)
    rows["baseline: TF-IDF + logistic regression"] = {"overrides": [], **tfidf_baseline(data)}
    teacher_rows = {r["id"]: r["label"] for r in _teacher_predictions(tcfg.output_dir)}
    rows["teacher (OFFLINE zero-shot)"] = {"overrides": []}
    for split, split_rows in _splits(data).items():
        if split == "validation":
            continue
        m = classification_metrics([r["label"] for r in split_rows], [teacher_rows[r["id"]] for r in split_rows],
                                   data["names"])
        rows["teacher (OFFLINE zero-shot)"][split] = {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}
    splits = _splits(data)
    write_json(ROOT / "benchmarks" / "results" / "classifier_recipes.json",
               {"variants": rows, **{f"{k}_examples": len(v) for k, v in splits.items()},
                "train_examples": len(data["train"]), "selected_by": "verified-dev macro-F1"})
    print(f"\n{len(data['train'])} training documents; validation {len(splits['validation'])} (teacher labels); "
          f"verified-dev {len(splits['verified-dev'])}; verified-test {len(splits['verified-test'])}\n")
    print("| recipe | validation (teacher labels) macro-F1 | verified-dev macro-F1 | verified-test macro-F1 | "
          "verified-test accuracy | train s |")
    print("| --- | --- | --- | --- | --- | --- |")

    def f(r, split):
        v = r.get(split, {}).get("macro_f1")
        return "-" if v is None else f"{v:.3f}"

    for name, r in rows.items():
        acc = r.get("verified-test", {}).get("accuracy")
        print(f"| {name} | {f(r, 'validation')} | {f(r, 'verified-dev')} | {f(r, 'verified-test')} | "
              f"{'-' if acc is None else f'{acc:.3f}'} | {r.get('seconds', '-')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
