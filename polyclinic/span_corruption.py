"""T5 span corruption, vectorised over the batch with NumPy.

Semantics follow T5's ``random_spans_helper`` / ``random_spans_noise_mask`` / ``span_corruption``
(and HF's ``run_t5_mlm_flax.py``), see ``../shared/REFERENCES.md`` section 1:

* A raw row of ``raw_length`` tokens gets ``num_noise = round(L * noise_density)`` noise tokens
  (clamped to ``[1, L-1]``) in ``num_spans = max(round(num_noise / mean_noise_span_length), 1)`` spans.
* The noise and the non-noise counts are each split into ``num_spans`` random *positive* segments and
  interleaved starting with non-noise, so every row starts with kept text and ends in a noise span.
* Inputs: the k-th noise span is replaced by ``<extra_id_k>`` (id ``len(tokenizer) - 1 - k``), then EOS.
  Targets: each sentinel followed by the tokens it replaced, then EOS. Nothing is lost: putting each
  span back where its sentinel stands gives the raw row again.

Every row of a batch has the same length, hence the same ``num_noise`` / ``num_spans``; the random
segmentation of the whole batch is one ``argpartition`` of random keys, and the compaction is a boolean
mask plus ``reshape``. There is no Python loop per row or per token.

Randomness comes from one of two sources, chosen per row:

* rows given as dicts with an integer ``"index"`` get keys from a counter-based hash (splitmix64 of
  (seed, index, position)): the row's corruption is a pure function of ``(seed, index)``, whatever the
  batch composition, call order or number of processes, which makes resumed/distributed runs exact;
* other rows draw from a seeded :class:`numpy.random.Generator` owned by the collator
  (``state_dict()`` / ``load_state_dict()`` save and restore it).

Differences from upstream, all deliberate: token id 0 inside content is ordinary content (HF's old
``>= 0`` filter problem cannot happen: the compaction uses the mask, never token values); short rows are
an error instead of silently producing short examples; ``num_spans`` is additionally clamped to
``min(num_noise, num_non_noise)`` so that very high densities still give positive segments (where T5
would fail; HF PR #22938 changed the count instead, which breaks agreement with the length helper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "span_counts",
    "compute_input_and_target_lengths",
    "SpanCorruptionLayout",
    "span_layout",
    "splitmix64",
    "hash_keys",
    "random_spans_noise_mask",
    "apply_noise_mask",
    "span_corrupt",
    "shift_right",
    "restore_row",
    "SpanCorruptionCollator",
]

# ---------------------------------------------------------------------------------------------------
# lengths


def span_counts(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """``(num_noise_tokens, num_noise_spans)`` for one row of ``length`` tokens (T5's rounding and clamps).

    ``round`` is Python's (half to even), as in T5. ``num_spans`` is also capped by both the noise and the
    non-noise counts so that each can be cut into ``num_spans`` positive segments.
    """
    length = int(length)
    if length < 2:
        raise ValueError(f"span corruption needs rows of at least 2 tokens, got {length}")
    num_noise = int(round(length * noise_density))
    num_noise = min(max(num_noise, 1), length - 1)
    num_spans = int(round(num_noise / mean_noise_span_length))
    num_spans = max(num_spans, 1)
    num_spans = min(num_spans, num_noise, length - num_noise)
    return num_noise, num_spans


def _lengths_for(tokens_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(inputs length, targets length) of one corrupted row, both including EOS."""
    num_noise, num_spans = span_counts(tokens_length, noise_density, mean_noise_span_length)
    return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def compute_input_and_target_lengths(
    inputs_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """T5's ``random_spans_helper``: the raw length to pack so corrupted inputs have ``inputs_length`` tokens.

    Returns ``(raw_length, targets_length)``; e.g. 512 -> (568, 114), 1024 -> (1137, 229),
    480 -> (532, 108), 128 -> (141, 29). Same code path as T5, including its density-0.5 adjustment
    (trim one raw token so that targets do not exceed inputs). After that adjustment the exact lengths of a
    row may fall one short of the returned numbers; :func:`span_layout` gives the exact ones and the
    collator pads in that (rare) case.
    """
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_noise_span_length <= 0:
        raise ValueError(f"mean_noise_span_length must be > 0, got {mean_noise_span_length}")
    if inputs_length < 3:
        raise ValueError(f"inputs_length must be >= 3 (2 raw tokens, a sentinel and EOS), got {inputs_length}")
    tokens_length = int(inputs_length) - 1
    while _lengths_for(tokens_length + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
        tokens_length += 1
    inputs_len, targets_length = _lengths_for(tokens_length, noise_density, mean_noise_span_length)
    # T5: "minor hack to get the targets length to be equal to inputs length which is more likely to have
    # been set to a nice round number."
    if noise_density == 0.5 and targets_length > inputs_len:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


@dataclass(frozen=True)
class SpanCorruptionLayout:
    """Everything that is the same for every row of a given ``raw_length``."""

    raw_length: int
    num_noise: int
    num_spans: int
    inputs_length: int  # exact, with EOS
    targets_length: int  # exact, with EOS

    @property
    def num_nonnoise(self) -> int:
        return self.raw_length - self.num_noise


def span_layout(raw_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> SpanCorruptionLayout:
    num_noise, num_spans = span_counts(raw_length, noise_density, mean_noise_span_length)
    return SpanCorruptionLayout(
        raw_length=int(raw_length),
        num_noise=num_noise,
        num_spans=num_spans,
        inputs_length=raw_length - num_noise + num_spans + 1,
        targets_length=num_noise + num_spans + 1,
    )


# ---------------------------------------------------------------------------------------------------
# counter-based hashing

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_STREAM_STRIDE = np.uint64(1 << 32)  # counters of the two segmentations never overlap


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function (a bijective 64-bit mixer) on a uint64 array, elementwise."""
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z ^= z >> _S30
        z *= _M1
        z ^= z >> _S27
        z *= _M2
        z ^= z >> _S31
    return z


def _as_u64(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"seed/index must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False).view(np.uint64) if arr.dtype.kind == "i" else arr.astype(np.uint64)


def hash_keys(seed: int, indices: Any, stream: int, width: int) -> np.ndarray:
    """``(len(indices), width)`` uint64 keys, a pure function of ``(seed, index, stream, position)``.

    Each row is a splitmix64 stream started from ``mix(mix(seed) ^ index)``; ``stream`` selects disjoint
    counter ranges (0: noise segmentation, 1: non-noise segmentation).
    """
    idx = _as_u64(indices).reshape(-1)
    seed_arr = _as_u64(np.array([seed], dtype=np.int64))
    with np.errstate(over="ignore"):
        base = splitmix64(splitmix64(seed_arr + _GOLDEN) ^ idx)  # (B,)
        counter = np.arange(1, width + 1, dtype=np.uint64) + np.uint64(stream) * _STREAM_STRIDE
        state = base[:, None] + counter[None, :] * _GOLDEN
    return splitmix64(state)


# ---------------------------------------------------------------------------------------------------
# noise mask


def _cut_points(keys: np.ndarray, num_segments: int) -> np.ndarray:
    """Sorted cut points (B, num_segments-1) in ``1..n-1`` from keys (B, n-1): the smallest keys win.

    Cutting ``n`` items at ``num_segments - 1`` distinct points chosen uniformly among the ``n - 1`` gaps
    gives a uniformly random composition of ``n`` into ``num_segments`` positive parts (T5's shuffle).
    """
    b, gaps = keys.shape
    k = num_segments - 1
    if k == 0:
        return np.zeros((b, 0), dtype=np.int64)
    if k < gaps:
        chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(gaps), (b, gaps))
    return np.sort(chosen, axis=1).astype(np.int64) + 1


def _random_keys(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uniform uint64 keys straight from the bit generator (the cheapest draw numpy offers)."""
    return rng.bit_generator.random_raw(shape[0] * shape[1]).reshape(shape)


def _row_keys(
    batch_size: int,
    width: int,
    stream: int,
    rng: np.random.Generator | None,
    seed: int | None,
    indices: Any,
    has_index: np.ndarray | None,
) -> np.ndarray:
    """Keys (B, width) as uint64: hashed for rows with an index, from ``rng`` for the others."""
    if indices is None:
        if rng is None:
            raise ValueError("pass a numpy Generator (rng=...) or seed= and indices=")
        return _random_keys(rng, (batch_size, width))
    if seed is None:
        raise ValueError("indices= needs seed= (the corruption is a function of (seed, index))")
    indices = np.asarray(indices).reshape(-1)
    if has_index is None or has_index.all():
        return hash_keys(seed, indices, stream, width)
    keys = np.empty((batch_size, width), dtype=np.uint64)
    if has_index.any():
        keys[has_index] = hash_keys(seed, indices[has_index], stream, width)
    if (~has_index).any():
        if rng is None:
            raise ValueError("rows without an index need a numpy Generator (rng=...)")
        keys[~has_index] = _random_keys(rng, (int((~has_index).sum()), width))
    return keys


def random_spans_noise_mask(
    batch_size: int,
    length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    indices: Any = None,
    has_index: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean noise mask ``(batch_size, length)`` with T5's distribution, for the whole batch at once.

    Randomness: ``rng`` (a :class:`numpy.random.Generator`), or ``seed`` + ``indices`` (one integer per row)
    for the hash path, where row ``i``'s mask depends only on ``(seed, indices[i])``. ``has_index`` (bool per
    row) mixes both: rows where it is False draw from ``rng``.
    """
    layout = span_layout(length, noise_density, mean_noise_span_length)
    b, s = int(batch_size), layout.num_spans
    if indices is not None and len(np.asarray(indices).reshape(-1)) != b:
        raise ValueError(f"indices has {len(np.asarray(indices).reshape(-1))} entries for a batch of {b}")
    noise_keys = _row_keys(b, layout.num_noise - 1, 0, rng, seed, indices, has_index)
    nonnoise_keys = _row_keys(b, layout.num_nonnoise - 1, 1, rng, seed, indices, has_index)
    noise_cuts = _cut_points(noise_keys, s)  # cumulative noise lengths of spans 0..s-2
    nonnoise_cuts = _cut_points(nonnoise_keys, s)  # cumulative kept lengths of spans 0..s-2
    # noise span k starts after kept spans 0..k and noise spans 0..k-1, and ends after noise span k
    kept_through = np.concatenate([nonnoise_cuts, np.full((b, 1), layout.num_nonnoise)], axis=1)  # (b, s)
    noise_before = np.concatenate([np.zeros((b, 1), dtype=np.int64), noise_cuts], axis=1)  # (b, s)
    starts = kept_through + noise_before
    ends = kept_through[:, :-1] + noise_cuts  # end of noise span k == start of kept span k+1 (k < s-1)
    boundaries = np.concatenate([starts, ends], axis=1)  # all 2s-1 span boundaries, distinct per row
    flips = np.zeros((b, length), dtype=np.uint8)
    flips[np.arange(b)[:, None], boundaries] = 1
    return np.bitwise_xor.accumulate(flips, axis=1).astype(bool)


# ---------------------------------------------------------------------------------------------------
# corruption


def apply_noise_mask(
    batch: np.ndarray, noise_mask: np.ndarray, eos_id: int, sentinel_ids: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Turn raw rows ``(B, L)`` and a noise mask into ``(inputs, targets)`` (each with EOS appended).

    Every row must have the same number of noise tokens and spans (true for masks made by
    :func:`random_spans_noise_mask`). Compaction uses the mask only, never token values, so any id
    (including 0) is content.
    """
    batch = np.asarray(batch)
    noise_mask = np.asarray(noise_mask, dtype=bool)
    if batch.ndim != 2 or batch.shape != noise_mask.shape:
        raise ValueError(f"batch {batch.shape} and noise mask {noise_mask.shape} must be the same 2-D shape")
    b, length = batch.shape
    sentinels = np.asarray(sentinel_ids, dtype=np.int64)
    kept = ~noise_mask
    prev_noise = np.zeros_like(noise_mask)
    prev_noise[:, 1:] = noise_mask[:, :-1]
    noise_start = noise_mask & ~prev_noise
    kept_start = kept.copy()
    kept_start[:, 1:] &= noise_mask[:, :-1]
    num_spans = int(noise_start[0].sum()) if b else 0
    if b and not (noise_start.sum(axis=1) == num_spans).all():
        raise ValueError("every row of a batch must have the same number of noise spans")
    if num_spans > len(sentinels):
        raise ValueError(f"{num_spans} noise spans per row but only {len(sentinels)} sentinel ids")
    # span number k at its start position (the k-th noise span starts the k-th sentinel)
    span_no = np.cumsum(noise_start, axis=1, dtype=np.int32) - 1
    values = batch.astype(np.int64, copy=True)
    values[noise_start] = sentinels[span_no[noise_start]]
    inputs = values[kept | noise_start].reshape(b, -1)
    # targets: the sentinel of span k stands where kept span k starts (kept span k precedes noise span k)
    kept_no = np.cumsum(kept_start, axis=1, dtype=np.int32) - 1
    tvalues = batch.astype(np.int64, copy=True)
    tvalues[kept_start] = sentinels[kept_no[kept_start]]
    targets = tvalues[noise_mask | kept_start].reshape(b, -1)
    eos = np.full((b, 1), eos_id, dtype=np.int64)
    return np.concatenate([inputs, eos], axis=1), np.concatenate([targets, eos], axis=1)


def span_corrupt(
    batch: np.ndarray,
    eos_id: int,
    sentinel_ids: Sequence[int],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    indices: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Span-corrupt a stacked batch ``(B, raw_length)`` without a tokenizer object; returns (inputs, targets)."""
    batch = np.asarray(batch)
    if batch.ndim != 2:
        raise ValueError(f"batch must be 2-D (rows x raw_length), got shape {batch.shape}")
    mask = random_spans_noise_mask(
        batch.shape[0], batch.shape[1], noise_density, mean_noise_span_length, rng=rng, seed=seed, indices=indices
    )
    return apply_noise_mask(batch, mask, eos_id, sentinel_ids)


def shift_right(labels: np.ndarray, decoder_start_token_id: int = 0, pad_token_id: int = 0) -> np.ndarray:
    """Decoder inputs: labels shifted one to the right behind ``decoder_start_token_id``; -100 becomes pad."""
    labels = np.asarray(labels)
    out = np.empty_like(labels)
    out[:, 0] = decoder_start_token_id
    out[:, 1:] = labels[:, :-1]
    out[out == -100] = pad_token_id
    return out


def restore_row(inputs: Sequence[int], targets: Sequence[int], sentinel_ids: Sequence[int], eos_id: int) -> list[int]:
    """Undo span corruption of one row (for checks and debugging): put each span back at its sentinel.

    ``inputs`` and ``targets`` are one row each, ending in EOS; trailing -100 in targets is ignored, input
    padding after the EOS must be removed by the caller.
    """
    targets = [int(t) for t in targets]
    while targets and targets[-1] == -100:
        targets.pop()
    inputs = [int(t) for t in inputs]
    if not inputs or inputs[-1] != eos_id or not targets or targets[-1] != eos_id:
        raise ValueError("inputs and targets must each end with EOS")
    sentinel_pos = {int(s): k for k, s in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current: list[int] | None = None
    for t in targets[:-1]:
        if t in sentinel_pos:
            current = spans.setdefault(sentinel_pos[t], [])
        elif current is None:
            raise ValueError("targets must start with a sentinel")
        else:
            current.append(t)
    out: list[int] = []
    for t in inputs[:-1]:
        if t in sentinel_pos:
            out.extend(spans[sentinel_pos[t]])
        else:
            out.append(t)
    return out


# ---------------------------------------------------------------------------------------------------
# collator


def _as_int_array(row: Any) -> np.ndarray:
    if hasattr(row, "detach"):  # torch tensor
        row = row.detach().cpu().numpy()
    arr = np.asarray(row)
    if arr.dtype == object:
        raise ValueError("rows must be sequences of integer token ids")
    return arr


class SpanCorruptionCollator:
    """Collate packed raw rows into T5 span-corruption batches (``input_ids``, ``labels``, ``decoder_input_ids``).

    Rows: lists / numpy arrays / tensors of exactly ``raw_length`` token ids, dicts with ``"input_ids"``
    (and optionally an integer ``"index"``), or one stacked 2-D array/tensor. ``raw_length`` and
    ``targets_length`` come from :func:`compute_input_and_target_lengths` (512 -> 568 raw, 114 targets).

    A row with ``"index"`` is corrupted as a pure function of ``(seed, index)``; rows without use the
    collator's own seeded Generator (saved by :meth:`state_dict`). With ``seed=None`` a random seed is
    drawn once and kept (``self.seed``), so a run can still be reproduced from its saved state. In
    DataLoader worker processes the Generator path is re-seeded per worker (copies would otherwise repeat
    each other's masks); the index path needs no such care.

    In the rare configurations where a row's exact lengths fall short of ``input_length`` /
    ``targets_length`` (T5's density-0.5 adjustment), inputs are padded with pad and ``attention_mask`` is
    returned too, and labels are padded with -100; otherwise the batch has exactly the three keys.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        input_length: int = 512,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        seed: int | None = None,
        *,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        sentinel_ids: Sequence[int] | None = None,
        decoder_start_token_id: int | None = None,
        return_tensors: str = "pt",
    ):
        if tokenizer is not None:
            from polyclinic.tokenization import check_sentinels

            sentinel_ids = check_sentinels(tokenizer) if sentinel_ids is None else sentinel_ids
            eos_token_id = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
            pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
        if eos_token_id is None or sentinel_ids is None:
            raise ValueError("pass a tokenizer, or eos_token_id= and sentinel_ids=")
        if return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        self.pad_token_id = 0 if pad_token_id is None else int(pad_token_id)
        self.eos_token_id = int(eos_token_id)
        self.decoder_start_token_id = self.pad_token_id if decoder_start_token_id is None else int(decoder_start_token_id)
        self.sentinel_ids = np.asarray(list(sentinel_ids), dtype=np.int64)
        self.input_length = int(input_length)
        self.noise_density = float(noise_density)
        self.mean_noise_span_length = float(mean_noise_span_length)
        self.return_tensors = return_tensors
        self.raw_length, self.targets_length = compute_input_and_target_lengths(
            self.input_length, self.noise_density, self.mean_noise_span_length
        )
        self.layout = span_layout(self.raw_length, self.noise_density, self.mean_noise_span_length)
        if self.layout.inputs_length > self.input_length:
            raise ValueError(
                f"input_length={self.input_length} is too short for span corruption at density {self.noise_density}: "
                f"rows of {self.raw_length} tokens give {self.layout.inputs_length} input tokens"
            )
        self.targets_length = max(self.targets_length, self.layout.targets_length)
        if self.layout.num_spans > len(self.sentinel_ids):
            raise ValueError(
                f"input_length={self.input_length} needs {self.layout.num_spans} noise spans per row but the tokenizer "
                f"has {len(self.sentinel_ids)} sentinels; use a shorter input_length or more sentinels"
            )
        self.needs_padding = (
            self.layout.inputs_length < self.input_length or self.layout.targets_length < self.targets_length
        )
        self.seed = int(np.random.SeedSequence().entropy % (1 << 63)) if seed is None else int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._worker_id: int | None = None

    # -- randomness -----------------------------------------------------------------------------------
    def _generator(self) -> np.random.Generator:
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
        except ImportError:  # pragma: no cover
            info = None
        if info is not None and self._worker_id != info.id:
            self._worker_id = info.id
            self._rng = np.random.default_rng([self.seed, 1 + info.id])
        return self._rng

    def state_dict(self) -> dict:
        """The Generator's state plus the settings it belongs to (JSON-serialisable)."""
        return {
            "seed": self.seed,
            "bit_generator": self._rng.bit_generator.state,
            "input_length": self.input_length,
            "noise_density": self.noise_density,
            "mean_noise_span_length": self.mean_noise_span_length,
        }

    def load_state_dict(self, state: Mapping) -> None:
        for key in ("input_length", "noise_density", "mean_noise_span_length"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"state_dict was saved with {key}={state[key]!r}, this collator has {getattr(self, key)!r}")
        self.seed = int(state["seed"])
        self._rng = np.random.default_rng(self.seed)
        self._rng.bit_generator.state = state["bit_generator"]

    # -- collation ------------------------------------------------------------------------------------
    def _stack(self, examples: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        indices = has_index = None
        if hasattr(examples, "ndim") and getattr(examples, "ndim") == 2:  # already stacked
            batch = _as_int_array(examples)
        else:
            examples = list(examples)
            if not examples:
                raise ValueError("cannot collate an empty batch")
            if isinstance(examples[0], Mapping):
                if not all(isinstance(e, Mapping) and "input_ids" in e for e in examples):
                    raise ValueError("when rows are dicts, every row needs an 'input_ids' entry")
                idx = [e.get("index") for e in examples]
                has_index = np.array([i is not None for i in idx])
                if has_index.any():
                    for i in idx:
                        if i is not None and (isinstance(i, bool) or not isinstance(i, (int, np.integer))):
                            raise ValueError(f"'index' must be an integer, got {i!r}")
                    indices = np.array([0 if i is None else int(i) for i in idx], dtype=np.int64)
                else:
                    has_index = None
                rows = [_as_int_array(e["input_ids"]) for e in examples]
            else:
                rows = [_as_int_array(e) for e in examples]
            for i, r in enumerate(rows):
                if r.ndim != 1 or r.shape[0] != self.raw_length:
                    raise ValueError(
                        f"row {i} has shape {tuple(r.shape)}; SpanCorruptionCollator(input_length={self.input_length}) "
                        f"expects rows of exactly raw_length={self.raw_length} token ids (pack documents with "
                        f"polyclinic.packing.pack_dataset(..., raw_length={self.raw_length}))"
                    )
            batch = np.stack(rows)
        if batch.ndim != 2 or batch.shape[1] != self.raw_length:
            raise ValueError(
                f"batch has shape {tuple(batch.shape)}; expected (batch, raw_length={self.raw_length}) for "
                f"input_length={self.input_length}"
            )
        if batch.dtype.kind not in "iu":
            raise ValueError(f"token ids must be integers, got dtype {batch.dtype}")
        return batch, indices, has_index

    def __call__(self, examples: Any) -> dict:
        batch, indices, has_index = self._stack(examples)
        b = batch.shape[0]
        need_rng = indices is None or (has_index is not None and not has_index.all())
        mask = random_spans_noise_mask(
            b,
            self.raw_length,
            self.noise_density,
            self.mean_noise_span_length,
            rng=self._generator() if need_rng else None,
            seed=self.seed if indices is not None else None,
            indices=indices,
            has_index=has_index,
        )
        inputs, targets = apply_noise_mask(batch, mask, self.eos_token_id, self.sentinel_ids)
        out: dict[str, np.ndarray] = {}
        if inputs.shape[1] < self.input_length:
            attention = np.zeros((b, self.input_length), dtype=np.int64)
            attention[:, : inputs.shape[1]] = 1
            inputs = np.pad(inputs, ((0, 0), (0, self.input_length - inputs.shape[1])), constant_values=self.pad_token_id)
            out["attention_mask"] = attention
        elif self.needs_padding:
            out["attention_mask"] = np.ones((b, self.input_length), dtype=np.int64)
        if targets.shape[1] < self.targets_length:
            targets = np.pad(targets, ((0, 0), (0, self.targets_length - targets.shape[1])), constant_values=-100)
        out["input_ids"] = inputs
        out["labels"] = targets
        out["decoder_input_ids"] = shift_right(targets, self.decoder_start_token_id, self.pad_token_id)
        if self.return_tensors == "np":
            return out
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in out.items()}

    def __repr__(self) -> str:
        return (
            f"SpanCorruptionCollator(input_length={self.input_length}, raw_length={self.raw_length}, "
            f"targets_length={self.targets_length}, noise_density={self.noise_density}, "
            f"mean_noise_span_length={self.mean_noise_span_length}, num_spans={self.layout.num_spans}, seed={self.seed})"
        )
