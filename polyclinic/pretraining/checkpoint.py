"""Atomic, multi-process checkpoints: ``run_dir/checkpoints/step-N/`` with a ``COMPLETE`` marker.

Every rank must take part in ``accelerator.save_state`` (DeepSpeed writes per-rank shards, accelerate one RNG
file per rank), so all ranks write into one shared temporary folder ``step-N.tmp-<launch id>``; after a barrier the
main process writes ``trainer_state.json`` and the marker and renames the folder. A kill at any point leaves
either the previous complete checkpoint or a ``*.tmp-*`` leftover that :func:`clean_stale_tmp` removes on the
next start. This is :func:`polyclinic.io.atomic_directory`'s contract, spread over several processes (which
each have their own pid, hence the shared launch id instead of the pid in the name).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from polyclinic.errors import UserError
from polyclinic.io import COMPLETE_MARKER, clean_stale_tmp, is_complete, read_json, write_json
from polyclinic.logging_utils import get_logger

log = get_logger("pretraining.checkpoint")

STATE_FILE = "trainer_state.json"
_STEP = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    out = []
    for child in folder.iterdir():
        m = _STEP.match(child.name)
        if m and child.is_dir() and is_complete(child) and (child / STATE_FILE).is_file():
            out.append((int(m.group(1)), child))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str, run_dir: str | Path) -> Path | None:
    """``auto``: newest complete checkpoint of the run (None if there is none); ``never``: None; else a path."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if not path.is_dir():
        raise UserError(f"training.resume: checkpoint folder not found: {path}")
    if not is_complete(path) or not (path / STATE_FILE).is_file():
        raise UserError(f"training.resume: {path} is not a complete checkpoint (no {COMPLETE_MARKER} / {STATE_FILE})")
    return path


def clean_leftovers(run_dir: str | Path) -> list[Path]:
    """Remove half-written checkpoints / final folders of an interrupted run (main process only)."""
    removed = clean_stale_tmp(checkpoints_dir(run_dir)) + clean_stale_tmp(run_dir)
    for p in removed:
        log.info("removed leftover of an interrupted write: %s", p)
    return removed


def save_checkpoint(accelerator, run_dir: str | Path, step: int, state: dict, keep_last: int, launch_id: str) -> Path:
    """Collective: call on every rank. Returns the final folder."""
    folder = checkpoints_dir(run_dir)
    final = folder / f"step-{step}"
    tmp = folder / f"step-{step}.tmp-{launch_id}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / STATE_FILE, state)
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        _fsync_dir(tmp)
        if final.exists():
            trash = folder / f"step-{step}.old-{launch_id}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(folder)
        prune(run_dir, keep_last)
        log.info("checkpoint saved: %s", final)
    accelerator.wait_for_everyone()
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prune(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints (rename first, so none looks complete)."""
    removed = []
    for _, path in list_checkpoints(run_dir)[:-keep_last]:
        trash = path.with_name(path.name + ".old-prune")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(path)
    return removed


def load_checkpoint(accelerator, path: str | Path) -> dict:
    """Collective: restore model, optimizer, scheduler and RNG states; return the trainer state."""
    path = Path(path)
    accelerator.load_state(str(path))
    return read_json(path / STATE_FILE)
