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


def fingerprint_path(path: str | Path, max_files: int = 10_000) -> str:
    """Content fingerprint of a file or folder (sha256 over relative paths, sizes and mtimes)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:max_files]
    for f in files:
        st = f.stat()
        rel = f.name if f == path else str(f.relative_to(path))
        h.update(f"{rel}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


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
