"""Input readers. Every reader is a generator of :class:`RawDoc` (a document) or :class:`BadRecord`
(something unreadable, with ``file:line``), so bad input is counted and reported while the build goes on.

Supported inputs (``SourceConfig.type``):

- ``jsonl``: one JSON object per line (``.jsonl`` or ``.jsonl.gz``); fields ``text_field``, ``lang_field``, ``id_field``.
- ``text``: plain UTF-8 text; ``text_unit`` = ``line`` | ``paragraph`` (blank-line separated) | ``file``.
- ``parquet``: read in record batches (columns ``text_field`` / ``lang_field`` / ``id_field``).
- ``hub``: a Hub dataset id (or a local dataset folder) via ``datasets.load_dataset(..., streaming=True)``.
- ``packaged``: terminologies shipped as Python packages (:mod:`polyclinic.data.packaged`).

``path`` may be a file, a folder (all matching files below it, sorted) or a glob; relative paths are
resolved against the current directory. :func:`validate_sources` checks everything before any work.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from polyclinic.data.config import SourceConfig
from polyclinic.errors import UserError

_EXTENSIONS = {
    "jsonl": (".jsonl", ".jsonl.gz", ".json", ".ndjson"),
    "text": (".txt", ".txt.gz", ".text"),
    "parquet": (".parquet",),
}


@dataclass(slots=True)
class RawDoc:
    source: str
    where: str
    text: str
    lang: Any
    raw_id: Any = None


@dataclass(slots=True)
class BadRecord:
    source: str
    where: str
    reason: str
    detail: str = ""
    lang: Any = None


@dataclass
class ResolvedSource:
    cfg: SourceConfig
    label: str
    files: list[Path] = field(default_factory=list)
    hub_dataset: Any = None  # the streaming dataset, opened during validation
    fingerprint_paths: dict[str, str] = field(default_factory=dict)
    input_bytes: int = 0


def _resolve_files(src: SourceConfig) -> list[Path]:
    raw = os.path.expanduser(str(src.path))
    p = Path(raw)
    if any(ch in raw for ch in "*?["):
        files = sorted(Path(x) for x in glob.glob(raw, recursive=True) if Path(x).is_file())
        if not files:
            raise UserError(f"source {src.label!r}: the pattern {raw!r} matches no file (cwd: {os.getcwd()})")
        return files
    if p.is_dir():
        files = sorted(x for x in p.rglob("*") if x.is_file() and x.name.lower().endswith(_EXTENSIONS[src.type]))
        if not files:
            raise UserError(
                f"source {src.label!r}: folder {p} holds no {src.type} files ({', '.join(_EXTENSIONS[src.type])})"
            )
        return files
    if not p.is_file():
        raise UserError(
            f"source {src.label!r}: input file not found: {p} (resolved from cwd {os.getcwd()}); fix `path` in the config"
        )
    return [p]


def validate_sources(sources: list[SourceConfig]) -> list[ResolvedSource]:
    """Check every input before any work: files exist, columns exist, packages are installed, Hub ids open."""
    from polyclinic.data import packaged

    resolved = []
    for src in sources:
        rs = ResolvedSource(cfg=src, label=src.label)
        if src.type in ("jsonl", "text", "parquet"):
            rs.files = _resolve_files(src)
            for i, f in enumerate(rs.files):
                rs.fingerprint_paths[rs.label if len(rs.files) == 1 else f"{rs.label}[{i}]"] = str(f)
                rs.input_bytes += f.stat().st_size
            if src.type == "parquet":
                import pyarrow.parquet as pq

                for f in rs.files:
                    try:
                        names = set(pq.ParquetFile(str(f)).schema_arrow.names)
                    except Exception as exc:  # noqa: BLE001 - any pyarrow error means unreadable input
                        raise UserError(f"source {rs.label!r}: {f} is not a readable Parquet file: {exc}") from None
                    needed = [c for c in (src.text_field, src.lang_field, src.id_field) if c]
                    missing = [c for c in needed if c not in names]
                    if missing:
                        raise UserError(
                            f"source {rs.label!r}: {f} has no column(s) {missing}; it has {sorted(names)}. "
                            f"Set text_field / lang_field / id_field."
                        )
        elif src.type == "packaged":
            info = packaged.packaged_info(str(src.id))
            packaged.check_available(info.id)
            if src.lang and src.lang != info.lang:
                raise UserError(f"packaged source {info.id!r} is in {info.lang!r}, not {src.lang!r}; drop `lang`")
            data = packaged.data_file(info.id)
            if data is not None:
                rs.fingerprint_paths[rs.label] = str(data)
        elif src.type == "hub":
            rs.hub_dataset = open_hub_dataset(src)
            rs.fingerprint_paths[rs.label] = f"hf://datasets/{src.id}" + (f"@{src.revision}" if src.revision else "")
        resolved.append(rs)
    return resolved


def open_hub_dataset(src: SourceConfig):
    """``datasets.load_dataset(id, config, split=..., streaming=True)``; works for Hub ids and local dataset folders."""
    import datasets

    try:
        return datasets.load_dataset(
            str(src.id), src.config, split=src.split, streaming=True, revision=src.revision
        )
    except Exception as exc:  # noqa: BLE001 - report any loading failure as a user-fixable problem
        raise UserError(
            f"source {src.label!r}: could not open dataset {src.id!r} (config={src.config!r}, split={src.split!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _lang_of(src: SourceConfig, rec: dict) -> Any:
    return src.lang if src.lang else rec.get(str(src.lang_field))


def _read_jsonl(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    src = rs.cfg
    for path in rs.files:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                where = f"{path}:{lineno}"
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield BadRecord(rs.label, where, "invalid_utf8", str(exc), src.lang)
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield BadRecord(rs.label, where, "corrupt_json", str(exc), src.lang)
                    continue
                if not isinstance(rec, dict):
                    yield BadRecord(rs.label, where, "corrupt_json", f"expected an object, got {type(rec).__name__}", src.lang)
                    continue
                text = rec.get(src.text_field)
                if not isinstance(text, str):
                    yield BadRecord(rs.label, where, "missing_text", f"no string field {src.text_field!r}", _lang_of(src, rec))
                    continue
                raw_id = rec.get(src.id_field) if src.id_field else None
                yield RawDoc(rs.label, where, text, _lang_of(src, rec), raw_id)


def _read_text(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    src = rs.cfg
    unit = src.text_unit
    for path in rs.files:
        with _open_binary(path) as fh:
            buf: list[str] = []
            start = 0
            bad: tuple[int, str] | None = None

            def emit():
                where = f"{path}:{start}"
                if bad is not None:
                    return BadRecord(rs.label, f"{path}:{bad[0]}", "invalid_utf8", bad[1], src.lang)
                return RawDoc(rs.label, where, "".join(buf), src.lang, None)

            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    line = None
                    err = (lineno, str(exc))
                if unit == "line":
                    if line is None:
                        yield BadRecord(rs.label, f"{path}:{lineno}", "invalid_utf8", err[1], src.lang)
                    elif line.strip():
                        yield RawDoc(rs.label, f"{path}:{lineno}", line, src.lang, None)
                    continue
                if unit == "paragraph" and line is not None and not line.strip():
                    if buf or bad:
                        yield emit()
                    buf, bad = [], None
                    continue
                if not buf and bad is None:
                    start = lineno
                if line is None:
                    bad = bad or err
                else:
                    buf.append(line)
            if buf or bad:
                yield emit()


def _read_parquet(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    import pyarrow.parquet as pq

    src = rs.cfg
    cols = list(dict.fromkeys(c for c in (src.text_field, src.lang_field, src.id_field) if c))
    for path in rs.files:
        row = 0
        pf = pq.ParquetFile(str(path))
        for batch in pf.iter_batches(batch_size=1024, columns=cols):
            data = batch.to_pydict()
            texts = data[src.text_field]
            langs = data[src.lang_field] if src.lang_field else None
            ids = data[src.id_field] if src.id_field else None
            for i, text in enumerate(texts):
                row += 1
                where = f"{path}:row{row}"
                lang = src.lang if src.lang else langs[i]
                if not isinstance(text, str):
                    yield BadRecord(rs.label, where, "missing_text", f"column {src.text_field!r} is {text!r}", lang)
                    continue
                yield RawDoc(rs.label, where, text, lang, ids[i] if ids is not None else None)


def _read_hub(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    src = rs.cfg
    ds = rs.hub_dataset if rs.hub_dataset is not None else open_hub_dataset(src)
    for i, rec in enumerate(ds):
        where = f"{src.id}[{src.split}]#{i}"
        text = rec.get(src.text_field)
        lang = _lang_of(src, rec)
        if not isinstance(text, str):
            yield BadRecord(rs.label, where, "missing_text", f"no string field {src.text_field!r}", lang)
            continue
        yield RawDoc(rs.label, where, text, lang, rec.get(src.id_field) if src.id_field else None)


def _read_packaged(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    from polyclinic.data.packaged import iter_packaged, packaged_info

    info = packaged_info(str(rs.cfg.id))
    for raw_id, text in iter_packaged(info.id):
        yield RawDoc(rs.label, f"{info.id}:{raw_id}", text, info.lang, raw_id)


_READERS = {"jsonl": _read_jsonl, "text": _read_text, "parquet": _read_parquet, "hub": _read_hub, "packaged": _read_packaged}


def iter_source(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    it = _READERS[rs.cfg.type](rs)
    return itertools.islice(it, rs.cfg.max_docs) if rs.cfg.max_docs else it


def document_id(source: str, raw_id: Any, text: str) -> str:
    """``<source>:<raw id>``, or ``<source>:<16 hex of the text hash>`` when the input has no ids.

    Content-derived ids make the split independent of input order and stable across runs.
    """
    if raw_id is not None and str(raw_id) != "":
        return f"{source}:{raw_id}"
    return f"{source}:{hashlib.blake2b(text.encode('utf-8', 'surrogatepass'), digest_size=8).hexdigest()}"
