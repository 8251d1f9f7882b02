"""``polyclinic teacher``: label a corpus with a teacher and judge it on a verified subset.

Subcommands:
  label RECIPE.yaml [key=value ...]         label every document (resumable; cached LLM answers)
  export TEACHER_DIR --output sample.csv    a stable sample for annotation (CSV/JSONL; --prefill-gold)
  import TEACHER_DIR FILE                   read annotated gold labels back (ids + gold_label)
  evaluate TEACHER_DIR                      teacher vs verified: accuracy, per-class P/R/F1, kappa, confusion PNG
"""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  polyclinic teacher label recipes/classifier/teacher-demo.yaml
  polyclinic teacher label recipes/classifier/teacher-llm.yaml llm.base_url=http://127.0.0.1:8000/v1 llm.model=M
  polyclinic teacher export runs/classifier/teacher --output verify.csv        # annotate gold_label, then:
  polyclinic teacher import runs/classifier/teacher verify.csv
  polyclinic teacher evaluate runs/classifier/teacher
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Teacher labelling (LLM endpoint, local model or the offline "
                                "zero-shot teacher) and its evaluation on a verified subset.", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="{label,export,import,evaluate}")
    l = sub.add_parser("label", help="label every document of a recipe")
    l.add_argument("recipe")
    l.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    l.add_argument("--force", action="store_true", help="relabel from scratch (the LLM cache still answers)")
    l.add_argument("--print-config", action="store_true")
    e = sub.add_parser("export", help="write a sample of labelled documents for annotation")
    e.add_argument("teacher_dir")
    e.add_argument("--output", required=True, help=".csv or .jsonl")
    e.add_argument("--size", type=int, default=None, help="documents (default: the recipe's verified_size)")
    e.add_argument("--prefill-gold", action="store_true", help="fill gold_label from the input's gold column (demo)")
    e.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("import", help="read annotated gold labels back into the teacher folder")
    i.add_argument("teacher_dir")
    i.add_argument("file", help=".csv/.tsv/.jsonl with id and gold_label (| separates multi-label)")
    i.add_argument("--gold-column", default="gold_label")
    i.add_argument("--no-evaluate", action="store_true")
    v = sub.add_parser("evaluate", help="teacher vs verified labels")
    v.add_argument("teacher_dir")
    return p


def _show(metrics: dict) -> None:
    keys = ("num_examples", "coverage", "accuracy", "macro_f1", "cohen_kappa", "confusion_png")
    out = {k: metrics[k] for k in keys if k in metrics}
    out["per_class_f1"] = {k: round(v["f1"], 4) for k, v in metrics["per_class"].items()}
    print(json.dumps(out, indent=2, ensure_ascii=False))


def main(argv: list[str], prog: str = "polyclinic teacher") -> int:
    parser = build_parser(prog)
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(parser, argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    if args.cmd == "label":
        from polyclinic.config import config_to_yaml, load_config
        from polyclinic.teacher.config import TeacherConfig
        from polyclinic.teacher.labeler import label

        cfg = load_config(TeacherConfig, args.recipe, args.overrides)
        if args.print_config:
            print(config_to_yaml(cfg))
            return 0
        s = label(cfg, force=args.force)
        print(json.dumps({k: s[k] for k in ("documents", "accepted", "rejected", "this_run", "mean_confidence")}, indent=2))
        return 0
    if args.cmd == "export":
        from polyclinic.teacher.verified import export_sample

        print(json.dumps(export_sample(args.teacher_dir, args.output, args.size, args.prefill_gold, args.seed)))
        return 0
    from polyclinic.teacher.verified import evaluate_teacher, import_verified

    if args.cmd == "import":
        print(json.dumps(import_verified(args.teacher_dir, args.file, args.gold_column)))
        if args.no_evaluate:
            return 0
    _show(evaluate_teacher(args.teacher_dir))
    return 0
