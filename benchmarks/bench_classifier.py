"""Distilled classifier: the student against its teacher, measured in the same way on the same machine.

Runs the whole demo chain into ``--output`` (offline zero-shot teacher -> verified subset -> student; skipped
when already done), then measures both models in fresh subprocesses (:mod:`polyclinic.classification.report`)
and prints teacher/student ratios of latency, throughput, peak memory and size, next to per-class F1 on the
verified subset. With an LLM teacher (``--teacher-recipe`` with ``backend: llm``) the teacher side is the
measured request latency of the labelling run. Writes ``benchmarks/results/classifier.json``.

    python benchmarks/bench_classifier.py [--output runs/bench-classifier] [--teacher-recipe R] [--student-recipe R]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polyclinic.classification.report import compare  # noqa: E402
from polyclinic.classification.trainer import ClassifierConfig, train  # noqa: E402
from polyclinic.config import load_config  # noqa: E402
from polyclinic.io import write_json  # noqa: E402
from polyclinic.teacher.config import TeacherConfig  # noqa: E402
from polyclinic.teacher.labeler import label  # noqa: E402
from polyclinic.teacher.verified import evaluate_teacher, export_sample, import_verified  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", default="runs/bench-classifier")
    ap.add_argument("--teacher-recipe", default=str(ROOT / "recipes/classifier/teacher-demo.yaml"))
    ap.add_argument("--student-recipe", default=str(ROOT / "recipes/classifier/demo.yaml"))
    ap.add_argument("--max-texts", type=int, default=150)
    args = ap.parse_args()
    out = Path(args.output)
    tcfg = load_config(TeacherConfig, args.teacher_recipe, [f"output_dir={out / 'teacher'}"])
    label(tcfg)
    export_sample(tcfg.output_dir, out / "verify.csv", prefill_gold=True)
    import_verified(tcfg.output_dir, out / "verify.csv")
    evaluate_teacher(tcfg.output_dir)
    scfg = load_config(ClassifierConfig, args.student_recipe,
                       [f"teacher_dir={tcfg.output_dir}", f"output_dir={out / 'student'}"])
    train(scfg)
    c = compare(out / "student", args.max_texts)
    t, s = c["teacher"], c["student"]
    print(f"teacher: {t['name']}")
    for label_name in c["labels"]:
        print(f"  F1 {label_name:<15} teacher {t['per_class_f1'][label_name]:.3f}  student {s['per_class_f1'][label_name]:.3f}")
    for key in ("latency_ms_per_document", "throughput_documents_per_s", "peak_rss_bytes", "parameters", "disk_bytes"):
        a, b = t.get(key), s.get(key)
        ratio = f"{a / b:.2f}x" if a and b else "n/a"
        print(f"  {key:<28} teacher {a}  student {b}  teacher/student {ratio}")
    res = ROOT / "benchmarks" / "results" / "classifier.json"
    write_json(res, c)
    print(f"wrote {res}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
