"""Run manifests and metrics: every stage records what it consumed and what it measured.

``metrics.json`` is the single file cards and benchmarks read. ``manifest.json`` records inputs
(paths + fingerprints), the config hash, the git commit and library versions, so a card can say
exactly where a number came from.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

from polyclinic.io import read_json, write_json


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


FULL_HASH_BYTES = 16 << 20  # files up to this size are hashed whole; larger ones by size, mtime, head and tail
_EDGE_BYTES = 1 << 20
_file_cache: dict[tuple, str] = {}


def _cached(f: Path, kind: str, compute) -> str:
    """One in-process cache of file digests, keyed by path, inode, size, mtime and ctime (utime cannot forge ctime)."""
    st = f.stat()
    key = (kind, str(f.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _file_cache:
        _file_cache[key] = compute(st)
    return _file_cache[key]


def file_sha256(f: str | Path) -> str:
    """sha256 of the whole file (cached; see :func:`_cached`), for hashes that must name exact bytes (weights)."""
    from polyclinic.io import sha256_file

    return _cached(Path(f), "sha256", lambda st: sha256_file(f))


def _file_digest(f: Path) -> str:
    def compute(st) -> str:
        if st.st_size <= FULL_HASH_BYTES:
            return file_sha256(f)
        h = hashlib.sha256()  # a rewrite keeps neither size+mtime nor both ends: cheap for GB shards and weights
        with open(f, "rb") as fh:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            h.update(fh.read(_EDGE_BYTES))
            fh.seek(st.st_size - _EDGE_BYTES)
            h.update(fh.read(_EDGE_BYTES))
        return h.hexdigest()

    return _cached(f, "fingerprint", compute)


def fingerprint_path(path: str | Path, max_files: int = 10_000) -> str:
    """Content fingerprint of a file or folder: relative paths + content hashes (whole files up to
    ``FULL_HASH_BYTES``; above it size, mtime and the first and last MiB). Skip-if-done and resume decisions
    key on it, so the same path with new content is never mistaken for the old input. Hidden files and
    ``*.tmp-*`` leftovers are ignored."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and ".tmp-" not in str(p.relative_to(path))
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))[:max_files]
    for f in files:
        rel = f.name if f == path else f.relative_to(path).as_posix()
        h.update(f"{rel}\0{_file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


def local_input_fingerprints(obj: Any) -> dict[str, str]:
    """Fingerprints of every string in a (nested) config value that names an existing local file or folder
    (data files, teacher and base model folders, ...): the part of "what a result depends on" that config
    values alone do not capture."""
    found: dict[str, str] = {}

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v and len(v) < 4096 and "\n" not in v and v not in found:
            try:
                exists = Path(v).exists()
            except OSError:
                exists = False
            if exists:
                found[v] = fingerprint_path(v)

    walk(obj)
    return found


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (importing torch & co. just for this costs seconds)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "datasets", "huggingface_hub", "sentence-transformers", "deepspeed", "peft"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(stage: str, config: Any = None, inputs: dict[str, str | Path] | None = None, **extra: Any) -> dict:
    from polyclinic import __version__

    manifest: dict[str, Any] = {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "polyclinic_version": __version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
    }
    if config is not None:
        from polyclinic.config import config_hash, config_to_dict

        manifest["config_hash"] = config_hash(config)
        manifest["config"] = config_to_dict(config)
    if inputs:
        manifest["inputs"] = {
            k: {"path": str(v), "fingerprint": fingerprint_path(v) if Path(v).exists() else None} for k, v in inputs.items()
        }
    manifest.update(extra)
    return manifest


def write_manifest(folder: str | Path, stage: str, config: Any = None, inputs=None, **extra: Any) -> Path:
    return write_json(Path(folder) / "manifest.json", build_manifest(stage, config, inputs, **extra))


def write_metrics(folder: str | Path, metrics: dict[str, Any], merge: bool = True) -> Path:
    """Write (or merge into) ``folder/metrics.json``."""
    path = Path(folder) / "metrics.json"
    data = read_json(path) if merge and path.exists() else {}
    data.update(metrics)
    return write_json(path, data)
