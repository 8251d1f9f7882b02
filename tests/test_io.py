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
    # the previous complete folder is untouched; the failed attempt's temp folder is gone (a full disk
    # or a failing step must not leave gigabytes behind)
    assert (final / "w.bin").read_bytes() == b"1"
    assert not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_atomic_directory_leftover_of_a_killed_process_is_removed(tmp_path: Path):
    import subprocess
    import sys

    final = tmp_path / "ckpt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f"ckpt.tmp-{int(dead.stdout)}"  # what a kill -9 leaves (its pid no longer runs)
    leftover.mkdir()
    (leftover / "big.bin").write_bytes(b"x" * 1000)
    alive = tmp_path / f"ckpt.tmp-{os.getppid()}"  # a running process's folder is not touched
    alive.mkdir()
    with atomic_directory(final) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    assert not leftover.exists() and alive.exists() and is_complete(final)
    assert clean_stale_tmp(tmp_path) and not alive.exists()


def test_atomic_directory_unwritable_parent_leaves_nothing(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    parent = tmp_path / "ro"
    parent.mkdir()
    (parent / "out").mkdir()
    os.chmod(parent, 0o555)
    try:
        with pytest.raises(PermissionError):
            with atomic_directory(parent / "out") as tmp:
                (tmp / "w.bin").write_bytes(b"1")
    finally:
        os.chmod(parent, 0o755)
    assert sorted(p.name for p in parent.iterdir()) == ["out"]


def test_written_files_get_normal_permissions(tmp_path: Path):
    from polyclinic.io import atomic_write_text

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "stats.json", {"a": 1})
        atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    for name in ("stats.json", "config.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    old = os.umask(0o077)
    try:
        write_json(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600  # the user's umask still rules


def test_write_json_roundtrip(tmp_path: Path):
    write_json(tmp_path / "m.json", {"a": 1, "b": "é"})
    assert read_json(tmp_path / "m.json") == {"a": 1, "b": "é"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
