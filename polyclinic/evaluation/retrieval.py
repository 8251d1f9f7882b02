"""Retrieval evaluation: encode queries and corpus with a SentenceTransformer, cosine top-k, ranking metrics
overall and per query language (cross-language when queries and corpus differ in language).

Accepts BEIR-layout data: a folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), a dict of
lists / ``datasets.Dataset`` or a :class:`polyclinic.concepts.benchmarks.BeirDataset`. Only the corpus
``text`` is encoded unless ``use_title=True``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyclinic.concepts.benchmarks import BeirDataset, load_beir
from polyclinic.evaluation.metrics import ranking_metrics
from polyclinic.logging_utils import get_logger

log = get_logger("evaluation.retrieval")


def load_model(model: Any, device: str | None = None):
    """A SentenceTransformer instance, or a path / Hub id to load one from."""
    if isinstance(model, (str, Path)):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(model), device=device)
    return model


def encode(model, texts: Sequence[str], batch_size: int = 64, prompt: str | None = None) -> np.ndarray:
    """L2-normalised float32 embeddings (progress bar only on a TTY)."""
    kwargs = {"prompt": prompt} if prompt else {}
    emb = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=sys.stderr.isatty() and len(texts) > 1000, **kwargs)
    return np.asarray(emb, dtype=np.float32)


def top_k(query_emb: np.ndarray, corpus_emb: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices of the ``k`` most similar corpus rows per query (cosine on normalised vectors), best first.
    Ties are broken by corpus order (stable)."""
    k = min(k, len(corpus_emb))
    out = np.empty((len(query_emb), k), dtype=np.int64)
    for s in range(0, len(query_emb), chunk):
        scores = query_emb[s:s + chunk] @ corpus_emb.T
        part = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (len(scores), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        # sort by score desc, then by corpus index asc
        order = np.lexsort((part, -part_scores), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


@dataclasses.dataclass
class RetrievalResult:
    metrics: dict[str, float]
    num_queries: int
    by_language: dict[str, dict[str, Any]]  # lang -> {"metrics": ..., "num_queries": n}
    language: str
    dataset: str
    split: str
    ranked: dict[str, list[str]] | None = None


def evaluate_retrieval(model, data, ks: Sequence[int] = (1, 5, 10), batch_size: int = 64, split: str = "test",
                       use_title: bool = False, query_prompt: str | None = None, corpus_prompt: str | None = None,
                       keep_ranked: bool = False) -> RetrievalResult:
    bench: BeirDataset = load_beir(data, split=split)
    model = load_model(model)
    relevant = bench.relevant()
    queries = [q for q in bench.queries if str(q["_id"]) in relevant]
    if not queries:
        raise ValueError("no query has a relevant document in the qrels")
    corpus_ids = [str(d["_id"]) for d in bench.corpus]
    corpus_texts = [((d.get("title") or "") + " " + d["text"]).strip() if use_title else d["text"] for d in bench.corpus]
    log.info("retrieval: encoding %d queries and %d corpus entries", len(queries), len(corpus_texts))
    q_emb = encode(model, [q["text"] for q in queries], batch_size, query_prompt)
    c_emb = encode(model, corpus_texts, batch_size, corpus_prompt)
    kmax = max(ks)
    idx = top_k(q_emb, c_emb, kmax)
    ranked = [[corpus_ids[j] for j in row] for row in idx]
    rels = [relevant[str(q["_id"])] for q in queries]
    metrics = ranking_metrics(ranked, rels, ks)
    langs = [q.get("lang") or "" for q in queries]
    corpus_lang = bench.info.get("corpus_lang")
    by_language: dict[str, dict[str, Any]] = {}
    distinct = sorted(set(langs) - {""})
    if len(distinct) > 1:
        for lang in distinct:
            sel = [i for i, l in enumerate(langs) if l == lang]
            by_language[lang if not corpus_lang else f"{lang}-{corpus_lang}"] = {
                "metrics": ranking_metrics([ranked[i] for i in sel], [rels[i] for i in sel], ks), "num_queries": len(sel)}
    if distinct and corpus_lang:
        language = ",".join(f"{l}-{corpus_lang}" if l != corpus_lang else l for l in distinct)
    else:
        language = ",".join(distinct) or "unknown"
    return RetrievalResult(metrics, len(queries), by_language, language, bench.name, bench.split,
                           {str(q["_id"]): r for q, r in zip(queries, ranked)} if keep_ranked else None)


def retrieval_records(result: RetrievalResult, model_path: str) -> tuple[dict, dict[str, dict]]:
    """Eval-JSON records (main + per language) for :func:`polyclinic.evaluation.report.write_eval`."""
    from polyclinic.evaluation.report import eval_record

    main = eval_record("retrieval", result.dataset, result.split, result.language, result.metrics, model_path,
                       result.num_queries)
    per = {lang: eval_record("retrieval", result.dataset, result.split, lang, v["metrics"], model_path, v["num_queries"])
           for lang, v in result.by_language.items()}
    return main, per
