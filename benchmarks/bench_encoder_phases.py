"""What each BioLORD-2023 phase adds or costs: the contrastive model (-C), after self-distillation (-S) and after
weight averaging (final), against the base model, on the same held-out tasks.

The recipe is ``recipes/encoder/demo.yaml`` with HPO added to the concepts and larger step budgets (still CPU):
contrastive (names vs synonyms / descriptions / other-language names) -> self-distillation -> averaging of the
self-distillation checkpoints; the multilingual distillation phase is off (it is measured by
``bench_encoder_recipes.py``). Every phase's model is scored by the kit on

* held-out-concept retrieval per pair kind (``dev_*``: name -> description, synonym, cross-language name),
* Spanish -> English coding search on held-out ICD categories,
* HPO concept relatedness: Spearman of cosine vs the HPO Lin similarity (1000 pairs sampled from the
  ontology by ``hpo3``; these terms are in the training concepts: relatedness between two concepts is
  never a training pair, but the names are seen).

No STS data ships on PyPI, so STS is not measured here (``polyclinic eval sts --pairs FILE`` scores any file).

    python benchmarks/bench_encoder_phases.py [--contrastive-steps 150] [--self-distill-steps 60]

Writes ``benchmarks/results/encoder_phases.json`` and prints a Markdown table (pasted into the README).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polyclinic.io import write_json  # noqa: E402

RECIPE = ROOT / "recipes" / "encoder" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/bench-encoder-phases")
    parser.add_argument("--contrastive-steps", type=int, default=150)
    parser.add_argument("--self-distill-steps", type=int, default=60)
    args = parser.parse_args(argv)

    from polyclinic.encoders.config import load_encoder_config
    from polyclinic.encoders.model import load_sentence_transformer
    from polyclinic.encoders.trainer import run_encoder_recipe
    from polyclinic.evaluation.relatedness import evaluate_relatedness
    from polyclinic.logging_utils import setup_logging

    setup_logging()
    run = Path(args.output)
    cs, sd = args.contrastive_steps, args.self_distill_steps
    cfg = load_encoder_config(RECIPE, [
        f"output_dir={json.dumps(str(run))}",
        'data.concepts.sources=[{source: icd10cm, max_code_length: 4}, cie10, hpo]',
        "data.max_train_pairs=20000", "data.max_eval_pairs=400",
        f"phases.contrastive.train.max_steps={cs}", f"phases.contrastive.train.save_steps={max(1, cs // 3)}",
        f"phases.self_distill.train.max_steps={sd}", f"phases.self_distill.train.save_steps={max(1, sd // 3)}",
        "phases.average.last_k=3", "phases.distill.enabled=false",
    ])
    t0 = time.perf_counter()
    metrics = run_encoder_recipe(cfg)
    models = {"all-MiniLM-L6-v2 (base)": cfg.base_model, "-C (contrastive)": run / "phases" / "contrastive" / "final",
              "-S (+ self-distillation)": run / "phases" / "self_distill" / "final",
              "final (+ weight averaging)": run / "phases" / "average" / "final"}
    evals = {"all-MiniLM-L6-v2 (base)": metrics["eval"]["base"], "-C (contrastive)": metrics["eval"]["contrastive"],
             "-S (+ self-distillation)": metrics["eval"]["self_distill"], "final (+ weight averaging)": metrics["eval"]["average"]}
    rows = []
    for name, path in models.items():
        rel, n, _ = evaluate_relatedness(load_sentence_transformer(str(path), cfg.max_seq_length), n_pairs=1000, seed=0)
        rows.append({"model": name, "tasks": evals[name], "hpo_relatedness_spearman": round(rel["spearman"], 4), "hpo_pairs": n})
    tasks = sorted(rows[0]["tasks"])
    report = {"contrastive_steps": cs, "self_distill_steps": sd, "batch_size": cfg.phases.contrastive.train.batch_size,
              "train_pairs": metrics["data"]["train_pairs"], "wall_seconds": round(time.perf_counter() - t0, 1),
              "eval_tasks": metrics.get("eval_tasks"), "rows": rows}
    write_json(ROOT / "benchmarks" / "results" / "encoder_phases.json", report)
    head = "| model | " + " | ".join(f"{t} R@10" for t in tasks) + " | HPO relatedness ρ |"
    print(head + "\n|" + "---|" * (len(tasks) + 2))
    for r in rows:
        print(f"| {r['model']} | " + " | ".join(f"{r['tasks'][t]['recall@10']:.3f}" for t in tasks)
              + f" | {r['hpo_relatedness_spearman']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
