"""Atomic file and folder writes, so an interrupted run never leaves something looking complete.

Files are written to a temporary sibling and ``os.replace``d into place. Folders (checkpoints,
exported models, releases) are built under ``<name>.tmp-<pid>`` and renamed when finished; a
``COMPLETE`` marker inside lets readers tell a finished folder from a leftover.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

COMPLETE_MARKER = "COMPLETE"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``.

    The file gets normal permissions (0644 under the usual umask): ``mkstemp`` creates 0600 files, and a
    released ``config.yaml`` or ``stats.json`` that only its owner can read surprises every other user.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk_size: int = 4 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (weights can be many GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def atomic_directory(final: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on success it is marked complete and renamed to ``final``.

    On an exception the temporary folder ``<final>.tmp-<pid>`` is removed (a full disk or a failed step
    must not leave gigabytes behind); after a kill it stays, is never mistaken for ``final``, and the
    next ``atomic_directory`` for the same ``final`` removes it once its process is gone
    (:func:`clean_stale_tmp` removes every leftover of a folder).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_dead_siblings(final)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists")
            trash = final.with_name(f"{final.name}.old-{os.getpid()}")
            os.replace(final, trash)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(trash, final)  # put the previous version back
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written folder left behind (a kill is cleaned later)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (leftovers of dead writers may be removed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_dead_siblings(final: Path) -> None:
    """Remove ``<final>.tmp-<pid>`` / ``<final>.old-<pid>`` left by killed processes (dead pids only)."""
    if not final.parent.is_dir():
        return
    for kind in (".tmp-", ".old-"):
        for child in final.parent.glob(f"{final.name}{kind}*"):
            suffix = child.name[len(final.name) + len(kind):]
            if suffix.isdigit() and int(suffix) != os.getpid() and not pid_alive(int(suffix)):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def clean_stale_tmp(parent: str | Path) -> list[Path]:
    """Remove ``*.tmp-*`` / ``*.old-*`` leftovers of interrupted atomic writes under ``parent``."""
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for child in parent.iterdir():
        if ".tmp-" in child.name or ".old-" in child.name:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
    return removed
