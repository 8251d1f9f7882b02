"""Atomic, multi-process checkpoints: ``run_dir/checkpoints/step-N/`` with a ``COMPLETE`` marker.

Every rank must take part in ``accelerator.save_state`` (DeepSpeed writes per-rank shards, accelerate one RNG
file per rank), so all ranks write into one shared temporary folder ``step-N.tmp-<launch id>``; after a barrier the
main process writes ``trainer_state.json`` and the marker and renames the folder. A kill at any point leaves
either the previous complete checkpoint or a ``*.tmp-*`` leftover that :func:`clean_stale_tmp` removes on the
next start. This is :func:`polyclinic.io.atomic_directory`'s contract, spread over several processes (which
each have their own pid, hence the shared launch id instead of the pid in the name).

A finished checkpoint can still be damaged later (truncated by a full disk or a half copy), so the main process
also writes ``checkpoint.json`` (size + sha256 of every file, :mod:`polyclinic.checkpoints`) just before the
marker, and :func:`resolve_resume` resumes from the newest checkpoint that verifies, warning about each
damaged one. If checkpoints exist but none is intact, resuming is *refused* (UserError) rather than silently
starting from scratch: restarting would prune the user's checkpoints, and a run that had reached step 50 000
should not quietly restart at step 0; ``training.resume=never`` starts afresh on purpose.

``trainer_state.json`` also records the flattened config and the fingerprints of the inputs the checkpoint was
trained with, so :func:`config_changes` can tell a resume under another config (learning rate, seed, corpus,
architecture, ...) from a plain continuation. Only the keys of :data:`RESUME_MAY_CHANGE` (step budget, I/O,
logging, evaluation cadence, worker counts) may differ silently; everything else is refused with a diff unless
``--allow-config-change`` (``training.allow_config_change``) is given, and the keys of :data:`NEVER_CHANGE`
(architecture, optimizer type: the saved tensors would not fit) are refused even then.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from typing import Any, Iterable

from polyclinic.checkpoints import pick_intact, verify_checkpoint, write_checkpoint_manifest
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


def resolve_resume(resume: str, run_dir: str | Path, hashes: str = "auto") -> Path | None:
    """``auto``: newest *intact* complete checkpoint of the run (None if there is none); ``never``: None; else a
    path, which must be intact. Damaged checkpoints are warned about (one line each, naming the file) and skipped;
    when checkpoints exist but none is intact, a :class:`UserError` says so (see the module docstring)."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        chosen, damaged = pick_intact([p for _, p in reversed(found)], hashes)  # type: ignore[arg-type]
        if chosen is None and damaged:
            detail = "; ".join(f"{p.name}: {probs[0]}" for p, probs in damaged)
            raise UserError(
                f"training.resume=auto: every checkpoint under {checkpoints_dir(run_dir)} is damaged ({detail}); "
                f"they are kept for inspection. Set training.resume=never to start this run from scratch, or "
                f"training.resume=PATH to resume from a checkpoint you repaired"
            )
        return chosen
    path = Path(resume)
    if not path.is_dir():
        raise UserError(f"training.resume: checkpoint folder not found: {path}")
    if not is_complete(path) or not (path / STATE_FILE).is_file():
        raise UserError(f"training.resume: {path} is not a complete checkpoint (no {COMPLETE_MARKER} / {STATE_FILE})")
    problems = verify_checkpoint(path, hashes)  # type: ignore[arg-type]
    if problems:
        raise UserError(f"training.resume: checkpoint {path} is damaged: {'; '.join(problems[:3])}")
    return path


# -------------------------------------------------------------------------------- resume under another config
# flattened keys (or prefixes ending in ".") that may differ between a checkpoint and the launch resuming it:
# how long to train, how often to save / log / evaluate, where logs go, worker counts. None of them changes
# the optimisation of the steps already taken or the order and content of the data.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "run_dir",
    "training.max_steps", "training.num_epochs", "training.resume", "training.save_every", "training.keep_last",
    "training.save_final", "training.log_every", "training.eval_every", "training.eval_max_rows",
    "training.eval_batch_size", "training.cpu_threads", "training.allow_config_change", "training.checkpoint_hashes",
    "data.num_proc", "data.num_workers",
    "logging.",
)
# keys whose change makes the checkpoint unloadable (tensor shapes, optimizer state layout): refused even with
# --allow-config-change.
NEVER_CHANGE: tuple[str, ...] = ("model.config.", "model.name_or_path", "model.tie_word_embeddings", "optimizer.name")

ALLOW_FLAG = "--allow-config-change"
_UNSET = "<unset>"


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) or key == p.rstrip(".") for p in patterns)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and other values are kept as they are (JSON values)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = node
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened keys whose value differs between ``old`` and ``new``, leaving out :data:`RESUME_MAY_CHANGE`."""
    changes = {}
    for key in sorted(set(old) | set(new)):
        if _matches(key, RESUME_MAY_CHANGE):
            continue
        a, b = old.get(key, _UNSET), new.get(key, _UNSET)
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            changes[key] = (a, b)
    return changes


def format_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return "\n".join(f"  {k}: {_show(a)} -> {_show(b)}" for k, (a, b) in changes.items())


def _show(v: Any) -> str:
    import json

    return v if v == _UNSET else json.dumps(v, ensure_ascii=False, default=str)


def check_resume_config(checkpoint: Path, old: dict[str, Any], new: dict[str, Any], allow: bool) -> dict[str, tuple[Any, Any]]:
    """Refuse (UserError with a ``key: old -> new`` diff) a resume of ``checkpoint`` under a changed config.

    ``old``/``new`` are flattened (:func:`flatten`). With ``allow`` the changes are returned (for the caller to
    record) unless one of them is in :data:`NEVER_CHANGE`.
    """
    changes = config_changes(old, new)
    if not changes:
        return {}
    fixed = {k: v for k, v in changes.items() if _matches(k, NEVER_CHANGE)}
    if fixed:
        raise UserError(
            f"cannot resume {checkpoint}: the model architecture / optimizer type changed, and the saved weights and "
            f"optimizer state do not fit the new one (not even with {ALLOW_FLAG}):\n{format_changes(fixed)}\n"
            f"Start a new run (another run_dir), or training.resume=never to restart this one from scratch."
        )
    if not allow:
        raise UserError(
            f"cannot resume {checkpoint}: the config differs from the one it was trained with:\n{format_changes(changes)}\n"
            f"Undo the change to continue the run as it was, pass {ALLOW_FLAG} (training.allow_config_change=true) to "
            f"continue under the new config (the change is recorded in config_changes.json), or use another run_dir."
        )
    return changes


CHANGES_FILE = "config_changes.json"


def record_config_changes(run_dir: str | Path, step: int, checkpoint: Path, changes: dict[str, tuple[Any, Any]]) -> list:
    """Append one entry (step, checkpoint, ``{key: {old, new}}``, time) to ``run_dir/config_changes.json``."""
    import datetime as _dt

    path = Path(run_dir) / CHANGES_FILE
    history = read_json(path) if path.is_file() else []
    history.append({
        "step": int(step),
        "checkpoint": checkpoint.name,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "changes": {k: {"old": a, "new": b} for k, (a, b) in changes.items()},
    })
    write_json(path, history)
    return history


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
        write_checkpoint_manifest(tmp)  # last: sizes + hashes of everything above, then the marker
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
    """Collective: restore model, optimizer, scheduler and RNG states; return the trainer state.

    This rank's RNG-state file must be there (accelerate only logs, at INFO, that it could not load it, and the
    run would go on with other random streams than the uninterrupted run). A state that does not fit the model
    (another architecture or vocabulary) is a :class:`UserError`, not a size-mismatch traceback.
    """
    path = Path(path)
    state = read_json(path / STATE_FILE)
    rng = path / f"random_states_{accelerator.process_index}.pkl"
    if not rng.is_file():
        saved_world = int(state.get("world_size", accelerator.num_processes))
        if saved_world == accelerator.num_processes:
            raise UserError(f"cannot resume {path}: {rng.name} (the RNG state of process {accelerator.process_index}) "
                            f"is missing")
        log.warning("%s was saved by %d processes, this launch has %d: process %d starts its RNG from the seed",
                    path, saved_world, accelerator.num_processes, accelerator.process_index)
    try:
        accelerator.load_state(str(path))
    except RuntimeError as exc:
        text = str(exc)
        if "size mismatch" in text or "Error(s) in loading state_dict" in text or "Missing key" in text:
            first = next((ln.strip() for ln in text.splitlines() if "size mismatch" in ln), text.splitlines()[0])
            raise UserError(f"cannot resume {path}: its weights do not fit the model of this config ({first}); "
                            f"start a new run_dir for another architecture or tokenizer") from None
        raise
    return state
