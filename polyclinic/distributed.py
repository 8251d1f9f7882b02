"""Process-level distributed setup shared by every training family (pretraining, encoders, classifiers).

Why by hand: accelerate 1.15's launcher starts several CPU processes only for a multi-GPU-type config
(MULTI_CPU configs go to its single-process launcher) and does not forward ``use_cpu`` to them; without
``ACCELERATE_USE_CPU`` each rank would then train alone. :func:`use_cpu_ranks_without_gpu` says "several
ranks and no GPU means CPU (gloo) ranks" once, for every entry point. The rank helpers use accelerate's
``PartialState`` (a no-op group of one in a plain ``python`` run).
"""

from __future__ import annotations

import os


def use_cpu_ranks_without_gpu() -> None:
    """Set ``ACCELERATE_USE_CPU`` when launched with several ranks on a machine without GPUs (not DeepSpeed)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or "ACCELERATE_USE_CPU" in os.environ:
        return
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"


def process_state():
    from accelerate import PartialState

    return PartialState()


def is_main_process() -> bool:
    return process_state().is_main_process


def wait_for_everyone() -> None:
    process_state().wait_for_everyone()


def run_training_script(command_main, argv: list[str], prog: str, default_action: str | None = None,
                        actions: tuple[str, ...] = ()) -> int:
    """The body of a thin ``training/*.py`` entry point (python or ``accelerate launch``): logging, CPU ranks
    without GPUs, ``RECIPE ...`` meaning ``<default_action> RECIPE ...``, and a user error as one line."""
    import sys

    from polyclinic.errors import UserError
    from polyclinic.logging_utils import setup_logging

    setup_logging()
    use_cpu_ranks_without_gpu()
    argv = list(argv)
    if default_action and argv and argv[0] not in (*actions, "-h", "--help"):
        argv = [default_action, *argv]
    try:
        return command_main(argv, prog=prog)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
