"""User mistakes through the real CLI: a one-line error and exit 2, never a traceback, and nothing half
written left behind. Also: ``key=value`` overrides after flags, for every command that takes overrides.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

import pytest

from polyclinic.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert lines, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def tiny_corpus_config(tmp_path: Path, **extra) -> Path:
    docs = tmp_path / "docs.jsonl"
    texts = [f"Paciente {i} con fiebre persistente, tos seca y dolor torácico desde hace {i + 2} días." for i in range(12)]
    docs.write_text("".join(json.dumps({"id": str(i), "text": t, "lang": "es"}) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    cfg = {"name": "tiny", "output_dir": str(tmp_path / "out"), "languages": ["es"],
           "sources": [{"type": "jsonl", "path": str(docs), "lang": "es"}],
           "cleaning": {"min_chars": 10, "min_words": 3}, "langid": {"enabled": False},
           "dedup": {"near": {"enabled": False}}, **extra}
    path = tmp_path / "corpus.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------
# overrides anywhere after the recipe


def test_override_helper_takes_overrides_after_flags_and_still_refuses_unknown_options():
    from polyclinic.commands import push
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(push.build_parser("polyclinic push"),
                                ["release.yaml", "--only", "org/repo", "version=v0.2.0", "--dry-run", "root=x"])
    assert args.only == ["org/repo"] and args.overrides == ["version=v0.2.0", "root=x"] and args.dry_run
    with pytest.raises(SystemExit):
        parse_with_overrides(push.build_parser("polyclinic push"), ["release.yaml", "--dry-rum"])


@pytest.mark.parametrize("argv, expect", [
    (["encoder", "train", "recipes/encoder/demo.yaml", "--force", "output_dir=runs/x-after-flag", "--print-config"],
     "output_dir: runs/x-after-flag"),
    (["pretrain", "recipes/pretrain/demo.yaml", "--print-config", "training.max_steps=7"], "max_steps: 7"),
    (["pretrain", "recipes/pretrain/demo.yaml", "--allow-config-change", "seed=5", "--print-config"], "seed: 5"),
    (["teacher", "label", "recipes/classifier/teacher-demo.yaml", "--force", "--print-config", "verified_size=17"], "verified_size: 17"),
    (["classifier", "train", "recipes/classifier/demo.yaml", "--force", "--print-config", "seed=77"], "seed: 77"),
])
def test_overrides_after_flags_reach_the_config(capsys, monkeypatch, argv, expect):
    monkeypatch.chdir(REPO)
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    assert expect in out


def test_corpus_build_override_after_no_progress(tmp_path, capsys):
    cfg = tiny_corpus_config(tmp_path)
    rc, out, err = run_cli(capsys, "corpus", "build", cfg, "--no-progress", f"output_dir={tmp_path / 'other'}")
    assert rc == 0, err
    assert (tmp_path / "other" / "COMPLETE").is_file() and not (tmp_path / "out").exists()


def test_unknown_option_is_still_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["corpus", "build", "x.yaml", "--no-progess"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --no-progess" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# unreachable endpoints


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_to_unreachable_endpoint_is_one_line(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    url = f"http://127.0.0.1:{_closed_port()}"
    rc, _, err = run_cli(capsys, "push", "recipes/release/demo.yaml", f"endpoint={url}")
    assert_user_error(rc, err, f"cannot reach Hub endpoint {url}")


def test_verify_unreachable_endpoint_and_unknown_host(capsys, monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    rc, _, err = run_cli(capsys, "verify", "org/repo", "--kind", "dataset", "--endpoint", url)
    assert_user_error(rc, err, f"cannot reach Hub endpoint {url}")
    rc, _, err = run_cli(capsys, "verify", "org/repo", "--endpoint", "http://no-such-host.invalid:8765")
    assert_user_error(rc, err, "no-such-host.invalid", "not found")
    rc, _, err = run_cli(capsys, "verify", "org/repo", "--endpoint", "ftp://x")
    assert_user_error(rc, err, "not an http(s) URL")


def test_network_errors_inside_a_command_become_one_line(capsys, monkeypatch):
    import requests

    from polyclinic.commands import corpus

    def boom(argv, prog):
        raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries exceeded")

    monkeypatch.setattr(corpus, "main", boom)
    rc, _, err = run_cli(capsys, "corpus", "stats", "x")
    assert_user_error(rc, err, "network error talking to the Hub")


# ---------------------------------------------------------------------------------------------------------
# output folders that cannot be written


def test_output_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cfg = tiny_corpus_config(tmp_path, output_dir=str(tmp_path / "afile" / "corpus"))
    rc, _, err = run_cli(capsys, "corpus", "build", cfg, "--no-progress")
    assert_user_error(rc, err, "afile")


def test_full_disk_is_one_line_and_leaves_no_temp_folder(tmp_path, capsys, monkeypatch):
    import polyclinic.io as pio

    cfg = tiny_corpus_config(tmp_path)
    real_replace = os.replace

    def full(src, dst, *a, **k):
        if str(tmp_path / "out") in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(pio.os, "replace", full)
    rc, _, err = run_cli(capsys, "corpus", "build", cfg, "--no-progress")
    monkeypatch.undo()
    assert_user_error(rc, err, "No space left on device", "disk full")
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == [] and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_folder_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    cfg = tiny_corpus_config(tmp_path, output_dir=str(ro / "corpus"))
    os.chmod(ro, 0o555)
    try:
        rc, _, err = run_cli(capsys, "corpus", "build", cfg, "--no-progress")
    finally:
        os.chmod(ro, 0o755)
    assert_user_error(rc, err, str(ro))
    assert list(ro.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# broken YAML


@pytest.mark.parametrize("content, needles", [
    ("_base_: 42\nname: x\n", ["_base_ must be a file name", "42"]),
    ("_base_: [a.yaml, null]\n", ["_base_ must be a file name"]),
    ("_base_: []\n", ["_base_ must be a file name"]),
    ("languages: [es, null]\n", ["languages"]),
    ("sources: [null]\n", ["sources"]),
    ("1: x\n", ["keys must be strings"]),
    ("- a\n- b\n", ["expected a mapping"]),
    ("name: [unclosed\n", ["not valid YAML"]),
])
def test_bad_yaml_is_one_line(tmp_path, capsys, content, needles):
    p = tmp_path / "bad.yaml"
    p.write_text(content, encoding="utf-8")
    rc, _, err = run_cli(capsys, "corpus", "build", p)
    assert_user_error(rc, err, *needles)


def test_non_utf8_yaml_names_file_and_line(tmp_path, capsys):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: demo\ndescription: fiebre y tos\xe9\n".encode("latin-1"))
    rc, _, err = run_cli(capsys, "corpus", "build", p)
    assert_user_error(rc, err, f"{p}:2: not UTF-8")


def test_utf8_bom_yaml_is_read(tmp_path):
    from polyclinic.config import read_yaml

    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbfname: demo\n")
    assert read_yaml(p) == {"name": "demo"}


def test_missing_base_names_the_referring_file(tmp_path, capsys):
    child = tmp_path / "child.yaml"
    child.write_text("_base_: nowhere/base.yaml\nname: x\n", encoding="utf-8")
    rc, _, err = run_cli(capsys, "encoder", "train", child, "--print-config")
    assert_user_error(rc, err, f"{child}: _base_ file not found", "nowhere/base.yaml")


# ---------------------------------------------------------------------------------------------------------
# tokenizer


@pytest.mark.parametrize("n", ["0", "-3", "5000"])
def test_tokenizer_train_refuses_bad_sentinel_count_before_training(tmp_path, capsys, n):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(f"fiebre tos dolor {i}" for i in range(50)), encoding="utf-8")
    out = tmp_path / "tok"
    rc, _, err = run_cli(capsys, "tokenizer", "train", "--text-file", text, "--vocab-size", "30",
                         "--num-sentinels", n, "--output", out)
    assert_user_error(rc, err, "--num-sentinels")
    assert not out.exists() and not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_train_tokenizer_api_refuses_zero_sentinels(tmp_path):
    from polyclinic.errors import UserError
    from polyclinic.tokenization import train_tokenizer

    with pytest.raises(UserError, match="num_sentinels"):
        train_tokenizer(["a b c"] * 10, tmp_path / "tok", vocab_size=20, num_sentinels=0)
    assert not (tmp_path / "tok").exists()


def test_tokenizer_check_refuses_zero_sentinels(capsys):
    rc, _, err = run_cli(capsys, "tokenizer", "check", "whatever", "--num-sentinels", "0")
    assert_user_error(rc, err, "--num-sentinels")


# ---------------------------------------------------------------------------------------------------------
# published files: normal permissions, no absolute path of the build machine


def _files_containing(folder: Path, needle: str) -> list[str]:
    hits = []
    for f in folder.rglob("*"):
        if f.is_file() and needle.encode() in f.read_bytes():
            hits.append(str(f.relative_to(folder)))
    return hits


@pytest.mark.parametrize("relative", [False, True])
def test_corpus_outputs_have_normal_permissions_and_no_build_paths(tmp_path, capsys, monkeypatch, relative):
    cfg = tiny_corpus_config(tmp_path)
    if relative:  # a config with relative paths: no file of the output may name the build folder
        monkeypatch.chdir(tmp_path)
        data = json.loads(cfg.read_text())
        data["output_dir"], data["sources"][0]["path"] = "out", "docs.jsonl"
        cfg.write_text(json.dumps(data))
    with (tmp_path / "docs.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "short", "text": "corto", "lang": "es"}\n')  # rejected: too short -> a `where` entry
        fh.write("not json\n")  # rejected: malformed -> a `where` entry with file:line
    old = os.umask(0o022)
    try:
        rc, _, err = run_cli(capsys, "corpus", "build", cfg, "--no-progress")
    finally:
        os.umask(old)
    assert rc == 0, err
    out = tmp_path / "out"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rejected_examples"], "the test needs rejected records"
    assert all(not ex["where"].startswith("/") for ex in stats["rejected_examples"]), stats["rejected_examples"]
    # stats.json (rejected records' `where`) never names the build folder; with absolute paths in the config,
    # config.yaml / manifest.json / the card record what the user wrote (the push `paths` gate stops those)
    assert str(tmp_path) not in (out / "stats.json").read_text()
    if relative:
        assert _files_containing(out, str(tmp_path)) == []
    for name in ("config.yaml", "stats.json", "manifest.json", "metrics.json", "README.md"):
        if (out / name).exists():
            assert (out / name).stat().st_mode & 0o777 == 0o644, name
    for f in out.rglob("*.parquet"):
        assert f.stat().st_mode & 0o777 == 0o644, f


def test_trained_tokenizer_holds_no_build_paths(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("\n".join(f"paciente con fiebre {i} y tos seca, dolor torácico" for i in range(80)), encoding="utf-8")
    out = tmp_path / "tok"
    rc, _, err = run_cli(capsys, "tokenizer", "train", "--text-file", text, "--vocab-size", "40", "--output", out)
    assert rc == 0, err
    assert (out / "spiece.model").is_file()
    assert _files_containing(out, str(tmp_path)) == []
    import tempfile

    assert _files_containing(out, tempfile.gettempdir() + "/") == []
    assert _files_containing(out, ".tmp-") == []


def test_card_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    from polyclinic.cli import main

    (tmp_path / "a_file").write_text("x")
    assert main(["card", str(tmp_path / "a_file"), "--kind", "mt5"]) == 2
    err = capsys.readouterr().err
    assert "is not a finished mt5 run folder" in err and "Traceback" not in err
