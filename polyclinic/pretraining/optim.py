"""Optimisers for span-corruption pretraining.

- ``adafactor``: transformers' Adafactor with a fixed learning rate driven by our scheduler
  (``relative_step=False``, ``scale_parameter=False``, ``warmup_init=False``) — the T5/Medical mT5 setup
  (lr 1e-3 constant).
- ``adamw``: ``torch.optim.AdamW``.
- ``adamwscale``: AdamW whose step is multiplied by the RMS of the parameter (floored at 1e-3), the
  Adafactor-style scaling nanoT5 found to beat Adafactor (lr 2e-2 with warmup + cosine). Plain AdamW at that
  learning rate diverges.

Weight decay is never applied to biases and layer-norm weights.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from polyclinic.errors import UserError


class AdamWScale(torch.optim.Optimizer):
    """AdamW with the update scaled by ``max(eps_scale, rms(param))`` (nanoT5's RMS-scaled AdamW).

    Decoupled weight decay is applied as ``p -= lr * wd * p`` after the scaled Adam step.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 eps_scale: float = 1e-3):
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, eps_scale=eps_scale)
        super().__init__(params, defaults)

    @staticmethod
    def _rms(t: torch.Tensor) -> torch.Tensor:
        return t.norm(2) / math.sqrt(t.numel())

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamWScale does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                step = state["step"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                bias1 = 1.0 - beta1**step
                bias2 = 1.0 - beta2**step
                step_size = group["lr"] * math.sqrt(bias2) / bias1
                scale = torch.clamp(self._rms(p.float()), min=group["eps_scale"]).to(p.dtype)
                p.addcdiv_(exp_avg * scale, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "layer_norm" in name or "LayerNorm" in name or name.endswith("norm.weight")


def param_groups(model, weight_decay: float) -> list[dict]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if weight_decay <= 0.0:
        return [{"params": [p for _, p in named], "weight_decay": 0.0}]
    decay = [p for n, p in named if not _no_decay(n)]
    nodecay = [p for n, p in named if _no_decay(n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": nodecay, "weight_decay": 0.0}]


def build_optimizer(model, opt_cfg) -> torch.optim.Optimizer:
    groups = param_groups(model, opt_cfg.weight_decay)
    name = opt_cfg.name
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            groups,
            lr=opt_cfg.lr,
            beta1=opt_cfg.beta1,
            clip_threshold=opt_cfg.clip_threshold,
            scale_parameter=opt_cfg.scale_parameter,
            relative_step=False,
            warmup_init=False,
            weight_decay=opt_cfg.weight_decay,
        )
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps,
                                 weight_decay=opt_cfg.weight_decay)
    if name == "adamwscale":
        return AdamWScale(groups, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps,
                          weight_decay=opt_cfg.weight_decay)
    raise UserError(f"optimizer.name: unknown optimizer {name!r} (adafactor, adamw, adamwscale)")


__all__: Iterable[str] = ["AdamWScale", "build_optimizer", "param_groups"]
