from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyclinic.span_corruption import (
    SpanCorruptionCollator,
    apply_noise_mask,
    compute_input_and_target_lengths,
    hash_keys,
    random_spans_noise_mask,
    restore_row,
    shift_right,
    span_corrupt,
    span_counts,
    span_layout,
)

EOS = 1
VOCAB = 1000  # a fake vocabulary: sentinels 999, 998, ... like len(tokenizer) - 1 - k
SENTINELS = [VOCAB - 1 - k for k in range(100)]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spans(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each noise span, by a plain loop (independent of the implementation)."""
    spans, start = [], None
    for i, m in enumerate(mask_row.tolist() + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


# --------------------------------------------------------------------------------------------- lengths
@pytest.mark.parametrize(
    "inputs_length, expected", [(512, (568, 114)), (1024, (1137, 229)), (480, (532, 108)), (128, (141, 29))]
)
def test_known_lengths(inputs_length, expected):
    assert compute_input_and_target_lengths(inputs_length, 0.15, 3.0) == expected


def _t5_helper(inputs_length, noise_density, mean_noise_span_length):
    """T5's random_spans_helper as written upstream (no clamps), for comparison."""

    def f(tokens_length):
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while f(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    i, t = f(tokens_length)
    if noise_density == 0.5 and t > i:
        tokens_length -= 1
        t -= 1
    return tokens_length, t


@pytest.mark.parametrize("density", [0.15, 0.3, 0.5])
def test_helper_matches_upstream_code_path(density):
    for n in range(64, 1100, 7):
        assert compute_input_and_target_lengths(n, density, 3.0) == _t5_helper(n, density, 3.0), n


def test_density_half_adjustment_trims_one():
    # 767 raw tokens would give 513 targets for 512 inputs; T5 trims to 766 -> 512 / 512
    assert compute_input_and_target_lengths(512, 0.5, 3.0) == (766, 512)


# --------------------------------------------------------------------------------------------- properties
@st.composite
def corruption_case(draw):
    length = draw(st.integers(min_value=2, max_value=400))
    density = draw(st.sampled_from([0.05, 0.15, 0.3, 0.5, 0.8]))
    mean = draw(st.sampled_from([1.0, 2.0, 3.0, 5.5]))
    batch = draw(st.integers(min_value=1, max_value=6))
    seed = draw(st.integers(min_value=0, max_value=2**32))
    return length, density, mean, batch, seed


@SETTINGS
@given(corruption_case())
def test_span_corruption_properties(case):
    length, density, mean, b, seed = case
    lay = span_layout(length, density, mean)
    if lay.num_spans > len(SENTINELS):
        return
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 5, size=(b, length))  # small ids: plenty of 0 (= pad id) inside content
    mask = random_spans_noise_mask(b, length, density, mean, rng=rng)
    inputs, targets = apply_noise_mask(raw, mask, EOS, SENTINELS)
    assert inputs.shape == (b, lay.inputs_length) and targets.shape == (b, lay.targets_length)
    for r in range(b):
        spans = _spans(mask[r])
        assert len(spans) == lay.num_spans and int(mask[r].sum()) == lay.num_noise
        assert not mask[r, 0] and mask[r, -1]  # starts with kept text, ends in a noise span
        assert all(e > s for s, e in spans)
        # sentinels: k-th = VOCAB-1-k, in increasing k order, in inputs and in targets
        in_sent = [t for t in inputs[r] if t in SENTINELS]
        tg_sent = [t for t in targets[r] if t in SENTINELS]
        assert in_sent == tg_sent == SENTINELS[: lay.num_spans]
        assert inputs[r, -1] == EOS and targets[r, -1] == EOS and targets[r, 0] == SENTINELS[0]
        # the last span runs to the end: the sentinel before EOS in targets is followed by its tokens only
        assert restore_row(inputs[r], targets[r], SENTINELS, EOS) == raw[r].tolist()  # lossless
        # each sentinel in targets is followed by exactly the tokens of its span
        s, e = spans[-1]
        assert targets[r, -(e - s) - 1 : -1].tolist() == raw[r, s:e].tolist()
        # id 0 inside kept content survives in the inputs
        kept = raw[r][~mask[r]]
        assert (inputs[r] == 0).sum() == (kept == 0).sum()


@SETTINGS
@given(
    seed=st.integers(min_value=0, max_value=2**40),
    indices=st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=8, unique=True),
    data=st.data(),
)
def test_index_rows_are_a_function_of_seed_and_index(seed, indices, data):
    length = 141
    ref = random_spans_noise_mask(len(indices), length, seed=seed, indices=indices)
    order = data.draw(st.permutations(range(len(indices))))
    again = random_spans_noise_mask(len(indices), length, seed=seed, indices=[indices[i] for i in order])
    np.testing.assert_array_equal(again, ref[list(order)])
    one = random_spans_noise_mask(1, length, seed=seed, indices=[indices[-1]])
    np.testing.assert_array_equal(one[0], ref[-1])
    other_seed = random_spans_noise_mask(len(indices), length, seed=seed + 1, indices=indices)
    assert not np.array_equal(other_seed, ref)


def test_hash_keys_are_counter_based_and_distinct():
    a = hash_keys(3, [0, 1, 2], stream=0, width=50)
    b = hash_keys(3, [2], stream=0, width=80)
    np.testing.assert_array_equal(a[2], b[0, :50])  # prefix-stable: width does not change the stream
    assert len(np.unique(a)) == a.size
    assert not np.array_equal(hash_keys(3, [0], 0, 50), hash_keys(3, [0], 1, 50))


# --------------------------------------------------------------------------------------------- statistics
def test_noise_statistics_over_many_rows():
    rows, length = 2000, 568
    rng = np.random.default_rng(1234)
    mask = random_spans_noise_mask(rows, length, 0.15, 3.0, rng=rng)
    lay = span_layout(length)
    assert abs(mask.mean() - 0.15) < 0.002
    # noise is spread over the whole row, not bunched: density in the middle of the row is ~0.15 too
    assert abs(mask[:, 100:468].mean() - 0.15) < 0.005
    # per-span lengths: uniform composition of 85 into 28 positive parts -> mean 85/28 and a known spread
    spans = np.array([e - s for r in range(300) for s, e in _spans(mask[r])])
    assert abs(spans.mean() - 3.0) < 0.1
    n, s = lay.num_noise, lay.num_spans
    expected_var = (n - s) * (s - 1) * n / (s * s * (s + 1))  # marginal of a uniform positive composition
    assert abs(spans.var() / expected_var - 1) < 0.15
    # P(span length == 1) = C(n-2, s-2) / C(n-1, s-1) = (s-1)/(n-1)
    assert abs((spans == 1).mean() - (s - 1) / (n - 1)) < 0.04
    # index path has the same distribution
    hashed = random_spans_noise_mask(rows, length, seed=7, indices=np.arange(rows))
    assert abs(hashed[:, 100:468].mean() - 0.15) < 0.005
    hspans = np.array([e - s for r in range(300) for s, e in _spans(hashed[r])])
    assert abs(hspans.var() / expected_var - 1) < 0.15


# --------------------------------------------------------------------------------------------- collator
class FakeTokenizer:
    """Enough of a tokenizer for the collator: T5 layout with 100 sentinels at the top."""

    pad_token_id, eos_token_id = 0, 1

    def __len__(self):
        return VOCAB

    def convert_ids_to_tokens(self, ids):
        return [f"<extra_id_{VOCAB - 1 - i}>" if i >= VOCAB - 100 else f"tok{i}" for i in ids]


def test_collator_shapes_and_decoder_inputs():
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=512, seed=0)
    assert (coll.raw_length, coll.targets_length) == (568, 114)
    rows = [list(range(2, 570)), np.arange(3, 571), torch.arange(4, 572)]
    out = coll(rows)
    assert set(out) == {"input_ids", "labels", "decoder_input_ids"}
    assert out["input_ids"].shape == (3, 512) and out["labels"].shape == (3, 114)
    assert all(v.dtype == torch.long for v in out.values())
    assert (out["decoder_input_ids"][:, 0] == 0).all()
    assert torch.equal(out["decoder_input_ids"][:, 1:], out["labels"][:, :-1])
    for r, row in enumerate(rows):
        assert restore_row(out["input_ids"][r].tolist(), out["labels"][r].tolist(), SENTINELS, EOS) == list(np.asarray(row))


def test_collator_keeps_token_zero_in_content():
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=3)
    rows = np.zeros((4, coll.raw_length), dtype=np.int64)  # a row of pad ids is still content
    out = coll(rows)
    lab = out["labels"].numpy()
    # targets: sentinel then zeros, nothing dropped
    assert ((lab == 0).sum(axis=1) == span_layout(coll.raw_length).num_noise).all()
    assert ((out["input_ids"].numpy() == 0).sum(axis=1) == coll.raw_length - span_layout(coll.raw_length).num_noise).all()


def test_collator_rejects_wrong_lengths():
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=512, seed=0)
    with pytest.raises(ValueError, match="raw_length=568"):
        coll([list(range(568)), list(range(567))])
    with pytest.raises(ValueError, match="raw_length=568"):
        coll(np.zeros((2, 512), dtype=np.int64))


def test_collator_index_rows_are_independent_of_batch():
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=42)
    raw = np.random.default_rng(0).integers(2, 800, size=(6, coll.raw_length))
    rows = [{"input_ids": raw[i], "index": 100 + i} for i in range(6)]
    full = coll(rows)
    coll2 = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=42)
    coll2(np.asarray(raw[:2]))  # advancing the generator path must not matter
    part = coll2([rows[4], rows[1]])
    assert torch.equal(part["input_ids"][0], full["input_ids"][4]) and torch.equal(part["labels"][1], full["labels"][1])
    other = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=43)([rows[4]])
    assert not torch.equal(other["input_ids"][0], full["input_ids"][4])


def test_collator_mixed_rows_and_bad_index():
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=1)
    raw = np.arange(2, 2 + coll.raw_length)
    out = coll([{"input_ids": raw, "index": 5}, {"input_ids": raw}])
    alone = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=1)([{"input_ids": raw, "index": 5}])
    assert torch.equal(out["input_ids"][0], alone["input_ids"][0])
    with pytest.raises(ValueError, match="'index' must be an integer"):
        coll([{"input_ids": raw, "index": "5"}])


def test_generator_path_is_seeded_and_resumable():
    raw = np.random.default_rng(0).integers(2, 800, size=(4, 141))
    a = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=9)
    b = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=9)
    assert torch.equal(a(raw)["input_ids"], b(raw)["input_ids"])
    state = a.state_dict()
    expected = a(raw)["input_ids"]
    c = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=0)
    c.load_state_dict(state)
    assert torch.equal(c(raw)["input_ids"], expected)
    assert not torch.equal(a(raw)["input_ids"], expected)  # the generator moved on
    with pytest.raises(ValueError, match="input_length"):
        SpanCorruptionCollator(FakeTokenizer(), input_length=512).load_state_dict(state)


def test_density_half_pads_and_masks():
    # a length where T5's density-0.5 trim leaves the exact row one token short
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=27, noise_density=0.5, seed=0)
    assert coll.needs_padding
    out = coll(np.arange(2, 2 + coll.raw_length)[None].repeat(3, 0))
    assert out["input_ids"].shape == (3, 27) and out["labels"].shape == (3, coll.targets_length)
    assert (out["attention_mask"].sum(1) == span_layout(coll.raw_length, 0.5).inputs_length).all()
    assert (out["labels"][:, -1] == -100).all() and (out["decoder_input_ids"] >= 0).all()


def test_too_many_spans_for_sentinels_is_clear():
    with pytest.raises(ValueError, match="sentinels"):
        SpanCorruptionCollator(FakeTokenizer(), input_length=4096)


def test_span_corrupt_low_level_and_shift_right():
    raw = np.arange(10, 10 + 568)[None]
    i1, t1 = span_corrupt(raw, EOS, SENTINELS, seed=1, indices=[0])
    i2, t2 = span_corrupt(raw, EOS, SENTINELS, seed=1, indices=[0])
    assert np.array_equal(i1, i2) and np.array_equal(t1, t2) and i1.shape == (1, 512)
    lab = np.array([[5, 6, -100]])
    assert shift_right(lab, 0, 0).tolist() == [[0, 5, 6]]
    assert span_counts(10, 0.99, 3.0) == (9, 1) and span_counts(2, 0.15, 3.0) == (1, 1)


def test_collator_with_real_tokenizer(tmp_path: Path):
    from polyclinic.tokenization import train_tokenizer

    texts = [
        "Bronquitis aguda debida a Mycoplasma pneumoniae",
        "Acute bronchitis due to Mycoplasma pneumoniae",
        "Diabetes mellitus tipo 2 con complicaciones renales, niño de 5 años",
        "Insuffisance cardiaque congestive; crise d'épilepsie",
    ] * 20
    tok = train_tokenizer(texts, tmp_path / "tok", vocab_size=50)
    coll = SpanCorruptionCollator(tok, input_length=32, seed=0)
    ids = tok(" ".join(texts[:20]), add_special_tokens=False).input_ids[: coll.raw_length]
    out = coll([ids, ids])
    first = out["input_ids"][0].tolist()
    assert tok.convert_ids_to_tokens([first[i] for i in range(len(first)) if first[i] >= len(tok) - 100])[0] == "<extra_id_0>"
    assert restore_row(first, out["labels"][0].tolist(), list(range(len(tok) - 1, len(tok) - 101, -1)), tok.eos_token_id) == ids


@pytest.mark.parametrize("density", [0.15, 0.5, 0.8])
def test_exact_lengths_never_exceed_the_helper(density):
    for n in range(3, 700):
        raw, targets = compute_input_and_target_lengths(n, density, 3.0)
        lay = span_layout(raw, density, 3.0)
        assert lay.inputs_length <= n and lay.targets_length <= targets, n
        if density == 0.15 and n >= 10:
            assert (lay.inputs_length, lay.targets_length) == (n, targets), n


def test_dataloader_worker_copies_do_not_repeat_masks(monkeypatch):
    import copy
    from types import SimpleNamespace

    import torch.utils.data

    raw = np.random.default_rng(0).integers(2, 800, size=(4, 141))
    coll = SpanCorruptionCollator(FakeTokenizer(), input_length=128, seed=5)
    outs = []
    for worker in (0, 1):
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda w=worker: SimpleNamespace(id=w))
        outs.append(copy.deepcopy(coll)(raw)["input_ids"])
    assert not torch.equal(outs[0], outs[1])
    # index rows stay a function of (seed, index) in any worker
    rows = [{"input_ids": raw[0], "index": 3}]
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: SimpleNamespace(id=1))
    in_worker = copy.deepcopy(coll)(rows)["input_ids"]
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    assert torch.equal(in_worker, copy.deepcopy(coll)(rows)["input_ids"])
