"""``polyclinic concepts``: concept tables, training pairs, LLM definitions, coding-search benchmarks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTION = """\
  load        load terminologies/ontologies into one concept table (concepts.parquet + stats.json)
  pairs       build train/dev pairs (split by concept) from a concept table
  define      LLM definitions for concepts without one (dry run unless an endpoint/model is given)
  benchmark   BEIR coding-search benchmark (e.g. es CIE-10 queries vs en ICD-10-CM) on held-out codes
  relatedness HPO term pairs scored with information-content similarity (JSONL)
"""

EPILOG = """\
examples:
  polyclinic concepts load icd10cm cie10 hpo --output data/concepts/icd
  polyclinic concepts load --config recipes/concepts/demo.yaml --output data/concepts/demo
  polyclinic concepts load my.obo terms.csv --system MYO --lang en --output data/concepts/mine
  polyclinic concepts pairs --concepts data/concepts/demo --output data/pairs/demo --dev-fraction 0.2
  polyclinic concepts define --concepts data/concepts/demo --output data/concepts/demo-defs \\
      --llm-endpoint http://127.0.0.1:8000/v1 --llm-model my-model --limit 100
  polyclinic concepts benchmark --concepts data/concepts/demo --pairs data/pairs/demo --output data/benchmarks/cs-es-en
"""


def _config(args):
    from polyclinic.concepts.config import ConceptsConfig
    from polyclinic.config import load_config

    return load_config(ConceptsConfig, getattr(args, "config", None), getattr(args, "overrides", []) or [])


def _llm_config(cfg, args):
    llm = cfg.llm.model_copy()
    if getattr(args, "llm_endpoint", None):
        llm.base_url = args.llm_endpoint
    if getattr(args, "llm_model", None):
        llm.model = args.llm_model
    if getattr(args, "local_model", None):
        llm.local_model = args.local_model
    if getattr(args, "cache_dir", None):
        llm.cache_dir = args.cache_dir
    return llm


def _cmd_load(args) -> int:
    from polyclinic.concepts.loaders import load_source
    from polyclinic.concepts.table import concat_tables, save_table, table_stats
    from polyclinic.errors import UserError
    from polyclinic.manifest import write_manifest

    cfg = _config(args)
    sources: list = list(args.sources) if args.sources else list(cfg.sources)
    if not sources:
        raise UserError("no sources: name packaged ones (icd10cm, icd10who, cie10, hpo) or files, or use --config")
    file_opts = {k: v for k, v in (("system", args.system), ("lang", args.lang)) if v}
    tables, reports = [], []
    for s in sources:
        opts: dict = {}
        if isinstance(s, str) and Path(s).suffix:
            opts = dict(file_opts)
        elif isinstance(s, str) and (args.max_code_length or args.prefix) and s.lower() in ("icd10cm", "icd10who", "cie10"):
            opts = {k: v for k, v in (("max_code_length", args.max_code_length), ("prefixes", args.prefix)) if v}
        t, r = load_source(s, **opts)
        tables.append(t)
        reports.append(r)
    table = concat_tables(tables)
    save_table(table, args.output, {"sources": [r.to_dict() for r in reports]})
    write_manifest(args.output, "concepts-load", cfg, inputs={str(s): s for s in sources if isinstance(s, str) and Path(s).exists()})
    st = table_stats(table)
    print(f"wrote {args.output}: {st['rows']} rows, {st['concepts']} concepts, {st['multilingual_concepts']} multilingual")
    for r in reports:
        print(f"  {r.source:<40} {r.rows:>8} rows  {r.malformed:>5} malformed")
        for p in r.problems[:5]:
            print(f"      {p}")
    return 0


def _cmd_pairs(args) -> int:
    from polyclinic.concepts.llm_definitions import DefinitionGenerator, define_table
    from polyclinic.concepts.pairs import build_pairs, save_pairs
    from polyclinic.concepts.table import load_table
    from polyclinic.manifest import write_manifest

    cfg = _config(args)
    pc = cfg.pairs
    updates = {k: v for k, v in (("dev_fraction", args.dev_fraction), ("seed", args.seed), ("group_by", args.group_by),
                                 ("split_prefixes", args.split_prefix), ("langs", args.langs)) if v is not None}
    if args.no_negatives:
        updates["hard_negatives"] = False
    pc = pc.model_validate({**pc.model_dump(), **updates})
    table = load_table(args.concepts)
    extra = {}
    llm = _llm_config(cfg, args)
    if llm.base_url or llm.local_model:
        table, gen = define_table(table, DefinitionGenerator(llm), limit=args.llm_limit)
        extra["llm_definitions"] = {"stats": gen.stats, "rejected": gen.rejected}
    result = build_pairs(table, pc)
    save_pairs(result, args.output, extra)
    write_manifest(args.output, "concepts-pairs", pc, inputs={"concepts": args.concepts})
    s = result.stats
    print(f"wrote {args.output}: {s.train_pairs} train / {s.dev_pairs} dev pairs "
          f"({s.train_concepts} / {s.dev_concepts} concepts, 0 shared)")
    for split in ("train", "dev"):
        print(f"  {split}: kinds {s.by_kind[split]}  langs {s.by_lang[split]}  with negative {s.with_negative[split]}")
    return 0


def _cmd_define(args) -> int:
    from polyclinic.concepts.llm_definitions import DefinitionGenerator, define_table
    from polyclinic.concepts.table import load_table, save_table

    cfg = _config(args)
    llm = _llm_config(cfg, args)
    table = load_table(args.concepts)
    gen = DefinitionGenerator(llm)
    if not gen.configured:
        from polyclinic.concepts.table import column

        missing = sum(1 for d in column(table, "definition") if not d)
        print(f"dry run: no --llm-endpoint/--llm-model or --local-model given; nothing sent. "
              f"{missing} of {len(table)} rows have no definition (limit {args.limit}).")
        return 0
    table, result = define_table(table, gen, limit=args.limit)
    out = args.output or args.concepts
    save_table(table, out, {"llm_definitions": {"stats": result.stats, "rejected": result.rejected,
                                                "model": gen.model_id}})
    print(f"wrote {out}: {result.stats}  rejected {result.rejected}")
    return 0


def _cmd_benchmark(args) -> int:
    from polyclinic.concepts.benchmarks import coding_search_benchmark
    from polyclinic.concepts.pairs import load_split, split_concepts
    from polyclinic.concepts.table import load_table

    cfg = _config(args)
    b = cfg.benchmark
    table = load_table(args.concepts)
    if args.pairs:
        codes = load_split(args.pairs)
        held = f"held-out concepts of {args.pairs}"
    elif args.all_codes:
        codes, held = None, "all codes"
    else:
        pc = cfg.pairs
        codes = split_concepts(table, pc.dev_fraction, pc.seed, pc.group_by, pc.split_prefixes).dev
        held = f"split_concepts(dev_fraction={pc.dev_fraction}, seed={pc.seed}, group_by={pc.group_by})"
    bench = coding_search_benchmark(
        table, args.query_lang or b.query_lang, args.corpus_lang or b.corpus_lang, codes=codes,
        corpus_scope=args.corpus_scope or b.corpus_scope, query_systems=b.query_systems, corpus_systems=b.corpus_systems,
        max_queries=args.max_queries or b.max_queries,
    )
    bench.info["codes"] = held
    bench.save(args.output)
    print(f"wrote {args.output}: {len(bench.queries)} queries, {len(bench.corpus)} corpus entries ({held})")
    return 0


def _cmd_relatedness(args) -> int:
    from polyclinic.concepts.benchmarks import hpo_relatedness_pairs

    ds = hpo_relatedness_pairs(args.n_pairs, args.seed, args.method)
    out = Path(args.output)
    from polyclinic.io import atomic_write_text

    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ds))
    print(f"wrote {out}: {len(ds)} HPO pairs ({args.method})")
    return 0


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--config", help="a concepts YAML (recipes/concepts/demo.yaml)")
        sp.add_argument("overrides", nargs="*", default=[], help="key.sub=value config overrides")

    def llm_args(sp):
        sp.add_argument("--llm-endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
        sp.add_argument("--llm-model", help="model name sent to the endpoint")
        sp.add_argument("--local-model", help="a local transformers causal-LM folder instead of an endpoint")
        sp.add_argument("--cache-dir", help="answer cache folder (default .cache/llm_definitions)")

    lo = sub.add_parser("load", help="load sources into a concept table")
    lo.add_argument("sources", nargs="*", help="icd10cm, icd10who, cie10, hpo, or .obo/.csv/.tsv/.jsonl files")
    lo.add_argument("--output", required=True)
    lo.add_argument("--system", help="system name for CSV/TSV/JSONL/OBO files without one")
    lo.add_argument("--lang", help="language for CSV/TSV/JSONL/OBO files without a lang column")
    lo.add_argument("--max-code-length", type=int, help="ICD sources: keep codes up to N characters (undotted)")
    lo.add_argument("--prefix", nargs="+", help="ICD sources: keep codes starting with these (e.g. J I10)")
    lo.add_argument("--config")
    lo.set_defaults(fn=_cmd_load, overrides=[])

    pa = sub.add_parser("pairs", help="build train/dev pairs")
    pa.add_argument("--concepts", required=True, help="concept table folder")
    pa.add_argument("--output", required=True)
    pa.add_argument("--dev-fraction", type=float)
    pa.add_argument("--seed", type=int)
    pa.add_argument("--group-by", choices=["concept", "category"])
    pa.add_argument("--split-prefix", nargs="+", help="only these concept-id prefixes can be held out (e.g. ICD10:)")
    pa.add_argument("--langs", nargs="+")
    pa.add_argument("--no-negatives", action="store_true", help="no hard negatives")
    pa.add_argument("--llm-limit", type=int, help="at most N LLM definitions")
    llm_args(pa)
    common(pa)
    pa.set_defaults(fn=_cmd_pairs)

    de = sub.add_parser("define", help="LLM definitions (dry run without an endpoint/model)")
    de.add_argument("--concepts", required=True)
    de.add_argument("--output", help="output concept table folder (default: update --concepts)")
    de.add_argument("--limit", type=int)
    llm_args(de)
    common(de)
    de.set_defaults(fn=_cmd_define)

    be = sub.add_parser("benchmark", help="BEIR coding-search benchmark on held-out codes")
    be.add_argument("--concepts", required=True)
    be.add_argument("--output", required=True)
    be.add_argument("--pairs", help="use the held-out concepts saved with these pairs (split.json)")
    be.add_argument("--all-codes", action="store_true", help="every code, no hold-out")
    be.add_argument("--query-lang")
    be.add_argument("--corpus-lang")
    be.add_argument("--corpus-scope", choices=["queries", "codes", "chapters", "all"])
    be.add_argument("--max-queries", type=int)
    common(be)
    be.set_defaults(fn=_cmd_benchmark)

    re_ = sub.add_parser("relatedness", help="HPO relatedness pairs (JSONL)")
    re_.add_argument("--output", required=True)
    re_.add_argument("--n-pairs", type=int, default=1000)
    re_.add_argument("--seed", type=int, default=0)
    re_.add_argument("--method", default="lin")
    re_.set_defaults(fn=_cmd_relatedness)
    return p


def main(argv: list[str], prog: str = "polyclinic concepts") -> int:
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(build_parser(prog), argv)
    return int(args.fn(args) or 0)
