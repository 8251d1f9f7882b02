"""The concept table: one row per (concept, system, language), as a ``datasets.Dataset``.

Columns (see :data:`FEATURES`)::

    concept_id  str        shared identifier; rows of different systems/languages that denote the same
                           concept share it (``ICD10:J20.0`` for WHO ICD-10, ICD-10-CM and CIE-10 alike,
                           ``HP:0002650`` for HPO, the OBO id for other ontologies)
    system      str        the source terminology (``ICD-10-CM``, ``ICD-10-WHO``, ``CIE-10``, ``HPO``, ...)
    code        str        the code inside that system, dotted for ICD (``J20.0``)
    lang        str        ISO 639-1 language of the strings in this row
    name        str        preferred name
    synonyms    list[str]  other names in the same language
    definition  str        "" when none
    parents     list[str]  concept_ids of the direct parents (is-a)
    relations   list[{type, target}]  other typed edges (target is a concept_id)

:class:`ConceptIndex` gives fast Python lookups (by concept id, parents/children, names per language)
used by the verbaliser, the pair builder and the benchmark builder.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import datasets

from polyclinic.errors import UserError

FEATURES = datasets.Features(
    {
        "concept_id": datasets.Value("string"),
        "system": datasets.Value("string"),
        "code": datasets.Value("string"),
        "lang": datasets.Value("string"),
        "name": datasets.Value("string"),
        "synonyms": datasets.List(datasets.Value("string")),
        "definition": datasets.Value("string"),
        "parents": datasets.List(datasets.Value("string")),
        "relations": datasets.List({"type": datasets.Value("string"), "target": datasets.Value("string")}),
    }
)
COLUMNS = list(FEATURES)
TABLE_FILE = "concepts.parquet"
STATS_FILE = "stats.json"

ConceptTable = datasets.Dataset  # a Dataset with FEATURES; kept as an alias for readable signatures


@dataclasses.dataclass
class Concept:
    """One row of the concept table (validated by :meth:`check`)."""

    concept_id: str
    system: str
    code: str
    lang: str
    name: str
    synonyms: list[str] = dataclasses.field(default_factory=list)
    definition: str = ""
    parents: list[str] = dataclasses.field(default_factory=list)
    relations: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def check(self) -> "Concept":
        for f in ("concept_id", "system", "code", "lang", "name"):
            value = getattr(self, f)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"concept field {f!r} is empty")
        self.name = " ".join(self.name.split())
        self.definition = " ".join((self.definition or "").split())
        seen = {self.name.casefold()}
        syns = []
        for s in self.synonyms or []:
            s = " ".join(str(s).split())
            if s and s.casefold() not in seen:
                seen.add(s.casefold())
                syns.append(s)
        self.synonyms = syns
        self.parents = list(dict.fromkeys(p for p in (self.parents or []) if p and p != self.concept_id))
        rels = []
        for r in self.relations or []:
            if not isinstance(r, dict) or not r.get("type") or not r.get("target"):
                raise ValueError(f"relation {r!r} needs 'type' and 'target'")
            rels.append({"type": str(r["type"]), "target": str(r["target"])})
        self.relations = rels
        return self

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def icd_concept_id(code: str) -> str:
    """``J200`` / ``J20.0`` -> ``ICD10:J20.0``; ranges (``J20-J22``) and chapters are kept as they are."""
    return "ICD10:" + dot_icd(code)


def dot_icd(code: str) -> str:
    code = code.strip().upper()
    if "-" in code or "." in code or len(code) <= 3:
        return code
    return code[:3] + "." + code[3:]


def is_icd_code(concept_id_or_code: str) -> bool:
    """True for ICD categories/subcategories (``J20``, ``J20.0``), False for ranges/chapters."""
    code = concept_id_or_code.split(":", 1)[-1]
    return "-" not in code and len(code.replace(".", "")) >= 3 and code[0].isalpha() and code[1:3].isalnum()


def icd_category(concept_id: str) -> str | None:
    """``ICD10:J20.01`` -> ``ICD10:J20`` (None for non-ICD ids and ranges)."""
    if not concept_id.startswith("ICD10:") or not is_icd_code(concept_id):
        return None
    return "ICD10:" + concept_id.split(":", 1)[1][:3]


def concepts_to_table(concepts: Iterable[Concept | dict]) -> ConceptTable:
    """Build a concept table; rows are validated, exact duplicates (same id/system/lang) are merged."""
    merged: dict[tuple[str, str, str], Concept] = {}
    for c in concepts:
        if isinstance(c, dict):
            c = Concept(**c)
        c.check()
        key = (c.concept_id, c.system, c.lang)
        if key in merged:
            old = merged[key]
            old.synonyms = old.synonyms + [c.name] + c.synonyms
            old.definition = old.definition or c.definition
            old.parents = old.parents + c.parents
            old.relations = old.relations + [r for r in c.relations if r not in old.relations]
            old.check()
        else:
            merged[key] = c
    columns: dict[str, list] = {k: [] for k in COLUMNS}
    for c in merged.values():
        for k in COLUMNS:
            columns[k].append(getattr(c, k))
    return datasets.Dataset.from_dict(columns, features=FEATURES)


def concat_tables(tables: Iterable[ConceptTable]) -> ConceptTable:
    tables = [t for t in tables if len(t)]
    if not tables:
        return concepts_to_table([])
    return datasets.concatenate_datasets([t if t.features == FEATURES else t.cast(FEATURES) for t in tables])


def column(table: datasets.Dataset, name: str) -> list:
    """A column as a plain Python list (``ds[name]`` is a lazy Column in datasets 5; indexing it per row is slow)."""
    return table.select_columns([name]).to_dict()[name]


def iter_concepts(table: ConceptTable) -> Iterator[Concept]:
    cols = table.select_columns(COLUMNS).to_dict()
    for i in range(len(table)):
        yield Concept(**{k: cols[k][i] for k in COLUMNS})


def table_stats(table: ConceptTable) -> dict[str, Any]:
    cols = table.select_columns(["concept_id", "system", "lang", "definition", "synonyms", "parents"]).to_dict()
    by_system_lang = collections.Counter(f"{s}/{l}" for s, l in zip(cols["system"], cols["lang"]))
    ids_langs: dict[str, set] = collections.defaultdict(set)
    for cid, lang in zip(cols["concept_id"], cols["lang"]):
        ids_langs[cid].add(lang)
    return {
        "rows": len(table),
        "concepts": len(ids_langs),
        "by_system_lang": dict(sorted(by_system_lang.items())),
        "by_lang": dict(sorted(collections.Counter(cols["lang"]).items())),
        "multilingual_concepts": sum(1 for v in ids_langs.values() if len(v) > 1),
        "with_definition": sum(1 for d in cols["definition"] if d),
        "with_synonyms": sum(1 for s in cols["synonyms"] if s),
        "with_parents": sum(1 for p in cols["parents"] if p),
    }


def save_table(table: ConceptTable, folder: str | Path, extra_stats: dict | None = None) -> Path:
    """Write ``concepts.parquet`` + ``stats.json`` into ``folder`` (atomically, COMPLETE marker)."""
    from polyclinic.io import atomic_directory, write_json

    folder = Path(folder)
    with atomic_directory(folder) as tmp:
        table.to_parquet(str(tmp / TABLE_FILE))
        stats = table_stats(table)
        if extra_stats:
            stats.update(extra_stats)
        write_json(tmp / STATS_FILE, stats)
    return folder


def load_table(path: str | Path) -> ConceptTable:
    """Read a concept table folder (or a ``.parquet`` file) written by :func:`save_table`."""
    path = Path(path)
    file = path / TABLE_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"no concept table at {path} (expected {TABLE_FILE}; write one with `polyclinic concepts load`)")
    ds = datasets.Dataset.from_parquet(str(file), features=FEATURES)
    missing = [c for c in COLUMNS if c not in ds.column_names]
    if missing:
        raise UserError(f"{file}: missing concept-table columns {missing}")
    return ds


class ConceptIndex:
    """Fast lookups over a concept table (pure Python dicts; built once, O(rows))."""

    def __init__(self, table: ConceptTable):
        self.table = table
        self.rows: list[Concept] = list(iter_concepts(table))
        self.by_id: dict[str, list[int]] = collections.defaultdict(list)
        self.parents: dict[str, list[str]] = collections.defaultdict(list)
        self.children: dict[str, list[str]] = collections.defaultdict(list)
        for i, c in enumerate(self.rows):
            self.by_id[c.concept_id].append(i)
        for cid, idxs in self.by_id.items():
            ps: list[str] = []
            for i in idxs:
                ps.extend(self.rows[i].parents)
            ps = list(dict.fromkeys(ps))
            self.parents[cid] = ps
            for p in ps:
                self.children[p].append(cid)
        self.ids: list[str] = list(self.by_id)

    def __contains__(self, cid: str) -> bool:
        return cid in self.by_id

    def rows_of(self, cid: str, lang: str | None = None) -> list[Concept]:
        return [self.rows[i] for i in self.by_id.get(cid, []) if lang is None or self.rows[i].lang == lang]

    def langs(self, cid: str) -> list[str]:
        return list(dict.fromkeys(self.rows[i].lang for i in self.by_id.get(cid, [])))

    def name(self, cid: str, lang: str) -> str | None:
        """The preferred name of ``cid`` in ``lang`` (first row in table order), or None."""
        for i in self.by_id.get(cid, []):
            if self.rows[i].lang == lang:
                return self.rows[i].name
        return None

    def siblings(self, cid: str) -> list[str]:
        """Concepts sharing at least one parent with ``cid`` (excluding itself), in table order."""
        out: dict[str, None] = {}
        for p in self.parents.get(cid, []):
            for s in self.children.get(p, []):
                if s != cid:
                    out[s] = None
        return list(out)


def rows_to_jsonl(table: ConceptTable) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table)
