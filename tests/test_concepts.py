"""Concept tables and loaders: OBO/CSV/JSONL parsing, malformed rows, packaged sources linked by code."""

from __future__ import annotations

import json

import pytest

from polyclinic.concepts.loaders import load_cie10, load_icd10_who, load_icd10cm, load_obo, load_source, load_table_file
from polyclinic.concepts.table import ConceptIndex, concat_tables, load_table, save_table
from polyclinic.concepts.verbalize import describe, lower_first, verbalize_concept

OBO = """format-version: 1.2
ontology: toy

[Term]
id: TOY:0001
name: Spinal disease
def: "A disease of the \\"spine\\"." [PMID:1]

[Term]
id: TOY:0002
name: Kissing spine
synonym: "Baastrup disease" EXACT []
synonym: "Baastrup syndrome" RELATED []
is_a: TOY:0001 ! Spinal disease
relationship: located_in TOY:0009 ! lumbar spine

[Term]
id: TOY:0003
def: "no name here" []

[Term]
id: TOY:0004
name: Old term
is_obsolete: true

[Term]
id: TOY:0005
name: Spondylolysis
this line has no colon
is_a: TOY:0001

[Typedef]
id: located_in
name: located in
"""


def test_obo_parsing_and_malformed(tmp_path):
    p = tmp_path / "toy.obo"
    p.write_text(OBO, encoding="utf-8")
    table, report = load_obo(p)
    rows = {r["concept_id"]: r for r in table}
    assert sorted(rows) == ["TOY:0001", "TOY:0002", "TOY:0005"]  # nameless and obsolete skipped
    assert rows["TOY:0001"]["definition"] == 'A disease of the "spine".'
    assert rows["TOY:0002"]["synonyms"] == ["Baastrup disease"]  # RELATED not kept by default
    assert rows["TOY:0002"]["parents"] == ["TOY:0001"]
    assert rows["TOY:0002"]["relations"] == [{"type": "located_in", "target": "TOY:0009"}]
    assert rows["TOY:0005"]["system"] == "TOY" and rows["TOY:0005"]["lang"] == "en"
    assert report.malformed == 2
    assert any(prob.startswith(f"{p}:") and "without name" in prob for prob in report.problems)
    bad_line = OBO.splitlines().index("this line has no colon") + 1
    assert any(prob.startswith(f"{p}:{bad_line}:") and "colon" in prob for prob in report.problems)


def test_csv_tsv_jsonl_with_malformed_rows(tmp_path):
    csv_path = tmp_path / "terms.csv"
    csv_path.write_text(
        "code,name,synonyms,definition,parents,lang\n"
        "J20,Acute bronchitis,Chest cold|Bronchitis acute,,,en\n"
        "J20.0,Acute bronchitis due to Mycoplasma,,,ICD10:J20,en\n"
        "J21,,,,,en\n"  # no name
        "J22,Unspecified,,,,en,EXTRA\n"  # extra cell
        "J20,Bronquitis aguda,,,,es\n",
        encoding="utf-8",
    )
    table, report = load_table_file(csv_path, system="ICD-10-CM")
    assert report.malformed == 2
    assert {p.split(": ")[0] for p in report.problems} == {f"{csv_path}:4", f"{csv_path}:5"}
    ids = table["concept_id"]
    assert list(ids) == ["ICD10:J20", "ICD10:J20.0", "ICD10:J20"]  # ICD systems share ICD10:<code>
    assert table[0]["synonyms"] == ["Chest cold", "Bronchitis acute"]

    jl = tmp_path / "terms.jsonl"
    jl.write_text(json.dumps({"concept_id": "X:1", "system": "X", "name": "A", "lang": "fr"}) + "\n" + "{broken\n"
                  + json.dumps({"concept_id": "X:2", "system": "X", "lang": "fr"}) + "\n", encoding="utf-8")
    t2, r2 = load_source(str(jl))
    assert len(t2) == 1 and r2.malformed == 2 and r2.problems[0].startswith(f"{jl}:2")


def test_packaged_sources_link_spanish_and_english():
    cm, rep_cm = load_icd10cm(prefixes=["J20"])
    cie, rep_cie = load_cie10(prefixes=["J20"])
    who, _ = load_icd10_who(prefixes=["J20"])
    assert rep_cm.malformed == 0 and rep_cie.malformed == 0
    table = concat_tables([cm, cie, who])
    idx = ConceptIndex(table)
    assert idx.name("ICD10:J20.0", "es") == "Bronquitis aguda debida a Mycoplasma pneumoniae"
    assert idx.name("ICD10:J20.0", "en") == "Acute bronchitis due to Mycoplasma pneumoniae"
    assert {r.system for r in idx.rows_of("ICD10:J20.0")} == {"ICD-10-CM", "CIE-10", "ICD-10-WHO"}
    assert "ICD10:J20" in idx.parents["ICD10:J20.0"]
    assert "ICD10:J00-J99" in idx.parents["ICD10:J20"]  # CM chapter = CIE chapter id
    assert set(idx.langs("ICD10:J00-J99")) == {"en", "es"}
    assert verbalize_concept(idx, "ICD10:J20.0", "es") == (
        "Bronquitis aguda debida a Mycoplasma pneumoniae es un tipo de bronquitis aguda.")


def test_cie_malformed_rows_are_counted(tmp_path):
    p = tmp_path / "cie.csv"
    p.write_text("code,code_0,code_1,code_2,code_3,code_4,description,level,source\n"
                 "J20,J00-J99,J20-J22,,,,Bronquitis aguda,2,x\n"
                 "J200,J00-J99,J20-J22,J20,,,Bronquitis aguda debida a Mycoplasma,3,x\n"
                 "???,,,,,,Roto,3,x\n"
                 "J201,J00-J99,J20-J22,J20,,,,3,x\n", encoding="utf-8")
    table, rep = load_cie10(path=p)
    assert rep.malformed == 2 and f"{p}:4" in rep.problems[0]
    assert sorted(table["code"]) == ["J20", "J20.0"]


def test_table_roundtrip_and_stats(tmp_path):
    cm, _ = load_icd10cm(prefixes=["J45"])
    save_table(cm, tmp_path / "t")
    back = load_table(tmp_path / "t")
    assert back.to_list() == cm.to_list()
    stats = json.loads((tmp_path / "t" / "stats.json").read_text())
    assert stats["rows"] == len(cm) and stats["by_lang"] == {"en": len(cm)}


@pytest.mark.parametrize("lang,expected", [
    ("en", "Kissing spine is a kind of spondylopathy."),
    ("es", "Espinas en beso es un tipo de espondilopatía."),
    ("fr", "Kissing spine est un type de spondylopathie."),
    ("de", "Kissing spine ist eine Art von Spondylopathie."),
    ("it", "Kissing spine è un tipo di spondilopatia."),
    ("pt", "Kissing spine é um tipo de espondilopatia."),
    ("ca", "Kissing spine és un tipus d'espondilopatia."),
    ("pl", "Kissing spine to rodzaj: spondylopatia."),
])
def test_verbalize_templates(lang, expected):
    names = {"en": "Spondylopathy", "es": "Espondilopatía", "fr": "Spondylopathie", "it": "Spondilopatia",
             "pt": "Espondilopatia", "ca": "Espondilopatia", "pl": "Spondylopatia", "de": "Spondylopathie"}
    name = "Espinas en beso" if lang == "es" else "Kissing spine"
    assert describe(name, lang, [names[lang]]) == expected
    assert describe(name, lang, []) == ""
    assert lower_first("HIV infection") == "HIV infection" and lower_first("Acute X") == "acute X"


def test_concepts_cli_load(tmp_path, monkeypatch):
    import polyclinic.manifest
    from polyclinic.commands.concepts import main

    monkeypatch.setattr(polyclinic.manifest, "library_versions", lambda: {})  # importing torch & co. is slow

    out = tmp_path / "c"
    assert main(["load", "icd10cm", "cie10", "--prefix", "J20", "--output", str(out)]) == 0
    t = load_table(out)
    assert set(t["lang"]) == {"en", "es"}
    assert (out / "stats.json").is_file() and (out / "COMPLETE").is_file()
