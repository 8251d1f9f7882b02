"""Turn benchmark builders' output into Hub dataset folders (Parquet shards + card-ready ``benchmark.json``).

Retrieval benchmarks use the BEIR / MTEB layout, one config per table and language::

    <out>/queries-es/test-00000-of-00001.parquet     _id, text
    <out>/corpus-en/test-00000-of-00001.parquet      _id, title, text
    <out>/qrels/test-00000-of-00001.parquet          query-id, corpus-id, score
    <out>/benchmark.json                             counts, languages, builder, description

so that ``load_dataset(repo, "queries-es", split="test")`` works after a push. Concept-relatedness pairs get one
config per language (or ``default``) with the pair columns kept as they are.

Inputs are deliberately loose (plain lists of dicts, ``{id: text}`` mappings, ``(qid, cid, score)`` tuples,
``datasets.Dataset`` objects, or an object/dict with ``queries``/``corpus``/``qrels``), so any builder in
``polyclinic.concepts.benchmarks`` can feed them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Iterable, Mapping

from polyclinic.errors import UserError
from polyclinic.io import atomic_directory, write_json
from polyclinic.logging_utils import get_logger

log = get_logger("hub.benchmark")

QUERY_ID_KEYS = ("_id", "id", "query_id", "qid", "query-id")
CORPUS_ID_KEYS = ("_id", "id", "corpus_id", "doc_id", "cid", "corpus-id", "code")


def _rows(obj: Any) -> list[dict]:
    """Plain list of dict rows from a Dataset, list of dicts, or ``{id: text | {...}}`` mapping."""
    if obj is None:
        return []
    if hasattr(obj, "to_list") and hasattr(obj, "column_names"):  # datasets.Dataset
        return list(obj.to_list())
    if hasattr(obj, "to_pylist"):  # pyarrow.Table
        return list(obj.to_pylist())
    if isinstance(obj, Mapping):
        out = []
        for k, v in obj.items():
            out.append({"_id": str(k), **(v if isinstance(v, Mapping) else {"text": v})})
        return out
    return [dict(r) for r in obj]


def _pick(row: Mapping, keys: Iterable[str], what: str, index: int) -> Any:
    for k in keys:
        if k in row and row[k] not in (None, ""):
            return row[k]
    raise UserError(f"{what} row {index} has none of the columns {list(keys)}: {dict(row)!r}"[:400])


def normalise_queries(queries: Any) -> list[dict]:
    out = []
    for i, r in enumerate(_rows(queries)):
        out.append({"_id": str(_pick(r, QUERY_ID_KEYS, "queries", i)), "text": str(_pick(r, ("text", "query", "question"), "queries", i))})
    return out


def normalise_corpus(corpus: Any) -> list[dict]:
    out = []
    for i, r in enumerate(_rows(corpus)):
        out.append({
            "_id": str(_pick(r, CORPUS_ID_KEYS, "corpus", i)),
            "title": str(r.get("title") or ""),
            "text": str(_pick(r, ("text", "description", "name", "title"), "corpus", i)),
        })
    return out


def normalise_qrels(qrels: Any) -> list[dict]:
    out = []
    if isinstance(qrels, Mapping) and all(isinstance(v, Mapping) for v in qrels.values()):
        for qid, docs in qrels.items():
            for cid, score in docs.items():
                out.append({"query-id": str(qid), "corpus-id": str(cid), "score": int(score)})
        return out
    for i, r in enumerate(qrels if not hasattr(qrels, "to_list") else qrels.to_list()):
        if isinstance(r, (tuple, list)):
            qid, cid, *rest = r
            out.append({"query-id": str(qid), "corpus-id": str(cid), "score": int(rest[0]) if rest else 1})
        else:
            out.append({
                "query-id": str(_pick(r, ("query-id", "query_id", "qid"), "qrels", i)),
                "corpus-id": str(_pick(r, ("corpus-id", "corpus_id", "doc_id", "cid", "code"), "qrels", i)),
                "score": int(r.get("score", 1)),
            })
    return out


def _write_parquet(rows: list[dict], path: Path, schema=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema is not None else pa.table({})
    pq.write_table(table, str(path))


def _schemas():
    import pyarrow as pa

    return {
        "queries": pa.schema([("_id", pa.string()), ("text", pa.string())]),
        "corpus": pa.schema([("_id", pa.string()), ("title", pa.string()), ("text", pa.string())]),
        "qrels": pa.schema([("query-id", pa.string()), ("corpus-id", pa.string()), ("score", pa.int64())]),
    }


def write_retrieval_benchmark(
    output: str | Path,
    *,
    queries: Any,
    corpus: Any,
    qrels: Any,
    query_lang: str,
    corpus_lang: str,
    split: str = "test",
    name: str | None = None,
    description: str | None = None,
    builder: str | None = None,
    extra_info: dict | None = None,
) -> Path:
    """Write a BEIR/MTEB-style retrieval benchmark folder; checks that qrels point at existing ids."""
    q, c, r = normalise_queries(queries), normalise_corpus(corpus), normalise_qrels(qrels)
    if not q or not c or not r:
        raise UserError(f"retrieval benchmark needs queries, corpus and qrels (got {len(q)}, {len(c)}, {len(r)} rows)")
    qids, cids = {x["_id"] for x in q}, {x["_id"] for x in c}
    if len(qids) != len(q) or len(cids) != len(c):
        raise UserError("retrieval benchmark: duplicate query or corpus ids")
    bad = [x for x in r if x["query-id"] not in qids or x["corpus-id"] not in cids]
    if bad:
        raise UserError(f"retrieval benchmark: {len(bad)} qrels point at unknown ids, e.g. {bad[0]}")
    schemas = _schemas()
    qrels_cfg = "qrels"
    output = Path(output)
    with atomic_directory(output) as tmp:
        shard = f"{split}-00000-of-00001.parquet"
        _write_parquet(q, tmp / f"queries-{query_lang}" / shard, schemas["queries"])
        _write_parquet(c, tmp / f"corpus-{corpus_lang}" / shard, schemas["corpus"])
        _write_parquet(r, tmp / qrels_cfg / shard, schemas["qrels"])
        write_json(tmp / "benchmark.json", {
            "type": "retrieval",
            "layout": "beir",
            "pretty_name": name,
            "description": description or "",
            "builder": builder,
            "languages": sorted({query_lang, corpus_lang}),
            "query_lang": query_lang,
            "corpus_lang": corpus_lang,
            "split": split,
            "configs": {f"queries-{query_lang}": len(q), f"corpus-{corpus_lang}": len(c), qrels_cfg: len(r)},
            "num_queries": len(q),
            "num_corpus": len(c),
            "num_qrels": len(r),
            "relevant_per_query": round(len(r) / len(q), 3),
            **(extra_info or {}),
        })
    log.info("retrieval benchmark: %d queries (%s), %d documents (%s), %d qrels -> %s", len(q), query_lang, len(c), corpus_lang, len(r), output)
    return output


def write_pairs_dataset(
    output: str | Path,
    pairs: Any,
    *,
    split_column: str | None = None,
    split: str = "train",
    language_column: str | None = None,
    name: str | None = None,
    description: str | None = None,
    builder: str | None = None,
    extra_info: dict | None = None,
) -> Path:
    """Concept-relatedness / training pairs: one config per language (``lang``/``language`` column) or ``default``.

    ``split_column`` (e.g. ``"split"``) spreads rows over splits; otherwise every row goes to ``split``.
    """
    import pyarrow as pa

    rows = _rows(pairs)
    if not rows:
        raise UserError("pairs dataset: no rows")
    lang_col = language_column or next((c for c in ("lang", "language", "pair_lang") if c in rows[0]), None)
    groups: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        cfg = str(r.get(lang_col)) if lang_col and r.get(lang_col) else "default"
        sp = str(r.get(split_column)) if split_column and r.get(split_column) else split
        row = {k: v for k, v in r.items() if k != split_column}
        groups.setdefault(cfg, {}).setdefault(sp, []).append(row)
    output = Path(output)
    with atomic_directory(output) as tmp:
        schema = pa.Table.from_pylist(rows[: min(len(rows), 1000)]).drop_columns([split_column] if split_column and split_column in rows[0] else []).schema
        for cfg, splits in groups.items():
            for sp, rs in splits.items():
                _write_parquet(rs, tmp / cfg / f"{sp}-00000-of-00001.parquet", schema)
        write_json(tmp / "benchmark.json", {
            "type": "pairs",
            "pretty_name": name,
            "description": description or "",
            "builder": builder,
            "languages": sorted(g for g in groups if g != "default"),
            "configs": {cfg: {sp: len(rs) for sp, rs in splits.items()} for cfg, splits in groups.items()},
            "num_pairs": len(rows),
            "columns": list(rows[0]),
            **(extra_info or {}),
        })
    return output


def _field(result: Any, name: str) -> Any:
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)


def write_benchmark(output: str | Path, result: Any, **kwargs: Any) -> Path:
    """Write whatever a builder returned: retrieval (queries/corpus/qrels) or pairs (a list/Dataset of rows)."""
    if _field(result, "queries") is not None and _field(result, "qrels") is not None:
        ql = kwargs.pop("query_lang", None) or _field(result, "query_lang")
        cl = kwargs.pop("corpus_lang", None) or _field(result, "corpus_lang")
        if not ql or not cl:
            raise UserError("retrieval benchmark: query_lang and corpus_lang are needed (builder result or build.kwargs)")
        info = _field(result, "info") or _field(result, "stats") or {}
        return write_retrieval_benchmark(output, queries=_field(result, "queries"), corpus=_field(result, "corpus"),
                                         qrels=_field(result, "qrels"), query_lang=ql, corpus_lang=cl,
                                         extra_info=dict(info) if isinstance(info, Mapping) else None, **kwargs)
    pairs = _field(result, "pairs") if isinstance(result, Mapping) or hasattr(result, "pairs") else result
    return write_pairs_dataset(output, pairs, **kwargs)


def build_from_spec(build, output: str | Path, root: str | Path = ".") -> Path:
    """Run ``polyclinic.concepts.benchmarks.<build.builder>`` and write its result to ``output``.

    ``build.sources`` (packaged names / files, see ``polyclinic.concepts.loaders.load_sources``) or
    ``build.source`` (a saved concept table, relative to ``root``, read with ``polyclinic.concepts.table.load_table``)
    is loaded and passed first; ``build.kwargs`` go to the builder.
    """
    try:
        module = importlib.import_module("polyclinic.concepts.benchmarks")
    except ModuleNotFoundError:
        raise UserError("benchmark builders (polyclinic.concepts.benchmarks) are not available in this install; "
                        "build the benchmark folder first with `polyclinic benchmark build ...`") from None
    fn = getattr(module, build.builder, None)
    if fn is None:
        names = [n for n in dir(module) if n.endswith("_benchmark")]
        raise UserError(f"unknown benchmark builder {build.builder!r}; available: {', '.join(names) or 'none'}")
    args = []
    if build.sources:
        from polyclinic.concepts.loaders import load_sources

        args.append(load_sources(build.sources)[0])
    elif build.source:
        from polyclinic.concepts.table import load_table

        src = Path(build.source)
        args.append(load_table(src if src.is_absolute() else Path(root) / src))
    kwargs = dict(build.kwargs)
    result = fn(*args, **kwargs)
    write_kwargs = {k: kwargs[k] for k in ("query_lang", "corpus_lang") if k in kwargs}
    return write_benchmark(output, result, builder=build.builder, **write_kwargs)
