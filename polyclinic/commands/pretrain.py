"""``polyclinic pretrain RECIPE.yaml [key=value ...]``: span-corruption pretraining (same code as
``training/pretrain_span_corruption.py``; for several processes use ``accelerate launch`` on that script).

Re-running the same command resumes from the newest intact checkpoint; a changed config is refused with a diff
unless ``--allow-config-change`` says the change is meant (it is then recorded in the run)."""

from __future__ import annotations

import argparse
import json


EPILOG = """\
examples:
  polyclinic pretrain recipes/pretrain/demo.yaml data.corpus=data/demo tokenizer=runs/tok
  polyclinic pretrain recipes/pretrain/demo.yaml training.max_steps=50 run_dir=runs/mt5-short --print-config
  polyclinic pretrain recipes/pretrain/demo.yaml --allow-config-change optimizer.lr=0.005
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Span-corruption (continued) pretraining of mT5. Multi-GPU / DeepSpeed / FSDP: "
        "accelerate launch --config_file accelerate_configs/<x>.yaml training/pretrain_span_corruption.py RECIPE.yaml",
    )
    p.add_argument("recipe", nargs="?", help="recipe YAML (e.g. recipes/pretrain/demo.yaml); may be left out when "
                   "every required key is given as an override")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. training.max_steps=50 run_dir=runs/x")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume the run's newest checkpoint although the config differs from the one it was trained "
                   "with (learning rate, seed, corpus, ...); without it such a resume is refused with a diff. The "
                   "change is recorded in <run_dir>/config_changes.json (same as training.allow_config_change=true)")
    return p


def main(argv: list[str], prog: str = "polyclinic pretrain") -> int:
    from polyclinic.commands._args import parse_with_overrides

    # `RECIPE --allow-config-change k=v` puts the override after a flag
    args = parse_with_overrides(build_parser(prog), argv)
    from polyclinic.pretraining.config import load_pretrain_config

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        recipe, overrides = None, [recipe, *overrides]
    if args.allow_config_change:
        overrides.append("training.allow_config_change=true")
    cfg = load_pretrain_config(recipe, overrides)
    if args.print_config:
        from polyclinic.config import config_to_yaml

        print(config_to_yaml(cfg))
        return 0
    from polyclinic.pretraining.trainer import train

    metrics = train(cfg)
    keys = ("steps", "world_size", "final_train_loss", "eval_loss", "tokens_seen", "wall_time_s", "tokens_per_s")
    print(json.dumps({k: metrics.get(k) for k in keys}))
    return 0
