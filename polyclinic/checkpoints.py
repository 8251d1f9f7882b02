"""Checkpoint integrity: one manifest format and one verification, shared by every trainer that resumes.

Why: a ``COMPLETE`` marker proves that a checkpoint was *finished*, not that it is still *intact*. A file
truncated or overwritten afterwards (a full disk while copying a run, a half-finished ``rsync``, a user
editing the run folder) made every later resume crash with a traceback inside ``load_state``, although an
older intact checkpoint was right there, and accelerate silently skips an RNG-state file it cannot read.

So every checkpoint gets ``checkpoint.json`` (size and sha256 of every file in it) written *last*, just
before the ``COMPLETE`` marker, by :func:`write_checkpoint_manifest`. Before resuming, trainers call
:func:`pick_intact` on their candidates, newest first: it verifies each with :func:`verify_checkpoint`,
logs one warning line per damaged checkpoint naming the file, and returns the newest intact one.

Cost (the choice, documented): hashes are computed once, when saving (the files were just written and are
usually still in the page cache). On resume sizes are always compared, and the well-known formats get
cheap structural checks that catch truncation without reading the data (a safetensors file must be exactly
as long as its header says; a torch zip archive must have its central directory; JSON must parse). The
sha256 hashes are re-checked when the checkpoint holds at most :data:`HASH_LIMIT_BYTES` (``hashes="auto"``),
always with ``hashes="always"`` and never with ``"never"``: re-reading the tens of GB of an mT5-XL
optimizer state at every restart would cost minutes, while the size + structure checks already catch every
truncation. Checkpoints written before the manifest existed (no ``checkpoint.json`` but a ``COMPLETE``
marker) get the structural checks only.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Iterable, Literal

from polyclinic.io import COMPLETE_MARKER, read_json, sha256_file, write_json
from polyclinic.logging_utils import get_logger

log = get_logger("checkpoints")

MANIFEST_FILE = "checkpoint.json"
HASH_LIMIT_BYTES = 2 * 2**30  # re-hash on resume when the whole checkpoint is at most this big ("auto")
_NOT_CONTENT = {MANIFEST_FILE, COMPLETE_MARKER}

HashPolicy = Literal["auto", "always", "never"]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in _NOT_CONTENT)


def write_checkpoint_manifest(folder: str | Path) -> Path:
    """Record size and sha256 of every file under ``folder`` in ``folder/checkpoint.json``.

    Call it after everything else of the checkpoint is written and before the ``COMPLETE`` marker.
    """
    folder = Path(folder)
    files = {}
    for f in _files(folder):
        files[f.relative_to(folder).as_posix()] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
    return write_json(folder / MANIFEST_FILE, {"format": 1, "files": files,
                                               "total_bytes": sum(v["size"] for v in files.values())})


# ------------------------------------------------------------------------------------ structural checks
def _check_safetensors(path: Path, size: int) -> str | None:
    if size < 8:
        return f"{size} bytes, too short for a safetensors file"
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > size - 8:
            return f"safetensors header of {n} bytes does not fit in a {size}-byte file (truncated)"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return "safetensors header is not valid JSON"
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return f"{size} bytes, its header describes {expected} (truncated)" if size < expected else \
            f"{size} bytes, its header describes {expected}"
    return None


def _check_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"not a readable torch archive ({exc}; truncated?)"
    return None


def _structural_problem(path: Path) -> str | None:
    """A cheap check that reads only headers/trailers: catches truncation of the formats checkpoints use."""
    size = path.stat().st_size
    name = path.name
    if name.endswith(".safetensors"):
        return _check_safetensors(path, size)
    if name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return "not valid JSON (truncated?)"
        return None
    if name.endswith((".pt", ".bin", ".pkl", ".pth")):
        if size == 0:
            return "empty file"
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"PK\x03\x04":  # torch.save's zip format (the default since torch 1.6)
            return _check_zip(path)
    return None


# ------------------------------------------------------------------------------------------ verification
def verify_checkpoint(folder: str | Path, hashes: HashPolicy = "auto") -> list[str]:
    """Problems of the checkpoint ``folder`` (``"<file>: <what>"``); an empty list means it is intact."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: not a folder"]
    if not (folder / COMPLETE_MARKER).is_file():
        return [f"no {COMPLETE_MARKER} marker (an interrupted write)"]
    problems: list[str] = []
    manifest_path = folder / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = read_json(manifest_path)
            recorded = dict(manifest["files"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return [f"{MANIFEST_FILE}: unreadable (truncated?)"]
        total = sum(int(v.get("size", 0)) for v in recorded.values())
        do_hash = hashes == "always" or (hashes == "auto" and total <= HASH_LIMIT_BYTES)
        for rel, info in recorded.items():
            f = folder / rel
            if not f.is_file():
                problems.append(f"{rel}: missing")
                continue
            size = f.stat().st_size
            if size != int(info["size"]):
                problems.append(f"{rel}: {size} bytes, expected {info['size']}" + (" (truncated)" if size < int(info["size"]) else ""))
                continue
            structural = _structural_problem(f)
            if structural:
                problems.append(f"{rel}: {structural}")
            elif do_hash and info.get("sha256") and sha256_file(f) != info["sha256"]:
                problems.append(f"{rel}: content differs from the sha256 recorded when it was saved")
    else:  # written before checkpoint.json existed: what the file formats themselves tell
        for f in _files(folder):
            structural = _structural_problem(f)
            if structural:
                problems.append(f"{f.relative_to(folder).as_posix()}: {structural}")
    return problems


def pick_intact(candidates: Iterable[Path], hashes: HashPolicy = "auto") -> tuple[Path | None, list[tuple[Path, list[str]]]]:
    """The first intact checkpoint of ``candidates`` (give them newest first) and the damaged ones skipped.

    Every damaged checkpoint is logged as one warning line that names the damaged file(s).
    """
    damaged: list[tuple[Path, list[str]]] = []
    for path in candidates:
        problems = verify_checkpoint(path, hashes)
        if not problems:
            if damaged:
                log.warning("resuming from %s, the newest intact checkpoint", path)
            return Path(path), damaged
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        log.warning("checkpoint %s is damaged and is not resumed from: %s", path, shown)
        damaged.append((Path(path), problems))
    return None, damaged


__all__ = ["HASH_LIMIT_BYTES", "MANIFEST_FILE", "pick_intact", "sha256_file", "verify_checkpoint",
           "write_checkpoint_manifest"]
