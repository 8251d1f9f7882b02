"""Corpus -> tokenised -> packed rows -> per-rank micro-batches, with exact data-position resume.

Order is a pure function of ``(seed, epoch, global micro-step)``:
  - every epoch is a permutation of the packed rows drawn from ``default_rng([seed, epoch])``;
  - global micro-step ``m`` takes rows ``perm[k*G:(k+1)*G]`` with ``G = per_device_batch * world_size``
    (``k = m mod micro-steps-per-epoch``), rank ``r`` the slice ``[r*B:(r+1)*B]``;
  - every row is corrupted with the index ``epoch * num_rows + row_id`` (``SpanCorruptionCollator``'s
    index path), so its noise depends neither on the batch it lands in nor on the number of processes.
So one rank with batch 4 sees exactly the rows and masks two ranks with batch 2 see together, and a resumed
run restarts at micro-step ``step * grad_accum`` and sees what the uninterrupted run saw. Accelerate's own
dataloader sharding (batch ``i`` to rank ``i % world``) and ``skip_first_batches`` are not used for that reason.

A local corpus folder is read only when it is complete (``COMPLETE`` marker, every shard of its ``stats.json``
present and whole): training on what an interrupted build or a partial copy happens to contain would silently
change the data distribution (a language missing) with nothing in the run saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("pretraining.data")


def _is_built_corpus(corpus: Path) -> bool:
    return corpus.is_dir() and (corpus / "COMPLETE").is_file() and (corpus / "stats.json").is_file()


def _parquet_problem(path: Path) -> str | None:
    """Missing, empty or cut-off parquet file (a complete one ends with the ``PAR1`` magic after its footer)."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size < 12:
        return f"{size} bytes, not a parquet file"
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        if fh.read(4) != b"PAR1":
            return "truncated (no parquet footer)"
    return None


def check_corpus_complete(corpus: str | Path) -> None:
    """Refuse a local corpus folder that is not complete, instead of training on whatever happens to be there.

    A folder counts as complete when it has the ``COMPLETE`` marker (written last by ``polyclinic corpus
    build``; a hand-made folder in the documented layout must be marked so too) and, when it has a
    ``stats.json``, every shard listed there (every language, every split) exists and is a whole parquet
    file. Hub ids are not checked here (the Hub serves whole commits).
    """
    path = Path(corpus)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"data.corpus: {corpus} is a file, not a corpus folder")
    if not (path / "COMPLETE").is_file():
        raise UserError(
            f"data.corpus: {corpus} is not a complete corpus folder (no COMPLETE marker: an interrupted build, or a "
            f"partial copy). Rebuild it with `polyclinic corpus build`; a hand-made folder with the <lang>/<split>-*.parquet "
            f"layout must be marked finished with an empty COMPLETE file"
        )
    if not (path / "stats.json").is_file():
        return
    from polyclinic.io import read_json

    try:
        stats = read_json(path / "stats.json")
        shards = stats.get("shards", {}) if isinstance(stats, dict) else None
        if not isinstance(shards, dict):
            raise ValueError("no shards mapping")
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise UserError(f"data.corpus: {corpus}/stats.json is unreadable ({exc}); rebuild the corpus") from None
    problems = []
    for lang, splits in shards.items():
        for split, files in (splits or {}).items():
            for rel in files or []:
                problem = _parquet_problem(path / rel)
                if problem:
                    problems.append(f"{rel} ({lang}/{split}): {problem}")
    declared = stats.get("languages_with_data")
    if isinstance(declared, list):
        problems += [f"language {lang!r}: listed in languages_with_data but has no shards" for lang in declared
                     if lang not in shards]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserError(f"data.corpus: {corpus} is incomplete compared to its stats.json: {shown}. "
                        f"Rebuild it with `polyclinic corpus build` (or copy it again)")


def corpus_languages(corpus: str | Path, split: str = "train") -> list[str]:
    """Languages of a local corpus folder that have a ``split`` (from ``stats.json`` of a built corpus, else
    from ``<lang>/<split>-*.parquet`` files). Hub ids: the dataset's configs. A local folder must be complete
    (:func:`check_corpus_complete`)."""
    path = Path(corpus)
    if not path.exists():
        if "/" in str(corpus) and not str(corpus).startswith((".", "/")):
            import datasets

            return list(datasets.get_dataset_config_names(str(corpus)))
        raise UserError(f"data.corpus: folder not found: {corpus}")
    check_corpus_complete(path)
    if _is_built_corpus(path):
        from polyclinic.io import read_json

        shards = read_json(path / "stats.json").get("shards", {})
        langs = sorted(lang for lang, splits in shards.items() if split in splits)
    else:
        langs = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob(f"{split}-*.parquet")))
    if not langs:
        raise UserError(f"data.corpus: {corpus} has no <lang>/{split}-*.parquet files (build one with `polyclinic corpus build`)")
    return langs


def load_split(corpus: str | Path, langs: Sequence[str] | None, split: str, text_column: str = "text"):
    """One :class:`datasets.Dataset` with the ``split`` rows of ``langs`` (all languages when None).

    A folder built by ``polyclinic corpus build`` (and a Hub dataset id) is read with
    :func:`polyclinic.data.corpus.load_corpus`; a hand-made folder with the documented layout
    (``<lang>/<split>-*.parquet`` and a ``COMPLETE`` marker, no ``stats.json``) is read directly. An incomplete
    folder is refused (:func:`check_corpus_complete`).
    """
    path = Path(corpus)
    available = corpus_languages(corpus, split)
    if langs:
        missing = [lang for lang in langs if lang not in available]
        if missing:
            raise UserError(
                f"data.langs: {missing} have no {split} data in {corpus} (available: {', '.join(available)})"
            )
    langs = list(langs) if langs else available
    if not path.exists() or _is_built_corpus(path):
        from polyclinic.data.corpus import load_corpus

        ds = load_corpus(str(corpus), langs=langs, split=split, streaming=False)
    else:
        from datasets import load_dataset

        files = [str(f) for lang in langs for f in sorted((path / lang).glob(f"{split}-*.parquet"))]
        bad = [f"{f}: {p}" for f in files if (p := _parquet_problem(Path(f)))]
        if bad:
            raise UserError(f"data.corpus: {corpus} has damaged parquet files: {'; '.join(bad[:5])}")
        log.info("%s has no stats.json: reading %d parquet files directly", corpus, len(files))
        ds = load_dataset("parquet", data_files={split: files}, split=split)
    if text_column not in ds.column_names:
        raise UserError(f"data.text_column: {corpus} has no column {text_column!r} (columns: {ds.column_names})")
    return ds


@dataclass
class PackedSplit:
    rows: Any  # datasets.Dataset with "input_ids" (raw_length each)
    raw_length: int
    stats: dict

    def __len__(self) -> int:
        return len(self.rows)

    def fetch(self, row_ids: Sequence[int]) -> np.ndarray:
        """(len(row_ids), raw_length) int64 array of the given rows."""
        if len(row_ids) == 0:
            return np.zeros((0, self.raw_length), dtype=np.int64)
        order = np.argsort(row_ids, kind="stable")
        got = self.rows[[int(row_ids[i]) for i in order]]["input_ids"]
        arr = np.asarray(got if not isinstance(got, list) else np.stack([np.asarray(r) for r in got]), dtype=np.int64)
        out = np.empty_like(arr)
        out[order] = arr
        return out


def pack_split(ds, tokenizer, raw_length: int, text_column: str = "text", num_proc: int | None = None,
               desc: str | None = None) -> PackedSplit:
    from polyclinic.packing import pack_dataset

    packed, stats = pack_dataset(ds, tokenizer, raw_length, text_column=text_column, num_proc=num_proc, desc=desc)
    packed = packed.with_format("numpy")
    return PackedSplit(rows=packed, raw_length=int(raw_length), stats=stats.to_dict())


class MicroBatches(torch.utils.data.Dataset):
    """Item ``k`` = the collated batch of this rank for global micro-step ``start + k`` (see module doc)."""

    def __init__(self, split: PackedSplit, collator, per_device_batch: int, world_size: int, rank: int,
                 seed: int, shuffle: bool, start: int, stop: int):
        self.split = split
        self.collator = collator
        self.batch = int(per_device_batch)
        self.world = int(world_size)
        self.rank = int(rank)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.start = int(start)
        self.stop = int(stop)
        self.num_rows = len(split)
        self.global_batch = self.batch * self.world
        self.per_epoch = self.num_rows // self.global_batch
        if self.per_epoch == 0:
            raise UserError(
                f"the packed corpus has {self.num_rows} rows of {split.raw_length} tokens, fewer than one global micro-batch "
                f"({self.batch} per device x {self.world} processes): add data or lower training.per_device_batch_size / "
                f"data.input_length"
            )
        self._perm_epoch: int | None = None
        self._perm: np.ndarray | None = None

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            if self.shuffle:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
            else:
                self._perm = np.arange(self.num_rows)
            self._perm_epoch = epoch
        return self._perm

    def row_ids(self, micro_step: int) -> tuple[int, np.ndarray]:
        epoch, k = divmod(int(micro_step), self.per_epoch)
        lo = k * self.global_batch + self.rank * self.batch
        return epoch, self.permutation(epoch)[lo: lo + self.batch]

    def __getitem__(self, k: int) -> dict:
        if k < 0 or k >= len(self):
            raise IndexError(k)
        epoch, ids = self.row_ids(self.start + k)
        arr = self.split.fetch(ids)
        rows = [{"input_ids": arr[i], "index": int(epoch * self.num_rows + ids[i])} for i in range(len(ids))]
        return self.collator(rows)


def micro_batch_loader(dataset: MicroBatches, num_workers: int = 0, pin_memory: bool = False):
    """Sequential DataLoader over pre-collated micro-batches (workers overlap collation with compute)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def eval_batches(split: PackedSplit, collator, batch_size: int, max_rows: int | None, rank: int = 0,
                 world_size: int = 1):
    """Yield this rank's share of the held-out rows ``0..min(len, max_rows)-1`` in batches of ``batch_size``
    (batch ``k`` goes to rank ``k % world``).

    Rows are corrupted with their row id as index, so the held-out set and its masks are the same at every
    evaluation, for any batch size and number of processes (the token-weighted loss over them is too). Every
    rank runs the same number of forwards (ZeRO-3 / FSDP gather parameters collectively); a rank short of
    one gets a repeated batch marked ``"_skip"``, which is not counted.
    """
    n = len(split) if max_rows is None else min(len(split), int(max_rows))
    if n == 0:
        return
    num_batches = -(-n // batch_size)
    per_rank = -(-num_batches // world_size)
    for j in range(per_rank):
        k = j * world_size + rank
        skip = k >= num_batches
        if skip:
            k = num_batches - 1
        ids = np.arange(k * batch_size, min((k + 1) * batch_size, n))
        arr = split.fetch(ids)
        batch = collator([{"input_ids": arr[i], "index": int(ids[i])} for i in range(len(ids))])
        if skip:
            batch["_skip"] = torch.ones(())
        yield batch
