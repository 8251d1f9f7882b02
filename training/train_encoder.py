#!/usr/bin/env python
"""BioLORD-style encoder training (thin entry point; the work is in polyclinic.encoders).

  python training/train_encoder.py recipes/encoder/demo.yaml [key=value ...] [--phase contrastive ...]
  accelerate launch --config_file accelerate_configs/multi_gpu_ddp.yaml \
      training/train_encoder.py recipes/encoder/biolord-2023.yaml data.concepts.table=data/concepts
  accelerate launch --config_file accelerate_configs/cpu_2ranks.yaml \
      training/train_encoder.py recipes/encoder/demo.yaml output_dir=runs/encoder-2ranks

With several processes, in-batch negatives are gathered across ranks (MultipleNegativesRankingLoss
gather_across_devices=True, chosen automatically when the world size is > 1). Re-running the same
command after a crash skips finished phases and resumes the current one from its newest complete
checkpoint (train.resume=auto).
"""

from __future__ import annotations

import sys


def _cpu_ranks() -> None:
    """Several ranks on a machine without GPUs (accelerate_configs/cpu_2ranks.yaml): run them on CPU (gloo)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "ACCELERATE_USE_CPU" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["ACCELERATE_USE_CPU"] = "true"


def main(argv: list[str] | None = None) -> int:
    from polyclinic.commands.encoder import main as command_main
    from polyclinic.errors import UserError
    from polyclinic.logging_utils import setup_logging

    setup_logging()
    _cpu_ranks()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("train", "average", "distill", "-h", "--help"):
        argv = ["train", *argv]
    try:
        return command_main(argv, prog="train_encoder.py")
    except UserError as exc:
        print(f"train_encoder.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
