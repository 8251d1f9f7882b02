"""Learning-rate schedules with linear warmup: constant, linear, cosine, inverse-sqrt.

Each is a picklable callable (``LRLambda``) used through ``torch.optim.lr_scheduler.LambdaLR``, so the
scheduler's state round-trips through ``accelerator.save_state``/``load_state``. The factor multiplies the
optimizer's lr; ``step`` is the number of optimizer steps already taken.
"""

from __future__ import annotations

import math

import torch

from polyclinic.errors import UserError

SCHEDULES = ("constant", "linear", "cosine", "inverse_sqrt")


class LRLambda:
    def __init__(self, name: str, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0):
        if name not in SCHEDULES:
            raise UserError(f"scheduler.name: unknown schedule {name!r} ({', '.join(SCHEDULES)})")
        self.name = name
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        w = self.warmup_steps
        if w > 0 and step < w:
            return (step + 1) / w  # never 0 on the first step
        if self.name == "constant":
            return 1.0
        if self.name == "inverse_sqrt":
            # T5: 1/sqrt(max(step, warmup)), normalised to 1 at the end of warmup
            ts = max(w, 1)
            return math.sqrt(ts / max(step, ts))
        span = max(self.total_steps - w, 1)
        progress = min(max(step - w, 0) / span, 1.0)
        if self.name == "linear":
            decay = 1.0 - progress
        else:  # cosine
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * decay


def build_scheduler(optimizer, sched_cfg, total_steps: int):
    horizon = sched_cfg.total_steps or total_steps
    if sched_cfg.warmup_steps > horizon and sched_cfg.name in ("linear", "cosine"):
        raise UserError(
            f"scheduler.warmup_steps={sched_cfg.warmup_steps} is longer than the run ({horizon} steps): lower it"
        )
    fn = LRLambda(sched_cfg.name, sched_cfg.warmup_steps, horizon, sched_cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
