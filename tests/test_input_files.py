"""User input files as users really save them: BOMs, UTF-16/32, compressed, empty, broken, short TSV rows.

Each case is one a user hit: a UTF-8 BOM cost the first record, a UTF-16 JSONL or a ``.zst`` file gave a
"complete" corpus with zero documents and exit 0, and a short TSV row crashed ``encoder distill``.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import json
import lzma
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from polyclinic import textfiles
from polyclinic.cli import main as cli_main
from polyclinic.data.config import CorpusConfig
from polyclinic.data.corpus import build_corpus
from polyclinic.errors import UserError

LINES = ['{"text": "Paciente con neumonía adquirida en la comunidad", "n": 1}\n',
         '{"text": "Fractura de cadera tras caída 😷 en domicilio", "n": 2}\n',
         "\n",
         "última línea sin salto"]

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"]


def _compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    if how == "bzip2":
        return bz2.compress(data)
    if how == "xz":
        return lzma.compress(data)
    return data


# ----------------------------------------------------------------------------- polyclinic.textfiles


@pytest.mark.parametrize("how", [None, "gzip", "zstd", "bzip2", "xz"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_and_compression_reads_the_same_lines(tmp_path, encoding, how):
    path = tmp_path / "f.data"  # deliberately a neutral name: detection is by content
    path.write_bytes(_compress("".join(LINES).encode(encoding), how))
    got = [line for _, line in textfiles.iter_lines(path, strict=True)]
    assert got == LINES
    info = textfiles.sniff(path)
    assert info.compression == how
    assert info.bom == (encoding in ("utf-8-sig", "utf-16", "utf-32"))


def test_undecodable_bytes_are_located_tolerant_or_strict(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine line\ncaf\xe9 au lait\nfine again\n")
    lines = list(textfiles.iter_lines(path))
    assert [textfiles.undecodable(t) is None for _, t in lines] == [True, False, True]
    assert "0xe9" in textfiles.undecodable(lines[1][1])
    with pytest.raises(textfiles.TextFileError, match=r"latin1.txt:2: not valid UTF-8"):
        textfiles.read_text(path)


@pytest.mark.parametrize("how", ["gzip", "zstd", "xz"])
def test_truncated_compressed_file_is_an_error_naming_the_file(tmp_path, how):
    data = _compress(("".join(LINES) * 200).encode(), how)
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data[: len(data) - 12])
    with pytest.raises(textfiles.TextFileError, match="cut.jsonl: corrupt or truncated"):
        list(textfiles.iter_lines(path))


def test_json_surrogate_escapes_are_detected():
    assert textfiles.has_surrogates(json.loads('"bad \\ud800 text"'))
    assert not textfiles.has_surrogates("ok 😷 text") and not textfiles.has_surrogates("ascii")


# ----------------------------------------------------------------------------- corpus build


def _texts(n: int, tag: str) -> list[str]:
    return [" ".join(f"{tag}{i}w{j}" for j in range(8)) for i in range(n)]


def _jsonl(texts: list[str]) -> str:
    return "".join(json.dumps({"text": t, "id": f"r{k}"}) + "\n" for k, t in enumerate(texts))


def _corpus_cfg(tmp_path: Path, sources: list[dict], **kw) -> CorpusConfig:
    data = {"name": "inputs", "output_dir": str(tmp_path / "out"), "languages": ["en"], "progress": False,
            "sources": sources, "split": {"validation_fraction": 0.0}, **kw}
    return CorpusConfig.model_validate(data)


def test_bom_utf16_and_zst_jsonl_keep_every_record(tmp_path):
    import zstandard

    srcs = {
        "bom": codecs.BOM_UTF8 + _jsonl(_texts(4, "bom")).encode("utf-8"),
        "u16": _jsonl(_texts(5, "sixteen")).encode("utf-16"),
        "u32": _jsonl(_texts(3, "thirtytwo")).encode("utf-32-be"),  # no BOM: detected from the NULs
    }
    for name, data in srcs.items():
        (tmp_path / f"{name}.jsonl").write_bytes(data)
    zfolder = tmp_path / "zst"
    zfolder.mkdir()
    (zfolder / "part.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(_texts(6, "zed")).encode()))
    sources = [{"type": "jsonl", "path": str(tmp_path / f"{n}.jsonl"), "lang": "en", "id_field": "id", "name": n}
               for n in srcs]
    sources.append({"type": "jsonl", "path": str(zfolder), "lang": "en", "id_field": "id", "name": "zst"})
    stats = build_corpus(_corpus_cfg(tmp_path, sources))["stats"]
    assert stats["rejected"] == {}
    assert {k: v["documents"] for k, v in stats["sources"].items()} == {"bom": 4, "u16": 5, "u32": 3, "zst": 6}
    rows = pq.read_table(tmp_path / "out" / "en" / "train-00000-of-00001.parquet").to_pylist()
    ids = {r["id"] for r in rows}
    assert "bom:r0" in ids and "u16:r0" in ids  # the first record survives the BOM
    assert {r["text"] for r in rows} >= set(_texts(5, "sixteen"))


def _cli_build(tmp_path: Path, sources: list[dict], capsys, **kw) -> tuple[int, str]:
    cfg = {"name": "bad", "output_dir": str(tmp_path / "out"), "languages": ["en"], "progress": False,
           "sources": sources, **kw}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    rc = cli_main(["corpus", "build", str(tmp_path / "c.yaml")])
    return rc, capsys.readouterr().err


def test_empty_file_is_an_error_by_name_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    rc, err = _cli_build(tmp_path, [{"type": "jsonl", "path": str(tmp_path / "empty.jsonl"), "lang": "en"}], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "empty.jsonl" in err and "empty_file" in err and "no documents kept for en" in err
    assert not any(tmp_path.glob("out*"))  # no corpus folder, no .tmp-<pid> leftover


def test_file_of_bad_lines_and_wrong_compression_say_why(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n[1, 2]\n{\"text\": 3}\n\xff\xfe\xfa broken\n")
    trunc = tmp_path / "cut.jsonl.gz"
    trunc.write_bytes(gzip.compress(_jsonl(_texts(50, "cut")).encode())[:-20])
    rc, err = _cli_build(tmp_path, [{"type": "jsonl", "path": str(bad), "lang": "en"},
                                    {"type": "jsonl", "path": str(trunc), "lang": "en", "name": "cut"}], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "2 lines that are not a JSON object (corrupt_json)" in err
    assert "missing_text" in err and "unreadable_file" in err and "cut.jsonl.gz" in err
    assert not any(tmp_path.glob("out*"))


def test_a_requested_language_without_documents_fails_unless_allowed(tmp_path, capsys):
    (tmp_path / "en.jsonl").write_text(_jsonl(_texts(4, "eng")))
    src = [{"type": "jsonl", "path": str(tmp_path / "en.jsonl"), "lang_field": "lang"}]
    rc, err = _cli_build(tmp_path, src, capsys, languages=["en", "es"])
    # the records have no "lang" field: nothing is kept for either language
    assert rc == 2 and "missing_language" in err
    (tmp_path / "en.jsonl").write_text("".join(json.dumps({"text": t, "lang": "en"}) + "\n" for t in _texts(4, "eng")))
    rc, err = _cli_build(tmp_path, src, capsys, languages=["en", "es"])
    assert rc == 2 and "no documents kept for es" in err and "allow_empty_languages" in err
    rc, err = _cli_build(tmp_path, src, capsys, languages=["en", "es"], allow_empty_languages=True)
    assert rc == 0 and (tmp_path / "out" / "COMPLETE").is_file()


# ----------------------------------------------------------------------------- TSV / CSV readers


def test_utf16_tsv_pairs_and_parallel_sentences(tmp_path):
    from polyclinic.encoders.data import load_pairs_files, load_parallel_files

    pairs = tmp_path / "pairs.tsv"
    pairs.write_bytes("anchor\tpositive\nfiebre\tpirexia\ntos seca\ttos no productiva\n".encode("utf-16"))
    ds = load_pairs_files([pairs])
    assert ds["anchor"] == ["fiebre", "tos seca"] and ds["positive"] == ["pirexia", "tos no productiva"]
    par = tmp_path / "par.tsv"
    par.write_bytes(codecs.BOM_UTF8 + "fever\tfiebre\ncough\ttos\n".encode())
    ds = load_parallel_files([par])
    assert ds["english"] == ["fever", "cough"] and ds["non_english"] == ["fiebre", "tos"]


def test_short_tsv_rows_name_the_line_and_the_expected_columns(tmp_path):
    from polyclinic.encoders.data import load_pairs_files, load_parallel_files

    par = tmp_path / "par.tsv"
    par.write_text("id\tsource\ttranslation\n1\tfever\tfiebre\n2\tcough\n")
    with pytest.raises(UserError, match=r"par.tsv:3: 2 cell\(s\), expected at least 3: .*id<TAB>source<TAB>translation"):
        load_parallel_files([par])
    headerless = tmp_path / "h.tsv"
    headerless.write_text("fever\tfiebre\n\nlonely\n")
    with pytest.raises(UserError, match=r"h.tsv:3: 1 cell\(s\).*source<TAB>translation"):
        load_parallel_files([headerless])
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("anchor\tpositive\tnegative\nfiebre\tpirexia\tfractura\ntos\ttusígeno\n")
    with pytest.raises(UserError, match=r"pairs.tsv:3: 2 cell\(s\), but the header has 3: expected anchor<TAB>positive<TAB>negative"):
        load_pairs_files([pairs])
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"anchor\tpositive\nfiebre\tpirexia\ntos\tcaf\xe9\n")
    with pytest.raises(UserError, match=r"bad.tsv:3: not valid UTF-8"):
        load_pairs_files([bad])


def test_non_object_jsonl_pairs_are_user_errors(tmp_path):
    from polyclinic.encoders.data import read_records

    p = tmp_path / "p.jsonl"
    p.write_text('{"anchor": "a", "positive": "b"}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"p.jsonl:2: expected a JSON object"):
        read_records(p)
    j = tmp_path / "p.json"
    j.write_text("42")
    with pytest.raises(UserError, match="expected a list of records"):
        read_records(j)


def test_concept_tables_in_utf16_and_with_bad_bytes(tmp_path):
    from polyclinic.concepts.loaders import load_table_file

    tsv = tmp_path / "c.tsv"
    tsv.write_bytes("code\tname\tsystem\tlang\nA01\tFiebre tifoidea\tCIE-10\tes\nA02\tSalmonelosis\tCIE-10\tes\n"
                    "A03\n".encode("utf-16"))
    table, report = load_table_file(tsv)
    assert len(table) == 2 and report.malformed == 1 and report.problems[0].startswith(f"{tsv}:4: missing cells")
    jl = tmp_path / "c.jsonl"
    jl.write_bytes(b'{"code": "A01", "name": "Fiebre", "system": "CIE-10", "lang": "es"}\n'
                   b'{"code": "A02", "name": "Salmonel\xf3sis", "system": "CIE-10", "lang": "es"}\n')
    table, report = load_table_file(jl)
    assert len(table) == 1 and report.malformed == 1
    assert report.problems[0].startswith(f"{jl}:2: not valid text") and "0xf3" in report.problems[0]


def test_sts_file_in_utf16(tmp_path):
    from polyclinic.evaluation.sts import load_scored_pairs

    p = tmp_path / "sts.tsv"
    p.write_bytes("sentence1\tsentence2\tscore\nfiebre\tpirexia\t4.5\ntos\tfractura\t0.5\ncorto\n".encode("utf-16"))
    s1, s2, sc, bad = load_scored_pairs(p)
    assert s1 == ["fiebre", "tos"] and sc == [4.5, 0.5] and bad == 1


def test_lone_surrogate_escapes_are_counted_not_written(tmp_path):
    texts = _texts(3, "ok")
    lines = [json.dumps({"text": t}) for t in texts] + ['{"text": "nota cl\\ud800nica con texto largo"}',
                                                         '{"text": "otra nota larga", "id": "\\udfff"}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    stats = build_corpus(_corpus_cfg(tmp_path, [{"type": "jsonl", "path": str(tmp_path / "s.jsonl"), "lang": "en",
                                                 "id_field": "id"}]))["stats"]
    assert stats["kept"] == 3 and stats["rejected"] == {"invalid_unicode": 2}
