#!/usr/bin/env python
"""Distilled classifier student (thin entry point; the work is in polyclinic.classification).

  python training/train_classifier.py recipes/classifier/demo.yaml [key=value ...]
  accelerate launch --config_file accelerate_configs/multi_gpu_ddp.yaml \\
      training/train_classifier.py recipes/classifier/demo.yaml teacher_dir=runs/classifier/teacher
  accelerate launch --config_file accelerate_configs/cpu_2ranks.yaml \\
      training/train_classifier.py recipes/classifier/demo.yaml output_dir=runs/classifier/student-2ranks

The transformers Trainer runs on accelerate, so the same recipe trains on one CPU, one GPU or several
processes (the per-device batch size is per rank); rank 0 evaluates on the verified subset and writes the
run folder. Re-running the same command resumes from the newest checkpoint.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from polyclinic.commands.classifier import main as command_main
    from polyclinic.distributed import run_training_script

    return run_training_script(command_main, sys.argv[1:] if argv is None else argv, "train_classifier.py",
                               default_action="train", actions=("train",))


if __name__ == "__main__":
    raise SystemExit(main())
