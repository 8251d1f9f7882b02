"""Input readers. Every reader is a generator of :class:`RawDoc` (a document) or :class:`BadRecord`
(something unreadable, with ``file:line``), so bad input is counted and reported while the build goes on.

Supported inputs (``SourceConfig.type``):

- ``jsonl``: one JSON object per line (``.jsonl``, ``.json``, ``.ndjson``, optionally ``.gz`` / ``.zst`` / ``.bz2`` /
  ``.xz``); fields ``text_field``, ``lang_field``, ``id_field``.
- ``text``: plain text; ``text_unit`` = ``line`` | ``paragraph`` (blank-line separated) | ``file``.
- ``parquet``: read in record batches (columns ``text_field`` / ``lang_field`` / ``id_field``).
- ``hub``: a Hub dataset id (or a local dataset folder) via ``datasets.load_dataset(..., streaming=True)``.
- ``packaged``: terminologies shipped as Python packages (:mod:`polyclinic.data.packaged`).

JSONL and text files are opened by :mod:`polyclinic.textfiles` (compression by magic bytes; UTF-8, UTF-16 and
UTF-32 with or without BOM), so a BOM never costs the first record and a UTF-16 file is not "all bad lines".
A line with undecodable bytes, a JSON value that is not an object, a file with no records (``empty_file``) and
a corrupt or truncated compressed file (``unreadable_file``) are each counted as a :class:`BadRecord`, never raised.

``path`` may be a file, a folder (all matching files below it, sorted) or a glob; relative paths are
resolved against the current directory. :func:`validate_sources` checks everything before any work.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from polyclinic import textfiles
from polyclinic.data.config import SourceConfig
from polyclinic.errors import UserError

_TEXT_SUFFIXES = ("",) + textfiles.COMPRESSED_SUFFIXES
_EXTENSIONS = {
    "jsonl": tuple(e + c for e in (".jsonl", ".json", ".ndjson") for c in _TEXT_SUFFIXES),
    "text": tuple(e + c for e in (".txt", ".text") for c in _TEXT_SUFFIXES),
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


def _lang_of(src: SourceConfig, rec: dict) -> Any:
    return src.lang if src.lang else rec.get(str(src.lang_field))


def _file_lines(rs: ResolvedSource, path: Path) -> Iterator[tuple[int, str | None, str] | BadRecord]:
    """``(lineno, line, "")`` for decodable lines, ``(lineno, None, detail)`` for lines with undecodable
    bytes, and BadRecords for an empty file or a corrupt compressed stream (the rest of that file is skipped)."""
    src = rs.cfg
    seen = False
    try:
        with textfiles.open_text(path) as fh:
            enc = fh.sniffed.encoding
            reason = "invalid_utf8" if enc == "utf-8" else "invalid_encoding"
            for lineno, line in enumerate(fh, 1):
                if not seen and line.strip():
                    seen = True
                detail = textfiles.undecodable(line)
                if detail:
                    yield BadRecord(rs.label, f"{path}:{lineno}", reason, f"not valid {enc}: {detail}", src.lang)
                    continue
                yield lineno, line, ""
    except textfiles.TextFileError as exc:
        yield BadRecord(rs.label, str(path), "unreadable_file", str(exc), src.lang)
        return
    if not seen:
        yield BadRecord(rs.label, str(path), "empty_file", "the file holds no records (0 bytes or blank lines only)",
                        src.lang)


def _read_jsonl(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    src = rs.cfg
    for path in rs.files:
        for item in _file_lines(rs, path):
            if isinstance(item, BadRecord):
                yield item
                continue
            lineno, line, _ = item
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else f"{type(exc).__name__}: {str(exc)[:120]}"
                yield BadRecord(rs.label, where, "corrupt_json", msg, src.lang)
                continue
            if not isinstance(rec, dict):
                yield BadRecord(rs.label, where, "corrupt_json", f"expected an object, got {type(rec).__name__}", src.lang)
                continue
            lang = _lang_of(src, rec)
            text = rec.get(src.text_field)
            if not isinstance(text, str):
                yield BadRecord(rs.label, where, "missing_text", f"no string field {src.text_field!r}", lang)
                continue
            raw_id = rec.get(src.id_field) if src.id_field else None
            yield RawDoc(rs.label, where, text, lang, raw_id)


def _read_text(rs: ResolvedSource) -> Iterator[RawDoc | BadRecord]:
    src = rs.cfg
    unit = src.text_unit
    for path in rs.files:
        buf: list[str] = []
        start = 0
        bad: BadRecord | None = None

        def emit():
            return bad if bad is not None else RawDoc(rs.label, f"{path}:{start}", "".join(buf), src.lang, None)

        for item in _file_lines(rs, path):
            if isinstance(item, BadRecord) and item.reason in ("empty_file", "unreadable_file"):
                if buf or bad:
                    yield emit()
                    buf, bad = [], None
                yield item
                continue
            if unit == "line":
                if isinstance(item, BadRecord):
                    yield item
                elif item[1].strip():
                    yield RawDoc(rs.label, f"{path}:{item[0]}", item[1], src.lang, None)
                continue
            if unit == "paragraph" and not isinstance(item, BadRecord) and not item[1].strip():
                if buf or bad:
                    yield emit()
                buf, bad = [], None
                continue
            if isinstance(item, BadRecord):
                bad = bad or item
                continue
            if not buf and bad is None:
                start = item[0]
            buf.append(item[1])
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
