"""Streaming Parquet shards, one writer per (language, split).

Rows are buffered ``batch_rows`` (or ``batch_bytes`` of text) at a time and written as row groups with ``pyarrow.parquet.ParquetWriter``;
a shard is closed when it reaches ``max_rows_per_shard`` rows or ``max_bytes_per_shard`` bytes of text.
Shards are written as ``<lang>/<split>-<k>.parquet.partial`` and renamed to the Hub layout
``<split>-0000K-of-0000N.parquet`` by :meth:`ShardedWriter.finalize`, when N is known.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from polyclinic.data.config import OutputConfig

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("lang", pa.string()), ("source", pa.string())])
COLUMNS = tuple(SCHEMA.names)


class _SplitWriter:
    def __init__(self, folder: Path, split: str, cfg: OutputConfig):
        self.folder, self.split, self.cfg = folder, split, cfg
        self.shards: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0
        self._bytes_in_shard = 0
        self._buf: dict[str, list[str]] = {c: [] for c in COLUMNS}
        self._buf_bytes = 0
        self.rows = 0

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.split}-{len(self.shards):05d}.parquet.partial"
        comp = None if self.cfg.compression == "none" else self.cfg.compression
        self._writer = pq.ParquetWriter(str(path), SCHEMA, compression=comp)
        self.shards.append(path)
        self._rows_in_shard = self._bytes_in_shard = 0

    def add(self, doc_id: str, text: str, lang: str, source: str) -> None:
        nbytes = len(text.encode("utf-8")) if not text.isascii() else len(text)
        if self._writer is not None and (
            self._rows_in_shard + len(self._buf["id"]) >= self.cfg.max_rows_per_shard
            or self._bytes_in_shard + self._buf_bytes + nbytes > self.cfg.max_bytes_per_shard
        ) and (self._rows_in_shard + len(self._buf["id"])) > 0:
            self.flush()
            self._close_shard()
        for c, v in zip(COLUMNS, (doc_id, text, lang, source)):
            self._buf[c].append(v)
        self._buf_bytes += nbytes
        self.rows += 1
        if self._writer is None:
            self._open()
        if len(self._buf["id"]) >= self.cfg.batch_rows or self._buf_bytes >= self.cfg.batch_bytes:
            self.flush()

    def flush(self) -> None:
        n = len(self._buf["id"])
        if not n:
            return
        if self._writer is None:
            self._open()
        table = pa.table({c: pa.array(self._buf[c], type=pa.string()) for c in COLUMNS}, schema=SCHEMA)
        self._writer.write_table(table)
        self._rows_in_shard += n
        self._bytes_in_shard += self._buf_bytes
        self._buf = {c: [] for c in COLUMNS}
        self._buf_bytes = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Path]:
        self.flush()
        self._close_shard()
        total = len(self.shards)
        final = []
        for k, path in enumerate(self.shards):
            dst = path.with_name(f"{self.split}-{k:05d}-of-{total:05d}.parquet")
            os.replace(path, dst)
            final.append(dst)
        return final


class ShardedWriter:
    def __init__(self, root: Path, cfg: OutputConfig):
        self.root, self.cfg = Path(root), cfg
        self._writers: dict[tuple[str, str], _SplitWriter] = {}

    def add(self, doc_id: str, text: str, lang: str, source: str, split: str) -> None:
        key = (lang, split)
        w = self._writers.get(key)
        if w is None:
            w = self._writers[key] = _SplitWriter(self.root / lang, split, self.cfg)
        w.add(doc_id, text, lang, source)

    def finalize(self, languages: list[str]) -> dict[str, dict[str, list[str]]]:
        """Close every writer; returns ``{lang: {split: [relative shard paths]}}`` for the splits that have rows.

        An empty split gets no file (``datasets`` refuses a declared split with no rows), so a language with
        too few documents for a validation share has a train split only.
        """
        out: dict[str, dict[str, list[str]]] = {}
        order = {lang: i for i, lang in enumerate(languages)}
        for (lang, split), w in sorted(self._writers.items(), key=lambda kv: (order.get(kv[0][0], 1 << 30), kv[0])):
            if w.rows == 0:
                continue
            paths = w.close()
            out.setdefault(lang, {})[split] = [str(p.relative_to(self.root)) for p in paths]
        return out
