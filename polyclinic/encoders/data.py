"""Pairs and parallel sentences from files: JSONL / JSON / TSV / CSV / parquet.

Pairs files need ``anchor`` and ``positive`` columns (``negative`` optional); other columns
(``concept_id``, ``kind``, ``lang`` …) are kept for splitting and evaluation and dropped before the
loss sees the batch. Parallel files need a source (English) and a translation column; a headerless
two-column TSV (the sentence-transformers parallel-sentences format) is read as (source, translation).

Files are opened by :mod:`polyclinic.textfiles` (BOM / UTF-16 / UTF-32, gzip / zstd / bzip2 / xz), and every
problem is a :class:`UserError` with ``file:line``: undecodable bytes, a JSON line that is not an object, a
TSV/CSV row with fewer cells than the header (or than the column it must supply). These readers train
models, so a bad row stops the run instead of being silently dropped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Iterator

from polyclinic import textfiles
from polyclinic.errors import UserError

PAIR_COLUMNS = ("anchor", "positive")


def _delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of the non-empty rows of a TSV/CSV file (TSV: no quoting)."""
    lines = (line for _, line in textfiles.iter_lines(path, strict=True, newline=""))
    reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    try:
        for r in reader:
            if r:
                yield reader.line_num, r
    except csv.Error as exc:
        raise UserError(f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})") from None


def _check_width(path: Path, line: int, row: list[str], header: list[str], delimiter: str) -> None:
    while len(row) > len(header) and row[-1] == "":
        row.pop()  # trailing empty cells (a trailing delimiter)
    if len(row) != len(header):
        sep = "<TAB>" if delimiter == "\t" else delimiter
        raise UserError(f"{path}:{line}: {len(row)} cell(s), but the header has {len(header)}: expected "
                        f"{sep.join(header)}" + (" (a TSV cell cannot contain a tab)" if len(row) > len(header) and sep == "<TAB>" else ""))


def _read_delimited(path: Path, delimiter: str) -> list[dict]:
    rows = list(_delimited_rows(path, delimiter))
    if not rows:
        return []
    header = [h.strip() for h in rows[0][1]]
    out = []
    for line, r in rows[1:]:
        _check_width(path, line, r, header, delimiter)
        out.append(dict(zip(header, r)))
    return out


def _format_suffix(path: Path) -> str:
    """``.jsonl`` for ``x.jsonl``, ``x.jsonl.gz``, ``x.jsonl.zst`` …"""
    name = path.name.lower()
    for c in textfiles.COMPRESSED_SUFFIXES:
        if name.endswith(c):
            name = name[: -len(c)]
            break
    return Path(name).suffix


def _objects(path: Path, rows: list, where: str = "") -> list[dict]:
    for k, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise UserError(f"{path}{where or f' record {k}'}: expected a JSON object with named fields, got {type(r).__name__}")
    return rows


def read_records(path: str | Path) -> list[dict]:
    """Rows of a JSONL/JSON/TSV/CSV/parquet file as dicts (errors name the file and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = _format_suffix(path)
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for i, line in textfiles.iter_lines(path, strict=True):
            if line.strip():
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise UserError(f"{path}:{i}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
                out.extend(_objects(path, [rec], f":{i}"))
        return out
    if suffix == ".json":
        try:
            data = json.loads(textfiles.read_text(path))
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if isinstance(data, dict):  # column-oriented
            keys = list(data)
            if not all(isinstance(data[k], list) for k in keys):
                raise UserError(f"{path}: a JSON object must map each column to a list of values")
            if len({len(data[k]) for k in keys}) > 1:
                raise UserError(f"{path}: columns have different lengths: "
                                + ", ".join(f"{k} {len(data[k])}" for k in keys))
            return [dict(zip(keys, vals)) for vals in zip(*(data[k] for k in keys))]
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a list of records or an object of columns, got {type(data).__name__}")
        return _objects(path, data)
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
        if _format_suffix(path) in (".tsv", ".txt") and path.is_file():
            rows = list(_delimited_rows(path, "\t"))
            header = [h.strip() for h in rows[0][1]] if rows else []
            if source_column in header and target_column in header:
                i, j = header.index(source_column), header.index(target_column)
                body = rows[1:]
                expected = f"the columns of the header ({'<TAB>'.join(header)})"
            else:
                i, j, body = 0, 1, rows
                expected = "source<TAB>translation (a headerless parallel TSV)"
            need = max(i, j) + 1
            for line, r in body:
                if len(r) < need:
                    raise UserError(f"{path}:{line}: {len(r)} cell(s), expected at least {need}: {expected}")
                src.append(r[i])
                tgt.append(r[j])
            continue
        recs = read_records(path)
        if recs and (source_column not in recs[0] or target_column not in recs[0]):
            raise UserError(
                f"{path}: needs columns {source_column!r} and {target_column!r} (found {sorted(recs[0])}); "
                "set phases.distill.parallel.source_column / target_column"
            )
        for k, r in enumerate(recs, 1):
            if source_column not in r or target_column not in r:
                raise UserError(f"{path}: record {k} has no {source_column!r} / {target_column!r} field")
            src.append("" if r[source_column] is None else str(r[source_column]))
            tgt.append("" if r[target_column] is None else str(r[target_column]))
    keep = [k for k in range(len(src)) if src[k].strip() and tgt[k].strip()]
    if not keep:
        raise UserError("no parallel sentences found")
    return Dataset.from_dict({"english": [src[k] for k in keep], "non_english": [tgt[k] for k in keep]})
