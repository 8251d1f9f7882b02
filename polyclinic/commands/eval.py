"""``polyclinic eval``: offline evaluation; every subcommand writes eval JSON and prints a table."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
  retrieval        BEIR-layout retrieval (recall@k, accuracy@k, MRR@10, NDCG@10), per query language
  sts              Spearman/Pearson of cosine vs gold scores for a file of scored pairs (TSV/CSV/JSONL)
  relatedness      Spearman of cosine vs ontology similarity (HPO information-content pairs by default)
  diagnostics      alignment / uniformity (Wang & Isola) on pairs + a 2-D PCA plot (PNG)
  span-corruption  held-out span-corruption loss of a seq2seq model on a corpus folder

Eval JSON goes to --output (default <model>/../eval/<task>.json), per-language records next to it as
<task>.<lang>.json; eval/SUMMARY.md is refreshed after each run.
"""

EPILOG = """\
examples:
  polyclinic eval retrieval --model runs/encoder-demo/final --data data/benchmarks/coding-search-es-en
  polyclinic eval sts --model runs/encoder-demo/final --data medsts.tsv
  polyclinic eval relatedness --model runs/encoder-demo/final --n-pairs 1000
  polyclinic eval diagnostics --model runs/encoder-demo/final --pairs data/pairs/demo --color-by lang
  polyclinic eval span-corruption --model runs/mt5-demo/final --corpus data/corpus/demo --max-batches 20
"""


def _finish(args, task: str, record: dict, by_language: dict | None = None) -> int:
    from polyclinic.evaluation.report import default_output, format_table, write_eval, write_summary

    out = Path(args.output) if args.output else default_output(args.model, task)
    write_eval(out, record, by_language)
    write_summary(out.parent)
    print(format_table([record, *(by_language or {}).values()]))
    print(f"\nwrote {out}")
    return 0


def _cmd_retrieval(args) -> int:
    from polyclinic.evaluation.retrieval import evaluate_retrieval, retrieval_records

    res = evaluate_retrieval(args.model, args.data, ks=tuple(args.k), batch_size=args.batch_size, split=args.split,
                             use_title=args.use_title)
    if args.dataset_name:
        res.dataset = args.dataset_name
    main, per = retrieval_records(res, str(args.model))
    return _finish(args, "retrieval", main, per)


def _cmd_sts(args) -> int:
    from polyclinic.evaluation.report import eval_record
    from polyclinic.evaluation.sts import evaluate_sts

    metrics, n = evaluate_sts(args.model, args.data, args.batch_size)
    rec = eval_record("sts", args.dataset_name or Path(args.data).stem, args.split, args.language, metrics,
                      str(args.model), n)
    return _finish(args, "sts", rec)


def _cmd_relatedness(args) -> int:
    from polyclinic.evaluation.relatedness import evaluate_relatedness
    from polyclinic.evaluation.report import eval_record

    metrics, n, name = evaluate_relatedness(args.model, args.data, args.n_pairs, args.seed, args.method, args.batch_size)
    rec = eval_record("relatedness", args.dataset_name or name, args.split, args.language, metrics, str(args.model), n)
    return _finish(args, "relatedness", rec)


def _cmd_diagnostics(args) -> int:
    import datasets

    from polyclinic.errors import UserError
    from polyclinic.evaluation.diagnostics import embedding_diagnostics
    from polyclinic.evaluation.report import default_output, eval_record

    src = Path(args.pairs)
    file = src / f"{args.split}.parquet" if src.is_dir() else src
    if not file.is_file():
        raise UserError(f"no pairs at {file} (a pairs folder from `polyclinic concepts pairs` or a .parquet/.jsonl file)")
    ds = datasets.Dataset.from_parquet(str(file)) if file.suffix == ".parquet" else datasets.Dataset.from_json(str(file))
    if len(ds) > args.max_pairs:
        ds = ds.shuffle(seed=0).select(range(args.max_pairs))
    cols = ds.to_dict()
    labels = cols.get({"lang": "lang", "concept": "concept_id", "kind": "kind"}[args.color_by])
    out = Path(args.output) if args.output else default_output(args.model, "diagnostics")
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    res = embedding_diagnostics(args.model, cols["anchor"], cols["positive"], labels, plot, args.batch_size,
                                title=f"{Path(args.model).name}: {file.name} by {args.color_by}")
    langs = sorted(set(cols.get("lang") or [])) or ["unknown"]
    rec = eval_record("diagnostics", file.parent.name if src.is_dir() else file.stem, args.split, ",".join(langs),
                      {k: v for k, v in res.items() if k != "plot"}, str(args.model), len(ds), plot=res["plot"])
    return _finish(args, "diagnostics", rec)


def _cmd_span_corruption(args) -> int:
    from polyclinic.evaluation.report import eval_record, is_record
    from polyclinic.evaluation.span_corruption import evaluate_span_corruption  # lazy: another module's heavy deps

    res = evaluate_span_corruption(args.model, args.corpus, langs=args.langs, split=args.split,
                                   input_length=args.input_length, batch_size=args.batch_size,
                                   max_batches=args.max_batches, seed=args.seed)
    if not is_record(res):
        metrics = res.get("metrics", res) if isinstance(res, dict) else {"loss": float(res)}
        res = eval_record("span-corruption", Path(args.corpus).name, args.split, ",".join(args.langs or []) or "all",
                          {k: v for k, v in metrics.items() if isinstance(v, (int, float))}, str(args.model),
                          int(res.get("num_examples", 0)) if isinstance(res, dict) else 0)
    return _finish(args, "span-corruption", res)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, split="test"):
        sp.add_argument("--model", required=True, help="a sentence-transformers folder (or Hub id)")
        sp.add_argument("--output", help="eval JSON path (default <model>/../eval/<task>.json)")
        sp.add_argument("--batch-size", type=int, default=64)
        sp.add_argument("--split", default=split)
        sp.add_argument("--dataset-name", help="dataset name recorded in the eval JSON")

    r = sub.add_parser("retrieval", help="BEIR-layout retrieval")
    common(r)
    r.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or a "
                   "benchmark dataset (Hub repo id / pushed folder with queries-*, corpus-*, qrels configs)")
    r.add_argument("--k", type=int, nargs="+", default=[1, 5, 10])
    r.add_argument("--use-title", action="store_true", help="encode title + text for corpus entries")
    r.set_defaults(fn=_cmd_retrieval)

    s = sub.add_parser("sts", help="scored sentence pairs")
    common(s)
    s.add_argument("--data", required=True, help="TSV/CSV/JSONL with sentence1, sentence2, score")
    s.add_argument("--language", default="en")
    s.set_defaults(fn=_cmd_sts)

    rel = sub.add_parser("relatedness", help="ontology relatedness")
    common(rel)
    rel.add_argument("--data", help="scored pairs file (default: sample HPO pairs)")
    rel.add_argument("--n-pairs", type=int, default=1000)
    rel.add_argument("--seed", type=int, default=0)
    rel.add_argument("--method", default="lin", help="hpo3 similarity method (lin, resnik, jc, rel, ic, graphic)")
    rel.add_argument("--language", default="en")
    rel.set_defaults(fn=_cmd_relatedness)

    d = sub.add_parser("diagnostics", help="alignment / uniformity + PCA plot")
    common(d, split="dev")
    d.add_argument("--pairs", required=True, help="pairs folder (<split>.parquet) or a .parquet/.jsonl file")
    d.add_argument("--color-by", choices=["lang", "concept", "kind"], default="lang")
    d.add_argument("--max-pairs", type=int, default=1000)
    d.add_argument("--plot", help="PNG path (default: next to the JSON)")
    d.set_defaults(fn=_cmd_diagnostics)

    sc = sub.add_parser("span-corruption", help="span-corruption loss of a seq2seq model")
    sc.add_argument("--model", required=True)
    sc.add_argument("--corpus", required=True, help="corpus folder from `polyclinic corpus build`")
    sc.add_argument("--output")
    sc.add_argument("--langs", nargs="+")
    sc.add_argument("--split", default="validation")
    sc.add_argument("--input-length", type=int, default=512)
    sc.add_argument("--batch-size", type=int, default=8)
    sc.add_argument("--max-batches", type=int)
    sc.add_argument("--seed", type=int, default=0)
    sc.set_defaults(fn=_cmd_span_corruption)
    return p


def main(argv: list[str], prog: str = "polyclinic eval") -> int:
    args = build_parser(prog).parse_args(argv)
    return int(args.fn(args) or 0)
