"""Eval JSON (the CONTRIBUTING.md contract) and a combined summary.

One file per task (and language): ``runs/<run>/eval/<task>.json`` ::

    {"task": ..., "dataset": ..., "split": ..., "language": ..., "metrics": {name: value},
     "model": path, "num_examples": N}

Every record written through :func:`write_eval` carries ``weights_sha256``, the hash of the weight files of
the local model folder it measured (:func:`weights_sha256`), so a card can refuse a number measured on other
weights than the ones being released (:func:`polyclinic.hub.cards.read_eval_dir`).

Per-language breakdowns are written as extra records ``<task>.<lang>.json`` in the same format, so every
file under ``eval/`` is a valid record that a card can turn into a ``model-index`` entry. The combined
summary is ``eval/SUMMARY.md`` (Markdown, not JSON, so ``eval/*.json`` stays records only).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from polyclinic.io import atomic_write_text, read_json, write_json

RECORD_KEYS = ("task", "dataset", "split", "language", "metrics", "model", "num_examples")


def eval_record(task: str, dataset: str, split: str, language: str, metrics: dict[str, float], model: str,
                num_examples: int, **extra: Any) -> dict[str, Any]:
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else (round(float(v), 6) if isinstance(v, float) else v))
             for k, v in metrics.items()}
    rec = {"task": task, "dataset": dataset, "split": split, "language": language, "metrics": clean,
           "model": str(model), "num_examples": int(num_examples)}
    rec.update(extra)
    return rec


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
_NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}


def weights_sha256(model: str | Path) -> str | None:
    """One sha256 over the weight files of a model folder (relative path + content hash of each), or None
    when ``model`` is not a local folder with weights (a Hub id, a teacher name). File hashes are cached in
    the process (:func:`polyclinic.manifest.file_sha256`), so per-language records of one model hash it once."""
    folder = Path(str(model))
    if not folder.is_dir():
        return None
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES
                   and f.name not in _NOT_WEIGHTS and not f.name.startswith("rng_state")
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if not files:
        return None
    import hashlib

    from polyclinic.manifest import file_sha256

    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def stamp_weights(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``weights_sha256`` of ``record['model']`` (when it is a local model folder)."""
    if "weights_sha256" not in record:
        digest = weights_sha256(record.get("model", ""))
        if digest:
            record["weights_sha256"] = digest
    return record


def is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in RECORD_KEYS) and isinstance(obj["metrics"], dict)


def default_output(model: str | Path, task: str) -> Path:
    """``<model>/../eval/<task>.json`` (a run's ``final/`` model writes into the run's ``eval/``)."""
    return Path(model).resolve().parent / "eval" / f"{task}.json"


def write_eval(path: str | Path, record: dict[str, Any], by_language: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """Write the main record to ``path`` and each per-language record next to it as ``<stem>.<lang>.json``."""
    path = Path(path)
    if not is_record(record):
        raise ValueError(f"not an eval record (needs {RECORD_KEYS}): {record}")
    written = [write_json(path, stamp_weights(record))]
    for lang, rec in (by_language or {}).items():
        written.append(write_json(path.with_name(f"{path.stem}.{lang}{path.suffix}"), stamp_weights(rec)))
    return written


def collect_records(eval_dir: str | Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(Path(eval_dir).glob("*.json")):
        try:
            obj = read_json(p)
        except ValueError:
            continue
        if is_record(obj):
            obj["_file"] = p.name
            out.append(obj)
    return out


def format_table(records: list[dict[str, Any]], max_metrics: int = 8) -> str:
    """A fixed-width text table: one row per record, the first metrics as columns."""
    if not records:
        return "(no eval records)"
    names: list[str] = []
    for r in records:
        for k in r["metrics"]:
            if k not in names:
                names.append(k)
    names = names[:max_metrics]
    head = ["task", "dataset", "lang", "n"] + names
    rows = []
    for r in records:
        vals = [r["task"], r["dataset"], r["language"], str(r["num_examples"])]
        for k in names:
            v = r["metrics"].get(k)
            vals.append("-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)))
        rows.append(vals)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def write_summary(eval_dir: str | Path) -> Path:
    """``eval/SUMMARY.md``: every record of the folder in one table per task."""
    eval_dir = Path(eval_dir)
    records = collect_records(eval_dir)
    parts = ["# Evaluation summary", ""]
    for task in dict.fromkeys(r["task"] for r in records):
        recs = [r for r in records if r["task"] == task]
        parts += [f"## {task}", "", "```", format_table(recs, max_metrics=12), "```", ""]
    return atomic_write_text(eval_dir / "SUMMARY.md", "\n".join(parts))
