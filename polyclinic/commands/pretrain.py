"""``polyclinic pretrain RECIPE.yaml [key=value ...]``: span-corruption pretraining (same code as
``training/pretrain_span_corruption.py``; for several processes use ``accelerate launch`` on that script)."""

from __future__ import annotations

import argparse
import json


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Span-corruption (continued) pretraining of mT5. Multi-GPU / DeepSpeed / FSDP: "
        "accelerate launch --config_file accelerate_configs/<x>.yaml training/pretrain_span_corruption.py RECIPE.yaml",
    )
    p.add_argument("recipe", nargs="?", help="recipe YAML (e.g. recipes/pretrain/demo.yaml); may be left out when "
                   "every required key is given as an override")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. training.max_steps=50 run_dir=runs/x")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str], prog: str = "polyclinic pretrain") -> int:
    args = build_parser(prog).parse_args(argv)
    from polyclinic.pretraining.config import load_pretrain_config

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        recipe, overrides = None, [recipe, *overrides]
    cfg = load_pretrain_config(recipe, overrides)
    if args.print_config:
        import yaml

        from polyclinic.config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))
        return 0
    from polyclinic.pretraining.trainer import train

    metrics = train(cfg)
    keys = ("steps", "world_size", "final_train_loss", "eval_loss", "tokens_seen", "wall_time_s", "tokens_per_s")
    print(json.dumps({k: metrics.get(k) for k in keys}))
    return 0
