"""Unit checks of the corpus building blocks (fast, no build)."""

from __future__ import annotations

import random

import pytest

from polyclinic.config import ConfigError, build_config
from polyclinic.data.cleaning import clean_text, length_reason
from polyclinic.data.config import CleaningConfig, CorpusConfig, NearDedupConfig, normalize_lang
from polyclinic.data.dedup import DigestSet, NearDuplicateIndex, shingle_hashes, text_digest
from polyclinic.data.split import split_of


def test_clean_text_nfc_invisibles_and_whitespace():
    cfg = CleaningConfig()
    assert clean_text("Cafe\u0301  con\tleche\u00ad y\u200b az\u00facar \r\n\n\n\n fin ", cfg) == "Café con leche y azúcar\n\nfin"
    assert clean_text("a\x07b  c", cfg) == "ab c"
    assert clean_text("l1\n l2", CleaningConfig(keep_newlines=False)) == "l1 l2"
    assert clean_text("Cafe\u0301", CleaningConfig(unicode_normalization="none")) == "Cafe\u0301"
    assert length_reason("", 0, cfg) == "empty"
    assert length_reason("short", 1, cfg) == "too_short_chars"
    assert length_reason("x" * 30, 1, cfg) == "too_short_words"
    assert length_reason("a b c " * 10, 30, cfg) is None


def test_digest_set_grows_and_dedups():
    s = DigestSet(capacity=2)
    rng = random.Random(0)
    values = [rng.getrandbits(64) | 2 for _ in range(5000)] + [0, 1]
    assert all(s.add(v) for v in values[:-1]) and not s.add(values[-1])  # 0 and 1 share the reserved slot
    assert len(s) == 5001 and values[1234] in s and (values[1234] ^ 1) not in s
    assert s.nbytes >= 8 * 5001 * 2
    assert text_digest("Acute  Bronchitis") == text_digest("acute bronchitis") != text_digest("acute bronchitis.")


def test_shingles_are_deterministic_and_order_sensitive():
    a = shingle_hashes("a b c d e f".split(), 5)
    assert a.tolist() == shingle_hashes("a b c d e f".split(), 5).tolist() and len(a) == 2
    assert shingle_hashes("a b".split(), 5).tolist() != shingle_hashes("b a".split(), 5).tolist()
    idx = NearDuplicateIndex(NearDedupConfig(max_index_docs=2))
    texts = [" ".join(f"w{i}_{j}" for j in range(60)) for i in range(4)]
    assert not any(idx.is_duplicate_then_add(t) for t in texts)
    assert idx.resets == 1  # bounded: the index was cleared once it held 2 documents


def test_split_is_a_pure_function_of_the_id():
    ids = [f"src:{i}" for i in range(4000)]
    first = [split_of(i, 0.1) for i in ids]
    assert first == [split_of(i, 0.1) for i in ids]
    assert 300 < first.count("validation") < 500
    assert split_of("x", 0.0) == "train"
    assert [split_of(i, 0.1, seed="other") for i in ids] != first


def test_config_validation_messages():
    assert normalize_lang("es-ES") == normalize_lang("ES_es") == "es"
    base = {"name": "x", "languages": ["en"], "sources": [{"type": "packaged", "id": "hpo"}]}
    assert build_config(CorpusConfig, base).resolved_output_dir == "data/x"
    with pytest.raises(ConfigError, match="not in languages"):
        build_config(CorpusConfig, {**base, "sources": [{"type": "jsonl", "path": "a.jsonl", "lang": "fr"}]})
    with pytest.raises(ConfigError, match="unique"):
        build_config(CorpusConfig, {**base, "sources": [{"type": "packaged", "id": "hpo"}] * 2})
    with pytest.raises(ConfigError, match="lang"):
        build_config(CorpusConfig, {**base, "sources": [{"type": "jsonl", "path": "a.jsonl"}]})
    with pytest.raises(ConfigError, match="on_language_mismatch"):
        build_config(CorpusConfig, {**base, "langid": {"on_language_mismatch": "ignore"}})
