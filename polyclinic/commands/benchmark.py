"""``polyclinic benchmark``: build benchmark datasets as Hub dataset folders (BEIR/MTEB layout, pairs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTION = """\
Write benchmark datasets as Hub-ready folders (Parquet shards, one config per table and language), ready
for `polyclinic card --kind benchmark` and `polyclinic push`:

  build   run a builder from polyclinic.concepts.benchmarks (e.g. coding_search_benchmark) on concept
          sources (packaged icd10cm, icd10who, cie10, hpo or files) -> queries-<lang>, corpus-<lang>, qrels
  pack    pack an existing BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) the same way
  pairs   pack concept pairs (JSONL/CSV/Parquet rows) into one config per language
"""

EPILOG = """\
examples:
  polyclinic benchmark build --builder coding_search_benchmark --sources icd10cm cie10 \\
      --query-lang es --corpus-lang en --output data/benchmarks/coding-search-es-en
  polyclinic benchmark build --builder coding_search_benchmark --sources icd10cm cie10 \\
      --query-lang es --corpus-lang en --kwarg max_queries=500 --output data/benchmarks/cs-es-en-500
  polyclinic benchmark pack --beir path/to/beir-folder --query-lang es --corpus-lang en --output data/benchmarks/x
  polyclinic benchmark pairs --input data/pairs/train.jsonl --output data/benchmarks/pairs
"""


def _kv(items: list[str]) -> dict:
    import yaml

    from polyclinic.errors import UserError

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--kwarg {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _read_rows(path: Path) -> list[dict]:
    from polyclinic.errors import UserError

    if not path.exists():
        raise UserError(f"file not found: {path}")
    suffix = path.suffix.lower()
    from polyclinic.textfiles import iter_lines  # BOM, UTF-16/32, .gz/.zst; bad bytes: UserError with file:line

    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for lineno, line in iter_lines(path, strict=True):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise UserError(f"{path}:{lineno}: not valid JSON ({exc})") from None
        return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(str(path)).to_pylist()
    if suffix in (".csv", ".tsv"):
        import csv

        lines = (line for _, line in iter_lines(path, strict=True, newline=""))
        return list(csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ","))
    raise UserError(f"{path}: expected .jsonl, .parquet, .csv or .tsv")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="run a benchmark builder on concept sources", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--builder", default="coding_search_benchmark", help="function in polyclinic.concepts.benchmarks")
    b.add_argument("--sources", nargs="+", default=[], help="concept sources: icd10cm icd10who cie10 hpo or files")
    b.add_argument("--table", default=None, help="or a saved concept table folder/file")
    b.add_argument("--query-lang", required=True)
    b.add_argument("--corpus-lang", required=True)
    b.add_argument("--kwarg", action="append", default=[], metavar="KEY=VALUE", help="extra builder argument (YAML value)")
    b.add_argument("--output", type=Path, required=True)
    k = sub.add_parser("pack", help="pack a BEIR folder into Hub configs")
    k.add_argument("--beir", type=Path, required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    k.add_argument("--split", default="test")
    k.add_argument("--query-lang", required=True)
    k.add_argument("--corpus-lang", required=True)
    k.add_argument("--output", type=Path, required=True)
    r = sub.add_parser("pairs", help="pack concept pairs, one config per language")
    r.add_argument("--input", type=Path, required=True, help=".jsonl/.parquet/.csv/.tsv rows")
    r.add_argument("--split-column", default=None, help="column naming each row's split (default: all in --split)")
    r.add_argument("--split", default="train")
    r.add_argument("--output", type=Path, required=True)
    return p


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)

    from polyclinic.hub import benchmark_datasets as bd

    if args.action == "build":
        from polyclinic.hub.release import BenchmarkBuild

        kwargs = {"query_lang": args.query_lang, "corpus_lang": args.corpus_lang, **_kv(args.kwarg)}
        build = BenchmarkBuild(builder=args.builder, sources=args.sources, source=args.table, kwargs=kwargs)
        out = bd.build_from_spec(build, args.output)
    elif args.action == "pack":
        qrels = _read_rows(args.beir / "qrels" / f"{args.split}.tsv")
        out = bd.write_retrieval_benchmark(args.output, queries=_read_rows(args.beir / "queries.jsonl"),
                                           corpus=_read_rows(args.beir / "corpus.jsonl"), qrels=qrels,
                                           query_lang=args.query_lang, corpus_lang=args.corpus_lang, split=args.split,
                                           builder="beir-folder")
    else:
        out = bd.write_pairs_dataset(args.output, _read_rows(args.input), split_column=args.split_column, split=args.split)
    info = json.loads((out / "benchmark.json").read_text())
    print(f"wrote {out}: configs {json.dumps(info.get('configs'), ensure_ascii=False)}")
    return 0
