#!/usr/bin/env python
"""Span-corruption pretraining of mT5 (thin entry point; the work is in polyclinic.pretraining).

  python training/pretrain_span_corruption.py recipes/pretrain/demo.yaml [key=value ...]
  accelerate launch --config_file accelerate_configs/cpu_2ranks.yaml \
      training/pretrain_span_corruption.py recipes/pretrain/demo.yaml run_dir=runs/demo-2ranks
  accelerate launch --config_file accelerate_configs/multi_gpu_ddp.yaml \
      training/pretrain_span_corruption.py recipes/pretrain/mt5-large.yaml data.corpus=data/medical

Re-running the same command after a crash resumes from the newest complete and intact checkpoint
(training.resume=auto; a damaged one is reported and skipped). Resuming under a changed config is refused with a
diff unless --allow-config-change is given (the change is then recorded in <run_dir>/config_changes.json).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from polyclinic.commands.pretrain import main as command_main
    from polyclinic.distributed import run_training_script

    return run_training_script(command_main, sys.argv[1:] if argv is None else argv, "pretrain_span_corruption.py")


if __name__ == "__main__":
    raise SystemExit(main())
