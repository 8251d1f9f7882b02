"""Document packing for span corruption: every row is exactly ``raw_length`` real tokens.

Each document is tokenised without special tokens, followed by EOS, and the documents are concatenated
and cut into rows of ``raw_length`` (568 for 512-token inputs, see
:func:`polyclinic.span_corruption.compute_input_and_target_lengths`). Nothing is padded: the short
remainder is dropped and counted, so ``non_pad_fraction`` is 1.0 and ``dropped_tokens`` says what it cost.

* :func:`pack_dataset` packs a :class:`datasets.Dataset` with two ``map(batched=True)`` passes (tokenise,
  then group), so HF caching and fingerprinting apply. Each map batch packs on its own and drops its own
  remainder (never a short row: HF issue #23248), i.e. at most ``raw_length - 1`` tokens per
  ``batch_size`` documents. The statistics are computed from the two results, so they are right even when
  both passes come from the cache.
* :func:`iter_packed` packs a stream of texts, carrying the leftover across documents (only the final
  remainder is dropped).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

import numpy as np

__all__ = ["PackingStats", "pack_token_lists", "tokenize_documents", "pack_dataset", "iter_packed"]


@dataclass
class PackingStats:
    """What packing did. ``tokens`` counts document tokens including the EOS after each document."""

    documents: int = 0
    tokens: int = 0
    rows: int = 0
    dropped_tokens: int = 0
    non_pad_fraction: float = 0.0
    raw_length: int = 0

    @property
    def packed_tokens(self) -> int:
        return self.rows * self.raw_length

    @property
    def kept_fraction(self) -> float:
        """Share of the corpus tokens that made it into rows (1 - dropped / tokens)."""
        return self.packed_tokens / self.tokens if self.tokens else 0.0

    def finalize(self) -> "PackingStats":
        # rows hold only real tokens (no padding is ever added)
        self.non_pad_fraction = 1.0 if self.rows else 0.0
        return self

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["packed_tokens"] = self.packed_tokens
        out["kept_fraction"] = self.kept_fraction
        return out


def _check_tokenizer(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("packing needs a tokenizer with an eos token (T5 layout: eos=1)")
    return int(eos)


def tokenize_documents(texts: list[str], tokenizer: Any) -> list[list[int]]:
    """Token ids of each text (no special tokens) followed by EOS; documents with no tokens give ``[]``."""
    eos = _check_tokenizer(tokenizer)
    texts = ["" if t is None else str(t) for t in texts]
    encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return [list(ids) + [eos] if len(ids) else [] for ids in encoded]


def pack_token_lists(docs: list[list[int]], raw_length: int) -> tuple[np.ndarray, int]:
    """Concatenate token lists and cut rows of ``raw_length``: ``(rows (n, raw_length) int64, dropped tokens)``."""
    if raw_length < 1:
        raise ValueError(f"raw_length must be >= 1, got {raw_length}")
    lengths = [len(d) for d in docs]
    total = int(sum(lengths))
    n_rows = total // raw_length
    if n_rows == 0:
        return np.zeros((0, raw_length), dtype=np.int64), total
    flat = np.fromiter((t for d in docs for t in d), dtype=np.int64, count=total)
    return flat[: n_rows * raw_length].reshape(n_rows, raw_length), total - n_rows * raw_length


def pack_dataset(
    dataset: Any,
    tokenizer: Any,
    raw_length: int,
    text_column: str = "text",
    batch_size: int = 1000,
    num_proc: int | None = None,
    desc: str | None = None,
) -> tuple[Any, "PackingStats"]:
    """Pack a :class:`datasets.Dataset` into rows of ``raw_length`` token ids (column ``input_ids``).

    Returns ``(packed, stats)``. ``batch_size`` documents are packed together per map batch; the remainder
    of each batch is dropped (and counted), never emitted as a short row.
    """
    import pyarrow.compute as pc
    from datasets import Features, List, Value

    if text_column not in dataset.column_names:
        raise ValueError(f"dataset has no column {text_column!r} (columns: {dataset.column_names})")
    _check_tokenizer(tokenizer)
    raw_length = int(raw_length)

    def _tokenize(batch: dict) -> dict:
        return {"input_ids": tokenize_documents(batch[text_column], tokenizer)}

    def _group(batch: dict) -> dict:
        rows, _ = pack_token_lists(batch["input_ids"], raw_length)
        return {"input_ids": rows}

    tokenized = dataset.map(
        _tokenize,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        features=Features({"input_ids": List(Value("int32"))}),
        desc=desc or "tokenize documents",
    )
    packed = tokenized.map(
        _group,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=tokenized.column_names,
        features=Features({"input_ids": List(Value("int32"))}),
        desc=f"pack rows of {raw_length}",
    )
    column = tokenized.data.column("input_ids")
    tokens = int(pc.sum(pc.list_value_length(column)).as_py() or 0) if len(tokenized) else 0
    stats = PackingStats(
        documents=len(dataset),
        tokens=tokens,
        rows=len(packed),
        raw_length=raw_length,
    )
    stats.dropped_tokens = stats.tokens - stats.packed_tokens
    return packed, stats.finalize()


def iter_packed(
    texts: Iterable[str],
    tokenizer: Any,
    raw_length: int,
    batch_size: int = 256,
    stats: PackingStats | None = None,
) -> Iterator[list[int]]:
    """Stream rows of exactly ``raw_length`` token ids from texts, carrying leftovers across documents.

    Texts are tokenised ``batch_size`` at a time (same tokens as one by one). When ``stats`` is given it is
    updated as rows are produced and finalised (with the dropped remainder) when the stream ends.
    """
    raw_length = int(raw_length)
    if raw_length < 1:
        raise ValueError(f"raw_length must be >= 1, got {raw_length}")
    _check_tokenizer(tokenizer)
    stats = stats if stats is not None else PackingStats()
    stats.raw_length = raw_length
    buffer: list[int] = []
    pending: list[str] = []

    def _flush() -> Iterator[list[int]]:
        nonlocal buffer
        for doc in tokenize_documents(pending, tokenizer):
            stats.documents += 1
            stats.tokens += len(doc)
            buffer.extend(doc)
        pending.clear()
        n = len(buffer) // raw_length
        for i in range(n):
            stats.rows += 1
            yield buffer[i * raw_length : (i + 1) * raw_length]
        buffer = buffer[n * raw_length :]

    for text in texts:
        pending.append(text)
        if len(pending) >= batch_size:
            yield from _flush()
    if pending:
        yield from _flush()
    stats.dropped_tokens = len(buffer)
    stats.finalize()
