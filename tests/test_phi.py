"""PHI detectors (polyclinic.phi): each kind is found in its written forms, its look-alikes with a wrong check
character are not, the kit's own terminology text yields no hit, and mask_phi / stats.json never keep a value."""

from __future__ import annotations

import itertools
import json

import pytest

from polyclinic.phi import (
    find_phi,
    mask_phi,
    scan_text_phi,
    valid_codice_fiscale,
    valid_dni,
    valid_iban,
    valid_nie,
    valid_nif_pt,
    valid_nir,
    valid_pesel,
)


def _nir(body: str) -> str:
    """A French NIR with its correct key (Corsica 2A/2B count as 19/18)."""
    digits = body.replace(" ", "").replace("2A", "19").replace("2B", "18")
    return f"{body} {97 - int(digits) % 97:02d}"


POSITIVE = [
    ("escribir a ana.lopez@hospital-clinic.es hoy", "email", "ana.lopez@hospital-clinic.es"),
    ("écrire à jean.dupont@chu-lyon.fr", "email", "jean.dupont@chu-lyon.fr"),
    ("llamar al 612345678 mañana", "phone", "612345678"),
    ("móvil 712345678", "phone", "712345678"),
    ("consulta 91 234 56 78", "phone", "91 234 56 78"),
    ("centralita 912 34 56 78", "phone", "912 34 56 78"),
    ("contacto +34 612 345 678", "phone", "+34 612 345 678"),
    ("appeler le 01 23 45 67 89", "phone", "01 23 45 67 89"),
    ("chiamare il 347 123 4567", "phone", "347 123 4567"),
    ("telefon: 512 345 678", "phone", "512 345 678"),
    ("call (555) 123-4567", "phone", "(555) 123-4567"),
    ("Tel.: 0049 30 1234 5678", "phone", "0049 30 1234 5678"),
    ("DNI 12345678Z del paciente", "national-id-es-dni", "12345678Z"),
    ("DNI 12.345.678-Z", "national-id-es-dni", "12.345.678-Z"),
    ("NIE X1234567L", "national-id-es-nie", "X1234567L"),
    ("NIE Y-1234567-X", "national-id-es-nie", "Y-1234567-X"),
    (f"NIR {_nir('2 55 08 14 168 025')}", "national-id-fr-nir", _nir("2 55 08 14 168 025")),
    (f"NIR {_nir('1 85 05 2A 006 084')}", "national-id-fr-nir", _nir("1 85 05 2A 006 084")),
    ("codice fiscale RSSMRA85T10A562S", "national-id-it-cf", "RSSMRA85T10A562S"),
    ("NIF 123456789", "national-id-pt-nif", "123456789"),
    ("contribuinte n.º 501964843", "national-id-pt-nif", "501964843"),
    ("PESEL 44051401359", "national-id-pl-pesel", "44051401359"),
    ("IBAN ES91 2100 0418 4502 0005 1332", "iban", "ES91 2100 0418 4502 0005 1332"),
    ("IBAN GB82 WEST 1234 5698 7654 32 DNI", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("konto PL61109010140000071219812874", "iban", "PL61109010140000071219812874"),
    ("SSN 123-45-6789 on file", "national-id-us-ssn", "123-45-6789"),
    ("MRN: 00123456", "medical-record-number", "00123456"),
    ("fecha de nacimiento: 12/03/1961", "date-of-birth", "12/03/1961"),
    ("née le 3 mars 1950", "date-of-birth", "3 mars 1950"),
    ("data urodzenia 1961-03-12", "date-of-birth", "1961-03-12"),
    ("vive en Calle de Alcalá 45, Madrid", "street-address", "Calle de Alcalá 45"),
]


@pytest.mark.parametrize("text,kind,value", POSITIVE)
def test_each_kind_is_found_with_its_exact_value(text, kind, value):
    assert list(scan_text_phi(text)) == [(kind, value)]


NEGATIVE = [
    "12345678A",  # DNI with the wrong check letter
    "12.345.678-A",
    "X1234567A",  # NIE with the wrong letter
    _nir("2 55 08 14 168 025")[:-2] + ("00" if not _nir("2 55 08 14 168 025").endswith("00") else "01"),  # wrong key
    "RSSMRA85T10A562X",  # codice fiscale, wrong check letter
    "NIF 123456780",  # wrong mod-11 digit
    "44051401358",  # PESEL, wrong checksum
    "ES91 2100 0418 4502 0005 1333",  # IBAN, wrong mod-97
    "I21.9; C34.1; I10; E11.65; HP:0001250; OMIM:612345678; ORPHA:123456",
    "500 mg cada 8 h; en 2019-2020; TA 120/80; 1.234.567 habitantes; 3,612345678 g; 0.612345678",
    "peso al nacer 1000-1249 gramos; semanas 37-42; 25.000 UI",
    "512345678901234567890",  # a long number is not a phone
    "paciente de 45 años, nacido en 1961",  # a year is not a date of birth
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_look_alikes_are_not_reported(text):
    assert list(scan_text_phi(text)) == []


def test_validators_check_the_check_characters():
    assert valid_dni("12345678Z") and not valid_dni("12345678A")
    assert valid_nie("X1234567L") and not valid_nie("X1234567A")
    assert valid_codice_fiscale("RSSMRA85T10A562S") and not valid_codice_fiscale("RSSMRA85T10A562T")
    assert valid_nif_pt("123456789") and not valid_nif_pt("123456788")
    assert valid_pesel("44051401359") and not valid_pesel("44051401350")
    assert valid_iban("DE89 3704 0044 0532 0130 00") and not valid_iban("DE89 3704 0044 0532 0130 01")
    nir = _nir("1 85 05 2B 006 084")
    assert valid_nir(nir) and not valid_nir(nir[:-2] + f"{(int(nir[-2:]) + 1) % 97:02d}")


def test_random_8_digit_numbers_with_a_letter_are_flagged_only_with_the_right_letter():
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    for n in (10000000, 23456789, 87654321, 55555555):
        right = letters[n % 23]
        assert [k for k, _ in scan_text_phi(f"id {n}{right}")] == ["national-id-es-dni"]
        wrong = [c for c in letters if c != right]
        assert all(list(scan_text_phi(f"id {n}{c}")) == [] for c in wrong)


def test_mask_phi_replaces_every_value_by_its_placeholder():
    text = ("Paciente: María García López, DNI 12.345.678-Z, tel. 612345678, nacida el 12/03/1961, "
            "maria.garcia@correo.es, IBAN ES91 2100 0418 4502 0005 1332.")
    masked = mask_phi(text)
    for value in ("María", "García", "12.345.678", "612345678", "12/03/1961", "maria.garcia", "2100 0418"):
        assert value not in masked
    assert masked == ("Paciente: [NAME], DNI [ID-ES-DNI], tel. [PHONE], nacida el [DOB], [EMAIL], IBAN [IBAN].")
    assert mask_phi("Sr. Juan Pérez ingresa") == "Sr. [NAME] ingresa"
    assert mask_phi("Sr. Juan Pérez ingresa", names=False) == "Sr. Juan Pérez ingresa"
    clean = "Neumonía adquirida en la comunidad (J18.9), 500 mg cada 8 h."
    assert mask_phi(clean) == clean


def test_spans_do_not_overlap_and_keyword_matches_win():
    spans = find_phi("NHC 123456789, tel. +34 612 345 678")
    assert [m.kind for m in spans] == ["medical-record-number", "phone"]
    assert all(a.match_end <= b.match_start for a, b in zip(spans, spans[1:]))


def test_no_hits_on_thousands_of_packaged_terminology_descriptions():
    """ICD-10 codes, HPO ids, weights, ages, years and ranges of the kit's own corpus text are not PHI."""
    from polyclinic.data.packaged import iter_packaged

    hits, docs = [], 0
    for source in ("icd10cm", "who_icd10", "cie10_es", "hpo"):
        for raw_id, text in itertools.islice(iter_packaged(source), 1200):
            docs += 1
            hits += [(source, raw_id, m.kind, m.value) for m in find_phi(text)]
    assert docs >= 4000
    assert hits == []


def test_rejected_record_excerpt_in_stats_json_carries_no_phi(tmp_path):
    """The reported failure: a record with an unsupported language code carried a name, a DNI, a phone, a birth
    date and an e-mail into stats.json (which is pushed with the dataset)."""
    from polyclinic.data.config import CorpusConfig
    from polyclinic.data.corpus import build_corpus
    from polyclinic.data.packaged import iter_packaged
    from polyclinic.io import read_json

    phi = ("Paciente: Juan Pérez Gómez, DNI 12345678Z, tel. 612 345 678, fecha de nacimiento: 03/04/1958, "
           "correo juan.perez@example.com. Acude por dolor torácico opresivo de dos horas de evolución.")
    docs = [t for _, t in itertools.islice(iter_packaged("cie10_es"), 8)]
    src = tmp_path / "in.jsonl"
    rows = [{"text": t, "lang": "es"} for t in docs] + [{"text": phi, "lang": "xx", "id": "r9"}]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    cfg = CorpusConfig.model_validate({
        "name": "t", "output_dir": str(tmp_path / "out"), "languages": ["es"], "progress": False,
        "sources": [{"type": "jsonl", "path": str(src), "lang_field": "lang"}],
    })
    build_corpus(cfg)
    raw = (tmp_path / "out" / "stats.json").read_text(encoding="utf-8")
    for value in ("Juan", "Pérez", "12345678Z", "612 345 678", "03/04/1958", "juan.perez", "example.com"):
        assert value not in raw, value
    stats = read_json(tmp_path / "out" / "stats.json")
    (ex,) = [e for e in stats["rejected_examples"] if e["reason"] == "unsupported_language"]
    assert ex["where"].endswith("in.jsonl:9")  # the record is still found by its place in the input
    assert ex["excerpt"].startswith("Paciente: [NAME], DNI [ID-ES-DNI], tel. [PHONE], fecha de nacimiento: [DOB]")
