"""Demo documents: packaged ICD-10 descriptions (Spanish CIE-10, English ICD-10-CM) with clinical categories
derived from their codes, so the code's category can play the hand-verified label.

ADMEDTAGGER (Górski & Czyżewski, 2025) used radiology, oncology, cardiology, hypertension and pathology.
Radiology and pathology are services, not diagnoses: no ICD-10 chapter maps to them, so the demo uses five
categories that do map to code ranges (3-character categories compared as strings, ``start <= C3 <= end``):

============== =========================== ==========================================================
category       ICD-10 codes                notes
============== =========================== ==========================================================
oncology       C00–D49                     chapter II, neoplasms (malignant, in situ, benign, uncertain)
hypertension   I10–I16                     hypertensive diseases (taken out of cardiology)
cardiology     I00–I09, I20–I52            rheumatic, ischaemic, pulmonary-heart and other heart disease;
                                           cerebrovascular (I60–I69), arteries/veins (I70–I99) and
                                           I10–I16 are excluded (they are not "heart" documents)
pulmonology    J00–J99                     chapter X, respiratory system
endocrinology  E00–E89                     chapter IV, endocrine, nutritional and metabolic (diabetes…)
============== =========================== ==========================================================

Codes outside these ranges are not used. A document is one code description (both languages share
``ICD10:<code>`` ids, so ``id`` is ``<lang>:<code>``).
"""

from __future__ import annotations

import hashlib
from typing import Iterable

CATEGORY_RANGES: dict[str, list[tuple[str, str]]] = {
    "oncology": [("C00", "D49")],
    "hypertension": [("I10", "I16")],
    "cardiology": [("I00", "I09"), ("I20", "I52")],
    "pulmonology": [("J00", "J99")],
    "endocrinology": [("E00", "E89")],
}

# Label descriptions and few-shot examples for the teacher (English: the zero-shot encoder is English).
DEMO_LABELS: list[dict] = [
    {"name": "oncology", "description": "cancer, tumour, neoplasm, carcinoma, malignant or benign growth",
     "examples": ["Malignant neoplasm of the breast", "Benign tumour of the colon"]},
    {"name": "cardiology", "description": "heart disease: heart failure, myocardial infarction, angina, arrhythmia, "
                                          "cardiomyopathy, heart valve disease",
     "examples": ["Acute myocardial infarction", "Atrial fibrillation"]},
    {"name": "hypertension", "description": "high blood pressure, hypertension, hypertensive disease",
     "examples": ["Essential (primary) hypertension", "Hypertensive kidney disease"]},
    {"name": "pulmonology", "description": "lung and respiratory disease: pneumonia, asthma, bronchitis, "
                                           "respiratory infection, pulmonary disease",
     "examples": ["Pneumonia, unspecified organism", "Chronic obstructive pulmonary disease"]},
    {"name": "endocrinology", "description": "endocrine, metabolic and nutritional disease: diabetes, thyroid, "
                                             "obesity, hormone or vitamin disorders",
     "examples": ["Type 2 diabetes mellitus", "Hypothyroidism"]},
]


def icd_category(code: str) -> str | None:
    """Clinical category of an ICD-10 code (``I10``, ``C34.1``, ``J200``), None outside the mapped ranges."""
    c3 = code.replace(".", "").upper()[:3]
    if len(c3) < 3:
        return None
    for label, ranges in CATEGORY_RANGES.items():
        if any(a <= c3 <= b for a, b in ranges):
            return label
    return None


def _rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def icd_documents(langs: Iterable[str] = ("es", "en"), per_class: int = 60, seed: int = 0) -> list[dict]:
    """Up to ``per_class`` documents per (language, category), a stable hash sample.

    Rows: ``{"id", "text", "lang", "code", "gold"}`` (``gold`` = the code's category)."""
    from polyclinic.concepts.loaders import load_cie10, load_icd10cm
    from polyclinic.concepts.table import is_icd_code

    prefixes = ["C", "D", "E", "I", "J"]
    loaders = {"en": load_icd10cm, "es": load_cie10}
    rows: list[dict] = []
    for lang in langs:
        if lang not in loaders:
            from polyclinic.errors import UserError

            raise UserError(f"icd demo documents exist for es (CIE-10) and en (ICD-10-CM), not {lang!r}")
        table, _ = loaders[lang](prefixes=prefixes)
        by_label: dict[str, dict[str, dict]] = {}
        for cid, code, name in zip(table["concept_id"], table["code"], table["name"]):
            if not is_icd_code(cid):
                continue
            label = icd_category(code)
            if label is None:
                continue
            doc_id = f"{lang}:{code}"
            by_label.setdefault(label, {})[doc_id] = {"id": doc_id, "text": name, "lang": lang, "code": code,
                                                      "gold": label}
        for label in CATEGORY_RANGES:
            docs = sorted(by_label.get(label, {}).values(), key=lambda r: _rank(r["id"], seed))
            rows.extend(docs[:per_class])
    rows.sort(key=lambda r: _rank(r["id"], seed))
    return rows
