"""Before/after evaluation of encoders: retrieval on held-out pairs and cross-lingual coding search.

An :class:`IRTask` is (queries, corpus, relevant); it is built here from held-out pairs (anchor ->
its positives) and, for coding search, from ``polyclinic.concepts.benchmarks`` (queries in one
language against code descriptions in another, on codes held out from training). Scores are computed
by ``polyclinic.evaluation.retrieval.evaluate_retrieval`` (cosine; recall/accuracy@k, MRR@10, NDCG@10).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from polyclinic.logging_utils import get_logger

log = get_logger("encoders.evaluation")


@dataclasses.dataclass
class IRTask:
    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    info: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)


def pairs_task(pairs, name: str = "dev_pairs", max_queries: int | None = 1000, seed: int = 0) -> IRTask:
    """Anchors as queries, positives of the split as the corpus; relevant = the anchor's positives.

    With more than ``max_queries`` anchors, a seeded sample of them is kept and the corpus becomes their
    positives plus other positives of the split (distractors) up to ``3 * max_queries`` documents.
    """
    import random

    corpus: dict[str, str] = {}
    by_text: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    queries: dict[str, str] = {}
    q_by_text: dict[str, str] = {}
    for a, p in zip(pairs["anchor"], pairs["positive"]):
        cid = by_text.get(p)
        if cid is None:
            cid = by_text[p] = f"d{len(by_text)}"
            corpus[cid] = p
        qid = q_by_text.get(a)
        if qid is None:
            qid = q_by_text[a] = f"q{len(q_by_text)}"
            queries[qid] = a
        relevant.setdefault(qid, set()).add(cid)
    rng = random.Random(seed)
    if max_queries is not None and len(queries) > max_queries:
        keep = sorted(rng.sample(sorted(queries), max_queries))
        queries = {q: queries[q] for q in keep}
        relevant = {q: relevant[q] for q in keep}
        # corpus: the sampled queries' positives + other positives of the split, up to 3x the queries
        needed = set().union(*relevant.values())
        others = sorted(set(corpus) - needed)
        extra = rng.sample(others, min(len(others), max(0, 3 * max_queries - len(needed))))
        corpus = {d: corpus[d] for d in sorted(needed | set(extra))}
    return IRTask(name, queries, corpus, relevant, {"num_queries": len(queries), "num_corpus": len(corpus)})


def coding_search_task(table, query_lang: str, corpus_lang: str, codes=None, max_queries: int | None = 1000, seed: int = 0,
                       corpus_scope: str = "codes") -> IRTask:
    """Cross-lingual coding search from ``polyclinic.concepts.benchmarks.coding_search_benchmark``."""
    from polyclinic.concepts.benchmarks import coding_search_benchmark

    bench = coding_search_benchmark(table, query_lang=query_lang, corpus_lang=corpus_lang, codes=codes,
                                    corpus_scope=corpus_scope, max_queries=max_queries, seed=seed)
    queries, corpus, relevant = _unpack_benchmark(bench)
    task = IRTask(f"coding_search_{query_lang}_{corpus_lang}", queries, corpus, relevant)
    task.info = {"num_queries": len(task.queries), "num_corpus": len(task.corpus), "query_lang": query_lang,
                 "corpus_lang": corpus_lang, "corpus_scope": corpus_scope, "held_out_codes_only": codes is not None}
    return task


def _unpack_benchmark(bench) -> tuple[dict, dict, dict]:
    """A ``polyclinic.concepts.benchmarks.BeirDataset`` -> (queries, corpus, relevant) id -> text maps."""
    queries = {str(q["_id"]): q["text"] for q in bench.queries}
    corpus = {str(d["_id"]): (f"{d['title']} {d['text']}".strip() if d.get("title") else d["text"]) for d in bench.corpus}
    relevant = {q: set(docs) for q, docs in bench.relevant().items()}
    return queries, corpus, relevant


def beir_task(bench, name: str | None = None) -> IRTask:
    """Any BEIR-layout dataset (``polyclinic.concepts.benchmarks.load_beir``) as an :class:`IRTask`."""
    queries, corpus, relevant = _unpack_benchmark(bench)
    return IRTask(name or bench.name, queries, corpus, relevant, {"num_queries": len(queries), "num_corpus": len(corpus), **bench.info})


def evaluate_ir(model, task: IRTask, ks: Sequence[int] = (1, 5, 10), batch_size: int = 128) -> dict[str, float]:
    """recall@k, accuracy@k, MRR@max(k), NDCG@max(k) of ``model`` on ``task`` (cosine similarity), computed by
    :func:`polyclinic.evaluation.retrieval.evaluate_retrieval` so every polyclinic number comes from one code path."""
    from polyclinic.evaluation.retrieval import evaluate_retrieval

    data = {
        "name": task.name,
        "queries": [{"_id": q, "text": t} for q, t in task.queries.items()],
        "corpus": [{"_id": d, "title": "", "text": t} for d, t in task.corpus.items()],
        "qrels": [{"query-id": q, "corpus-id": d, "score": 1} for q, docs in task.relevant.items() for d in sorted(docs)],
    }
    result = evaluate_retrieval(model, data, ks=sorted(set(int(k) for k in ks)), batch_size=batch_size, split="dev")
    return {name: round(float(value), 4) for name, value in result.metrics.items()}


def evaluate_tasks(model, tasks: Sequence[IRTask], ks: Sequence[int] = (1, 5, 10), batch_size: int = 128) -> dict[str, dict[str, float]]:
    results = {}
    for task in tasks:
        if not task.queries:
            continue
        results[task.name] = evaluate_ir(model, task, ks, batch_size)
        log.info("  %-28s %s", task.name, "  ".join(f"{k}={v:.3f}" for k, v in results[task.name].items() if k in ("recall@1", "recall@10", "mrr@10")))
    return results


def eval_json(task: IRTask, metrics: dict, model_path: str, split: str = "dev", language: str | None = None) -> dict:
    """An ``eval/<task>.json`` record in the layout cards read (CONTRIBUTING: Eval JSON)."""
    return {
        "task": "retrieval",
        "dataset": task.name,
        "split": split,
        "language": language or task.info.get("query_lang"),
        "metrics": metrics,
        "model": model_path,
        "num_examples": len(task.queries),
    }
