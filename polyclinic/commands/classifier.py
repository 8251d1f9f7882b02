"""``polyclinic classifier``: train a distilled student on teacher labels and release it.

Subcommands:
  train RECIPE.yaml [key=value ...]   student training (resume, early stopping), evaluated on the verified subset
  report RUN                          teacher vs student measured on this machine -> RUN/comparison.json, REPORT.md
  card RUN --repo-id ORG/NAME         render the text-classification card -> stdout or --output
  verify REPO_OR_FOLDER               pipeline("text-classification") + the saved verification slice
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES = """examples:
  polyclinic classifier train recipes/classifier/demo.yaml
  polyclinic classifier train recipes/classifier/demo.yaml base_model=distilbert-base-multilingual-cased epochs=3
  polyclinic classifier report runs/classifier/student
  polyclinic classifier card runs/classifier/student --repo-id org/clinical-classifier --output README.md
  polyclinic classifier verify runs/classifier/student/final
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Distilled clinical classifiers: train a student "
                                "(AutoModelForSequenceClassification) on a teacher's labels.", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="{train,report,card,verify}")
    t = sub.add_parser("train", help="train the student")
    t.add_argument("recipe")
    t.add_argument("overrides", nargs="*")
    t.add_argument("--force", action="store_true", help="retrain from scratch")
    t.add_argument("--print-config", action="store_true")
    r = sub.add_parser("report", help="teacher vs student, measured on this machine")
    r.add_argument("run")
    r.add_argument("--max-texts", type=int, default=200)
    c = sub.add_parser("card", help="render the model card of a run")
    c.add_argument("run")
    c.add_argument("--repo-id", required=True)
    c.add_argument("--license", default="apache-2.0")
    c.add_argument("--languages", nargs="*", default=None)
    c.add_argument("--output", default=None)
    v = sub.add_parser("verify", help="load with pipeline('text-classification') and check the fixed slice")
    v.add_argument("target", help="model folder or Hub repo id")
    v.add_argument("--tolerance", type=float, default=1e-3)
    return p


def main(argv: list[str], prog: str = "polyclinic classifier") -> int:
    parser = build_parser(prog)
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(parser, argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    if args.cmd == "train":
        from polyclinic.classification.trainer import ClassifierConfig, train
        from polyclinic.config import config_to_yaml, load_config

        cfg = load_config(ClassifierConfig, args.recipe, args.overrides)
        if args.print_config:
            print(config_to_yaml(cfg))
            return 0
        m = train(cfg, force=args.force)
        if "student" not in m:  # another rank of `accelerate launch`: rank 0 reports
            return 0
        print(json.dumps({k: m[k] for k in ("train_examples", "verified_examples", "dropped", "global_step",
                                            "student", "per_class_f1")}, indent=2))
        return 0
    if args.cmd == "report":
        from polyclinic.classification.report import compare, format_comparison

        print(format_comparison(compare(args.run, args.max_texts)))
        return 0
    if args.cmd == "card":
        from polyclinic.classification.release import render_classifier_card
        from polyclinic.io import atomic_write_text

        text = render_classifier_card(args.run, repo_id=args.repo_id, license=args.license, languages=args.languages)
        if args.output:
            atomic_write_text(Path(args.output), text)
        else:
            print(text)
        return 0
    from polyclinic.classification.release import verify_classifier

    res = verify_classifier(args.target, args.tolerance)
    print(json.dumps(res, indent=2))
    return 0 if res["ok"] else 1
