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
    import os

    from polyclinic.commands.classifier import main as command_main
    from polyclinic.errors import UserError
    from polyclinic.logging_utils import setup_logging

    setup_logging()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "ACCELERATE_USE_CPU" not in os.environ:
        import torch

        if not torch.cuda.is_available():  # several ranks on a machine without GPUs: CPU (gloo)
            os.environ["ACCELERATE_USE_CPU"] = "true"
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("train", "-h", "--help"):
        argv = ["train", *argv]
    try:
        return command_main(argv, prog="train_classifier.py")
    except UserError as exc:
        print(f"train_classifier.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
