"""Phase 3: weight averaging ("model soup") of checkpoints and/or runs with different seeds.

Floating-point tensors are averaged in float64 and cast back, so averaging identical models returns
bit-identical weights (x*k/k is exact in float64 for float32 x). Integer/bool buffers (e.g.
``position_ids``) must be equal across models and are copied. Models must share architecture and
tokenizer; differences are reported by key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("encoders.averaging")


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    if len(states) < 1:
        raise UserError("nothing to average")
    if weights is None:
        weights = [1.0] * len(states)
    if len(weights) != len(states):
        raise UserError(f"{len(weights)} weights for {len(states)} models")
    total = float(sum(weights))
    if total <= 0:
        raise UserError("averaging weights must sum to a positive number")
    keys = list(states[0])
    for i, st in enumerate(states[1:], 1):
        if set(st) != set(keys):
            diff = sorted(set(st) ^ set(keys))[:5]
            raise UserError(f"model {i} has different parameters from model 0 (e.g. {diff}); cannot average")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [st[key] for st in states]
        first = tensors[0]
        for i, t in enumerate(tensors[1:], 1):
            if t.shape != first.shape:
                raise UserError(f"{key}: shape {tuple(t.shape)} in model {i} vs {tuple(first.shape)} in model 0")
        if not first.is_floating_point():
            if any(not torch.equal(t, first) for t in tensors[1:]):
                raise UserError(f"{key}: non-float buffer differs between models; cannot average")
            out[key] = first.clone()
            continue
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for w, t in zip(weights, tensors):
            acc += float(w) * t.detach().to("cpu", torch.float64)
        out[key] = (acc / total).to(first.dtype)
    return out


def average_models(models: Sequence, weights: Sequence[float] | None = None):
    """A new model (a deep copy of the first) whose weights are the (weighted) mean of ``models``."""
    import copy

    if len(models) < 1:
        raise UserError("nothing to average")
    states = [m.state_dict() for m in models]
    averaged = average_state_dicts(states, weights)
    result = copy.deepcopy(models[0])
    result.load_state_dict(averaged, strict=True)
    return result


def average_model_folders(paths: Sequence[str | Path], output: str | Path, weights: Sequence[float] | None = None) -> str:
    """Average sentence-transformers folders (or Hub ids) into ``output`` (written atomically)."""
    from polyclinic.encoders.model import load_sentence_transformer
    from polyclinic.io import atomic_directory

    if len(paths) < 2:
        raise UserError("give at least two models to average")
    models = [load_sentence_transformer(str(p), device="cpu") for p in paths]
    avg = average_models(models, weights)
    with atomic_directory(output) as tmp:
        avg.save(str(tmp))
    log.info("averaged %d models -> %s", len(models), output)
    return str(output)


def checkpoint_dirs(folder: str | Path) -> list[Path]:
    """Complete ``checkpoint-N`` folders under ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-"):
            try:
                step = int(child.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if (child / "modules.json").exists() and ((child / "COMPLETE").exists() or (child / "trainer_state.json").exists()):
                found.append((step, child))
    return [p for _, p in sorted(found)]
