"""Pair building on a hand-written ontology: exact pairs, split by concept, sibling hard negatives."""

from __future__ import annotations

import pytest

from polyclinic.concepts.loaders import load_table_file
from polyclinic.concepts.pairs import PairConfig, build_pairs, load_split, save_pairs, split_concepts, training_dataset
from polyclinic.concepts.table import Concept, ConceptIndex, concepts_to_table

CSV = """concept_id,system,code,lang,name,synonyms,definition,parents
T:1,T,1,en,Spine disease,,,
T:2,T,2,en,Kissing spine,Baastrup disease,A condition in which adjacent spinous processes touch.,T:1
T:3,T,3,en,Spondylolysis,,,T:1
T:2,T-ES,2,es,Espinas en beso,,,T:1
T:1,T-ES,1,es,Enfermedad de la columna,,,
"""


@pytest.fixture()
def toy(tmp_path):
    p = tmp_path / "toy.csv"
    p.write_text(CSV, encoding="utf-8")
    table, report = load_table_file(p)
    assert report.malformed == 0
    return table


def test_expected_pairs_exactly(toy):
    res = build_pairs(toy, PairConfig(dev_fraction=0.0, hard_negatives=False))
    got = [(r["concept_id"], r["kind"], r["lang"], r["anchor"], r["positive"], r["negative"]) for r in res.train]
    assert got == [
        ("T:1", "cross_lang", "es-en", "Enfermedad de la columna", "Spine disease", ""),
        ("T:2", "definition", "en", "Kissing spine", "A condition in which adjacent spinous processes touch.", ""),
        ("T:2", "synonym", "en", "Kissing spine", "Baastrup disease", ""),
        ("T:2", "description", "en", "Kissing spine", "Kissing spine is a kind of spine disease.", ""),
        ("T:2", "description", "es", "Espinas en beso", "Espinas en beso es un tipo de enfermedad de la columna.", ""),
        ("T:2", "cross_lang", "es-en", "Espinas en beso", "Kissing spine", ""),
        ("T:3", "description", "en", "Spondylolysis", "Spondylolysis is a kind of spine disease.", ""),
    ]
    assert len(res.dev) == 0
    assert res.stats.by_kind["train"] == {"cross_lang": 2, "definition": 1, "description": 3, "synonym": 1}
    assert res.stats.concepts_without_pairs == 0


def test_hard_negatives_are_siblings(toy):
    res = build_pairs(toy, PairConfig(dev_fraction=0.0, hard_negatives=True))
    by = {(r["concept_id"], r["kind"], r["lang"]): r for r in res.train}
    # T:2 and T:3 are siblings (both under T:1); T:3 has no definition, so its name is the negative
    assert by[("T:2", "definition", "en")]["negative"] == "Spondylolysis"
    assert by[("T:2", "definition", "en")]["negative_concept_id"] == "T:3"
    assert by[("T:3", "description", "en")]["negative"] == "Kissing spine is a kind of spine disease."
    assert by[("T:2", "description", "es")]["negative"] == ""  # the sibling has no Spanish name
    assert by[("T:1", "cross_lang", "es-en")]["negative"] == ""  # roots have no siblings
    idx = ConceptIndex(toy)
    for r in res.train:
        if r["negative"]:
            assert r["negative_concept_id"] in idx.siblings(r["concept_id"])


def _icd_table(n_cats: int = 40):
    rows = [Concept("ICD10:A00-B99", "ICD-10-CM", "A00-B99", "en", "Infections"),
            Concept("ICD10:A00-B99", "CIE-10", "A00-B99", "es", "Infecciones")]
    for i in range(n_cats):
        cat = f"A{i:02d}"
        rows.append(Concept(f"ICD10:{cat}", "ICD-10-CM", cat, "en", f"Disease {i}", parents=["ICD10:A00-B99"]))
        rows.append(Concept(f"ICD10:{cat}", "CIE-10", cat, "es", f"Enfermedad {i}", parents=["ICD10:A00-B99"]))
        for j in range(3):
            rows.append(Concept(f"ICD10:{cat}.{j}", "ICD-10-CM", f"{cat}.{j}", "en", f"Disease {i} type {j}",
                                parents=[f"ICD10:{cat}"]))
            rows.append(Concept(f"ICD10:{cat}.{j}", "CIE-10", f"{cat}.{j}", "es", f"Enfermedad {i} tipo {j}",
                                parents=[f"ICD10:{cat}"]))
    return concepts_to_table(rows)


def test_split_by_category_no_leak(tmp_path):
    table = _icd_table()
    split = split_concepts(table, dev_fraction=0.25, seed=3, group_by="category")
    assert not split.train & split.dev
    assert "ICD10:A00-B99" in split.train  # chapters always train
    dev_cats = {c for c in split.dev if "." not in c}
    assert len(dev_cats) == 10  # round(40 * 0.25) categories
    for c in dev_cats:  # whole categories move together
        assert {f"{c}.{j}" for j in range(3)} <= split.dev
    assert split_concepts(table, 0.25, 3) == split  # deterministic
    assert split_concepts(table, 0.25, 4).dev != split.dev

    res = build_pairs(table, PairConfig(dev_fraction=0.25, seed=3))
    train_ids, dev_ids = set(res.train["concept_id"]), set(res.dev["concept_id"])
    assert not train_ids & dev_ids and res.stats.leaked_concepts == 0
    assert dev_ids == split.dev
    # negatives come from the same split; training text never names a dev concept
    for ds, side in ((res.train, split.train), (res.dev, split.dev)):
        for r in ds:
            if r["negative_concept_id"]:
                assert r["negative_concept_id"] in side
    dev_names = {f"enfermedad {int(c[7:10])}" for c in dev_cats} | {f"disease {int(c[7:10])}" for c in dev_cats}
    for r in res.train:
        if r["kind"] == "description":
            assert not any(r["positive"].lower().endswith(f"kind of {n}.") or r["positive"].lower().endswith(f"tipo de {n}.")
                           for n in dev_names)
    # cross-language pairs for every shared code
    cross = [r for r in res.train if r["kind"] == "cross_lang"]
    assert {r["concept_id"] for r in cross} == split.train
    assert all(r["lang"] == "es-en" and r["anchor"].startswith(("Enfermedad", "Infecciones")) for r in cross)

    save_pairs(res, tmp_path / "pairs")
    assert load_split(tmp_path / "pairs") == split.dev
    assert training_dataset(res.train, "require").column_names == ["anchor", "positive", "negative"]
    assert training_dataset(res.train).column_names == ["anchor", "positive"]


def test_split_by_concept_and_prefix():
    table = _icd_table(10)
    rows = [Concept(f"HP:{i:07d}", "HPO", f"HP:{i:07d}", "en", f"Phenotype {i}") for i in range(20)]
    from polyclinic.concepts.table import concat_tables

    table = concat_tables([table, concepts_to_table(rows)])
    s = split_concepts(table, 0.5, 0, group_by="concept", id_prefixes=["ICD10:"])
    assert all(c.startswith("ICD10:") for c in s.dev)
    assert len(s.dev) == 20  # round(40 codes * 0.5)


def test_training_descriptions_hide_dev_parents():
    table = _icd_table(12)
    split = split_concepts(table, 0.5, 1, group_by="concept")
    res = build_pairs(table, PairConfig(group_by="concept", hard_negatives=False), split=split)
    idx = ConceptIndex(table)
    orphans = [c for c in split.train if idx.parents[c] and all(p in split.dev for p in idx.parents[c])]
    assert orphans  # the situation is exercised
    desc = {r["concept_id"] for r in res.train if r["kind"] == "description"}
    assert not desc & set(orphans)  # their only parent is held out: no description at all
    dev_desc = {r["concept_id"] for r in res.dev if r["kind"] == "description"}
    assert dev_desc == {c for c in split.dev if idx.parents[c]}  # dev descriptions see everything


def test_cli_pairs_define_benchmark(tmp_path, monkeypatch, capsys):
    import json

    import polyclinic.manifest
    from polyclinic.commands.concepts import main
    from polyclinic.concepts.table import save_table

    monkeypatch.setattr(polyclinic.manifest, "library_versions", lambda: {})
    save_table(_icd_table(20), tmp_path / "concepts")
    assert main(["pairs", "--concepts", str(tmp_path / "concepts"), "--output", str(tmp_path / "pairs"),
                 "--dev-fraction", "0.2", "--seed", "1"]) == 0
    stats = json.loads((tmp_path / "pairs" / "stats.json").read_text())
    assert stats["leaked_concepts"] == 0 and stats["dev_pairs"] > 0
    dev = load_split(tmp_path / "pairs")
    assert len({c.split(".")[0] for c in dev}) == 4  # 20 categories * 0.2

    assert main(["define", "--concepts", str(tmp_path / "concepts")]) == 0
    assert "dry run" in capsys.readouterr().out

    assert main(["benchmark", "--concepts", str(tmp_path / "concepts"), "--pairs", str(tmp_path / "pairs"),
                 "--output", str(tmp_path / "bench"), "--corpus-scope", "codes"]) == 0
    queries = [json.loads(line) for line in (tmp_path / "bench" / "queries.jsonl").read_text().splitlines()]
    assert {"ICD10:" + q["_id"].split(":", 1)[1] for q in queries} == dev
