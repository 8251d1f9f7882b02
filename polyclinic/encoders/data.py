"""Pairs and parallel sentences from files: JSONL / JSON / TSV / CSV / parquet.

Pairs files need ``anchor`` and ``positive`` columns (``negative`` optional); other columns
(``concept_id``, ``kind``, ``lang`` …) are kept for splitting and evaluation and dropped before the
loss sees the batch. Parallel files need a source (English) and a translation column; a headerless
two-column TSV (the sentence-transformers parallel-sentences format) is read as (source, translation).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable

from polyclinic.errors import UserError

PAIR_COLUMNS = ("anchor", "positive")


def _read_delimited(path: Path, delimiter: str) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        rows = [r for r in reader if r]
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    return [dict(zip(header, r)) for r in rows[1:]] if header else []


def read_records(path: str | Path) -> list[dict]:
    """Rows of a JSONL/JSON/TSV/CSV/parquet file as dicts (errors name the file and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
        return out
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):  # column-oriented
            keys = list(data)
            return [dict(zip(keys, vals)) for vals in zip(*(data[k] for k in keys))]
        return list(data)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix in (".tsv", ".txt"):
        return _read_delimited(path, "\t")
    if suffix == ".csv":
        return _read_delimited(path, ",")
    raise UserError(f"{path}: unsupported pairs format {suffix!r} (use .jsonl, .json, .tsv, .csv or .parquet)")


def load_pairs_files(paths: Iterable[str | Path]):
    """One ``datasets.Dataset`` with at least ``anchor, positive`` from one or more files."""
    from datasets import Dataset

    rows: list[dict] = []
    columns: list[str] | None = None
    for path in paths:
        recs = read_records(path)
        if not recs:
            raise UserError(f"{path}: no rows")
        missing = [c for c in PAIR_COLUMNS if c not in recs[0]]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}; pairs files need anchor, positive[, negative] (found {sorted(recs[0])})")
        cols = [c for c in ("anchor", "positive", "negative", "concept_id", "kind", "lang") if c in recs[0]]
        columns = cols if columns is None else [c for c in columns if c in cols]
        rows.extend(recs)
    if columns is None:
        raise UserError("no pairs files given")
    data = {c: [("" if r.get(c) is None else str(r.get(c))) for r in rows] for c in columns}
    keep = [i for i in range(len(rows)) if data["anchor"][i].strip() and data["positive"][i].strip()]
    data = {c: [v[i] for i in keep] for c, v in data.items()}
    return Dataset.from_dict(data)


def loss_columns(dataset, hard_negatives: bool):
    """Only the columns the contrastive loss reads, in order: anchor, positive[, negative]."""
    cols = ["anchor", "positive"]
    if hard_negatives:
        if "negative" not in dataset.column_names:
            raise UserError("loss.hard_negatives=true but the pairs have no 'negative' column")
        cols.append("negative")
    return dataset.select_columns(cols)


def split_pairs(dataset, dev_fraction: float, seed: int):
    """Split pairs so that no anchor (or concept, when concept_id exists) is in both parts."""
    import random

    key = "concept_id" if "concept_id" in dataset.column_names else "anchor"
    groups = sorted(set(dataset[key]))
    rng = random.Random(seed)
    rng.shuffle(groups)
    n_dev = int(round(len(groups) * dev_fraction))
    dev_groups = set(groups[:n_dev])
    keys = dataset[key]
    dev_idx = [i for i, k in enumerate(keys) if k in dev_groups]
    train_idx = [i for i, k in enumerate(keys) if k not in dev_groups]
    return dataset.select(train_idx), dataset.select(dev_idx)


def load_parallel_files(paths: Iterable[str | Path], source_column: str = "source", target_column: str = "translation"):
    """(english, non_english) pairs from files; headerless 2-column TSVs are (source, translation)."""
    from datasets import Dataset

    src: list[str] = []
    tgt: list[str] = []
    for path in paths:
        path = Path(path)
        if path.suffix.lower() in (".tsv", ".txt") and path.is_file():
            with path.open(encoding="utf-8", newline="") as fh:
                rows = [r for r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
            if rows and source_column in rows[0] and target_column in rows[0]:
                i, j = rows[0].index(source_column), rows[0].index(target_column)
                body = rows[1:]
            else:
                i, j, body = 0, 1, rows
            for n, r in enumerate(body, 1):
                if len(r) < 2:
                    raise UserError(f"{path}:{n}: expected source<TAB>translation")
                src.append(r[i])
                tgt.append(r[j])
            continue
        recs = read_records(path)
        if recs and (source_column not in recs[0] or target_column not in recs[0]):
            raise UserError(
                f"{path}: needs columns {source_column!r} and {target_column!r} (found {sorted(recs[0])}); "
                "set phases.distill.parallel.source_column / target_column"
            )
        for r in recs:
            src.append(str(r[source_column]))
            tgt.append(str(r[target_column]))
    keep = [k for k in range(len(src)) if src[k].strip() and tgt[k].strip()]
    if not keep:
        raise UserError("no parallel sentences found")
    return Dataset.from_dict({"english": [src[k] for k in keep], "non_english": [tgt[k] for k in keep]})
