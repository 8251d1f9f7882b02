"""Fuzzing the corpus reader: whatever bytes a user hands in, no traceback, and every record is accounted for.

Random bytes, random encodings and compressions, random JSON shapes (lists, numbers, nested objects, null
text, lone surrogate escapes) and multi-megabyte lines. The example counts are small on purpose (CI runs
on two cores); the properties are what matters: each non-blank line is exactly one document or one
counted bad record, and a build either writes a complete corpus or stops with a UserError.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyclinic import textfiles
from polyclinic.data.config import CorpusConfig, SourceConfig
from polyclinic.data.corpus import build_corpus
from polyclinic.data.sources import BadRecord, RawDoc, iter_source, validate_sources
from polyclinic.errors import UserError
from polyclinic.io import is_complete, read_json

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)
_text = st.text(min_size=0, max_size=60) | st.just("lone \ud800 surrogate in a medical note") | st.none() | _json
_record = st.fixed_dictionaries({"text": _text}, optional={"lang": st.sampled_from(["en", "EN", "es", "xx", None, 7]),
                                                          "id": _json})
_line = _record.map(lambda r: ("rec", r)) | _json.map(lambda j: ("json", j)) | st.binary(max_size=40).map(lambda b: ("raw", b))
_encoding = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"])
_compression = st.sampled_from([None, "gzip", "zstd"])


_CODEC = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "utf-16": "utf-16-le", "utf-16-le": "utf-16-le",
          "utf-32": "utf-32-le", "latin-1": "latin-1"}
_BOM = {"utf-8-sig": b"\xef\xbb\xbf", "utf-16": b"\xff\xfe", "utf-32": b"\xff\xfe\x00\x00"}


def _encode_lines(lines, encoding: str, ascii_json: bool) -> tuple[bytes, int]:
    """File bytes and the number of non-blank lines in them (latin-1 is not detectable: read as UTF-8)."""
    codec = _CODEC[encoding]
    parts, nonblank = [], 0
    for kind, value in lines:
        if kind == "raw":  # arbitrary bytes on one line ("#" first, so they never look like a BOM or UTF-16)
            raw = b"#" + value.replace(b"\n", b" ").replace(b"\x00", b"0")
            data = raw if codec in ("utf-8", "latin-1") else raw.decode("latin-1").encode(codec)
        else:
            data = json.dumps(value, ensure_ascii=ascii_json).encode(codec, "surrogatepass" if codec != "latin-1"
                                                                      else "backslashreplace")
        decoded = data.decode("utf-8" if codec == "latin-1" else codec, errors="replace")
        nonblank += bool(decoded.strip())
        parts.append(data)
    nl = "\n".encode(codec)
    return _BOM.get(encoding, b"") + b"".join(p + nl for p in parts), nonblank


def _compress(data: bytes, how: str | None) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def _items(path: Path, **src) -> list:
    cfg = SourceConfig.model_validate({"type": "jsonl", "path": str(path), "lang_field": "lang", "id_field": "id", **src})
    (rs,) = validate_sources([cfg])
    return list(iter_source(rs))


@FUZZ
@given(st.binary(max_size=2000), _compression)
def test_random_bytes_never_raise(tmp_path_factory, data, how):
    path = tmp_path_factory.mktemp("rb") / "x.jsonl"
    path.write_bytes(_compress(data, how))
    items = _items(path)
    assert items and all(isinstance(i, (RawDoc, BadRecord)) for i in items)  # an empty file is a counted record
    for i in items:
        assert str(path) in i.where
        if isinstance(i, RawDoc):
            assert isinstance(i.text, str)


@FUZZ
@given(st.lists(_line, min_size=0, max_size=12), _encoding, _compression, st.booleans())
def test_every_line_is_one_document_or_one_bad_record(tmp_path_factory, lines, encoding, how, ascii_json):
    data, nonblank = _encode_lines(lines, encoding, ascii_json)
    path = tmp_path_factory.mktemp("jl") / "x.jsonl"
    path.write_bytes(_compress(data, how))
    items = _items(path)
    if nonblank == 0:
        assert [i.reason for i in items] == ["empty_file"]
        return
    assert len(items) == nonblank
    for i in items:
        assert isinstance(i, (RawDoc, BadRecord))
        if isinstance(i, RawDoc):
            assert isinstance(i.text, str)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_line, min_size=0, max_size=10), _encoding)
def test_a_build_completes_or_refuses_with_a_user_error(tmp_path_factory, lines, encoding):
    data, _ = _encode_lines(lines, encoding, ascii_json=False)
    root = tmp_path_factory.mktemp("build")
    (root / "x.jsonl").write_bytes(data)
    cfg = CorpusConfig.model_validate({
        "name": "fuzz", "output_dir": str(root / "out"), "languages": ["en", "es"], "progress": False,
        "allow_empty_languages": True, "split": {"validation_fraction": 0.0}, "langid": {"enabled": False},
        "cleaning": {"min_chars": 1, "min_words": 1},
        "sources": [{"type": "jsonl", "path": str(root / "x.jsonl"), "lang_field": "lang", "id_field": "id"}],
    })
    try:
        report = build_corpus(cfg)
    except UserError as exc:
        assert "no documents kept" in str(exc)
        assert not (root / "out").exists() and not list(root.glob("out.tmp-*"))
        return
    stats = read_json(root / "out" / "stats.json")
    assert is_complete(root / "out") and stats["kept"] > 0
    assert stats["read"] == stats["kept"] + stats["rejected_total"] == report["stats"]["read"]


def test_multi_megabyte_lines_and_deep_nesting(tmp_path):
    big = "palabra " * 600_000  # ~4.8 MB in one record
    path = tmp_path / "big.jsonl.gz"
    lines = [json.dumps({"text": big, "lang": "es"}), "[" * 100_000 + "]" * 100_000, "1" * 5000,
             json.dumps({"text": "x" * 3_000_000})[:-2]]  # truncated 3 MB line
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    items = _items(path)
    assert [type(i).__name__ for i in items] == ["RawDoc", "BadRecord", "BadRecord", "BadRecord"]
    assert len(items[0].text) == len(big) and {i.reason for i in items[1:]} == {"corrupt_json"}
    assert textfiles.sniff(path).compression == "gzip"
