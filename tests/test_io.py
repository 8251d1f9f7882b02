import os
from pathlib import Path

import pytest

from polyclinic.io import atomic_directory, clean_stale_tmp, is_complete, write_json, read_json


def test_atomic_directory_success_and_failure(tmp_path: Path):
    final = tmp_path / "ckpt"
    with atomic_directory(final) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
        assert not final.exists()
    assert is_complete(final) and (final / "w.bin").read_bytes() == b"1"

    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "w.bin").write_bytes(b"2")
            raise RuntimeError("killed")
    # the previous complete folder is untouched; the leftover is recognisable and cleanable
    assert (final / "w.bin").read_bytes() == b"1"
    assert any(".tmp-" in p.name for p in tmp_path.iterdir())
    assert clean_stale_tmp(tmp_path) and not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_write_json_roundtrip(tmp_path: Path):
    write_json(tmp_path / "m.json", {"a": 1, "b": "é"})
    assert read_json(tmp_path / "m.json") == {"a": 1, "b": "é"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
