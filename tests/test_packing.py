from pathlib import Path

import pytest

from polyclinic.packing import PackingStats, iter_packed, pack_dataset, pack_token_lists, tokenize_documents

DOCS = [
    "Bronquitis aguda debida a Mycoplasma pneumoniae",
    "Acute bronchitis due to Mycoplasma pneumoniae",
    "Diabetes mellitus tipo 2 con complicaciones renales, niño de 5 años",
    "Insuffisance cardiaque congestive; crise d'épilepsie",
    "Neumonía adquirida en la comunidad en paciente de 70 años con fiebre y tos",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from polyclinic.tokenization import train_tokenizer

    return train_tokenizer(DOCS * 40, tmp_path_factory.mktemp("tok") / "tok", vocab_size=60)


def _corpus(n: int) -> list[str]:
    # documents of varied length, one of them empty (contributes nothing, not even an EOS)
    out = [" ".join(DOCS[: 1 + i % 5]) * (1 + i % 3) for i in range(n)]
    out[3] = ""
    return out


def _parquet_dataset(tmp_path: Path, texts: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import load_dataset

    folder = tmp_path / "corpus" / "es"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "lang": ["es"] * len(texts),
            "source": ["test"] * len(texts),
        }
    )
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    return load_dataset(
        "parquet", data_files={"train": str(folder / "train-*.parquet")}, split="train", cache_dir=str(tmp_path / "cache")
    )


def test_pack_dataset_rows_stats_and_eos(tmp_path: Path, tok):
    texts = _corpus(30)
    ds = _parquet_dataset(tmp_path, texts)
    raw_length = 37
    packed, stats = pack_dataset(ds, tok, raw_length, batch_size=1000)
    assert packed.column_names == ["input_ids"]
    rows = packed["input_ids"]
    assert rows and all(len(r) == raw_length for r in rows)
    docs = tokenize_documents(texts, tok)
    assert docs[3] == [] and all(d[-1] == tok.eos_token_id and tok.eos_token_id not in d[:-1] for d in docs if d)
    flat = [t for d in docs for t in d]
    # one map batch: rows are the concatenation, cut; exactly the remainder is dropped
    assert [t for r in rows for t in r] == flat[: len(rows) * raw_length]
    assert stats.documents == 30 and stats.tokens == len(flat)
    assert stats.rows == len(rows) == len(flat) // raw_length
    assert stats.dropped_tokens == len(flat) % raw_length
    assert stats.non_pad_fraction == 1.0 and stats.raw_length == raw_length
    d = stats.to_dict()
    assert d["packed_tokens"] + d["dropped_tokens"] == d["tokens"] and 0 < d["kept_fraction"] <= 1
    # EOS count in the packed rows = documents whose EOS landed before the cut
    ends = [i for i, t in enumerate(flat) if t == tok.eos_token_id]
    assert sum(t == tok.eos_token_id for r in rows for t in r) == sum(e < len(rows) * raw_length for e in ends)
    # iter_packed streams the same rows for this single batch
    streamed_stats = PackingStats()
    assert list(iter_packed(texts, tok, raw_length, batch_size=7, stats=streamed_stats)) == rows
    assert streamed_stats.to_dict() == stats.to_dict()


def test_small_map_batches_drop_per_batch_and_never_emit_short_rows(tok):
    from datasets import Dataset

    texts = _corpus(40)
    ds = Dataset.from_dict({"text": texts, "id": [str(i) for i in range(40)]})
    raw_length = 29
    packed, stats = pack_dataset(ds, tok, raw_length, batch_size=6)
    assert all(len(r) == raw_length for r in packed["input_ids"])
    docs = tokenize_documents(texts, tok)
    expected_rows = sum(sum(len(d) for d in docs[i : i + 6]) // raw_length for i in range(0, 40, 6))
    assert stats.rows == len(packed) == expected_rows
    assert stats.dropped_tokens == stats.tokens - expected_rows * raw_length > 0
    # streaming carries leftovers across documents, so it loses less
    s = PackingStats()
    streamed = list(iter_packed(texts, tok, raw_length, stats=s))
    assert len(streamed) >= stats.rows and s.dropped_tokens < raw_length
    assert s.tokens == stats.tokens


def test_pack_token_lists_and_errors(tok):
    rows, dropped = pack_token_lists([[5, 6, 1], [0, 1], [7, 8, 9, 1]], 4)
    assert rows.tolist() == [[5, 6, 1, 0], [1, 7, 8, 9]] and dropped == 1  # id 0 is content, not padding
    rows, dropped = pack_token_lists([[5, 1]], 4)
    assert rows.shape == (0, 4) and dropped == 2
    with pytest.raises(ValueError, match="raw_length"):
        pack_token_lists([[1]], 0)
    from datasets import Dataset

    with pytest.raises(ValueError, match="no column 'body'"):
        pack_dataset(Dataset.from_dict({"text": ["a"]}), tok, 8, text_column="body")


def test_iter_packed_is_lazy(tok):
    def endless():
        while True:
            yield DOCS[0]

    it = iter_packed(endless(), tok, 16, batch_size=4)
    first = [next(it) for _ in range(3)]
    assert all(len(r) == 16 for r in first)
