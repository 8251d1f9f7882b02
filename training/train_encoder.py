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


def main(argv: list[str] | None = None) -> int:
    from polyclinic.commands.encoder import main as command_main
    from polyclinic.distributed import run_training_script

    return run_training_script(command_main, sys.argv[1:] if argv is None else argv, "train_encoder.py",
                               default_action="train", actions=("train", "average", "distill"))


if __name__ == "__main__":
    raise SystemExit(main())
