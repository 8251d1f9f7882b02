"""`polyclinic corpus`: build a multilingual medical corpus, or print the statistics of a built one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polyclinic.errors import UserError

DESCRIPTION = """\
Build a multilingual medical corpus (a Hugging Face dataset folder, one config per language) or inspect one.

  build CONFIG.yaml [key=value ...]
      Read every source (local JSONL / text / Parquet files, Hub dataset ids, packaged terminologies),
      clean (Unicode NFC, whitespace, length filters), remove exact and near duplicates (MinHash LSH),
      verify languages (py3langid), split train/validation by a hash of each document id, and write
        <output_dir>/<lang>/train-0000K-of-0000N.parquet, <lang>/validation-00000-of-00001.parquet,
        README.md (dataset card), LICENSE.md, stats.json, manifest.json, metrics.json, config.yaml
      Input files may be gzip / zstd / bzip2 / xz compressed and UTF-8, UTF-16 or UTF-32 (BOM or not).
      Bad records are counted by reason (see stats.json); missing inputs stop the build before it starts.
      A requested language that keeps no document (or an empty build) is an error that says why, and
      nothing is written (allow_empty_languages=true: such a language only gets no dataset config).

  stats FOLDER [--json]
      Print the per-language / per-source statistics of a built corpus.
"""

EPILOG = """\
examples:
  polyclinic corpus build recipes/corpus/demo.yaml
  polyclinic corpus build recipes/corpus/demo.yaml output_dir=data/demo-b split.validation_fraction=0.1
  polyclinic corpus build my.yaml languages=[en,es] langid.on_language_mismatch=retag dedup.near.enabled=false
  polyclinic corpus stats data/demo-medical

then:  python -c "from datasets import load_dataset; print(load_dataset('data/demo-medical', 'es'))"

Overrides are key.sub=value (YAML values). An integer part indexes a list: `sources.0.max_docs=100`
changes the first source only; `sources=[...]` replaces the whole list.
"""


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="{build,stats}")
    b = sub.add_parser("build", help="build a corpus from a YAML config", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("config", help="corpus YAML (see recipes/corpus/demo.yaml)")
    b.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. output_dir=data/x split.validation_fraction=0.05")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser("stats", help="print the statistics of a built corpus")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true", help="print stats.json as is")
    return p


def _print_stats(folder: Path, as_json: bool) -> None:
    from polyclinic.io import is_complete, read_json

    path = folder / "stats.json"
    if not path.is_file():
        raise UserError(f"{folder} has no stats.json: not a corpus folder built by `polyclinic corpus build`")
    data = read_json(path)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not is_complete(folder):
        print(f"warning: {folder} has no COMPLETE marker (interrupted build?)")
    print(f"corpus {data.get('name')}: {data['read']:,} read, {data['kept']:,} kept, {data['rejected_total']:,} rejected")
    print(f"{'language':<10}{'train':>10}{'validation':>12}{'words':>14}{'characters':>16}{'rejected':>10}")
    for lang, d in data["languages"].items():
        sp = d["splits"]
        print(f"{lang:<10}{sp.get('train', {}).get('documents', 0):>10,}{sp.get('validation', {}).get('documents', 0):>12,}"
              f"{d['words']:>14,}{d['characters']:>16,}{sum(d['rejected'].values()):>10,}")
    print(f"\n{'source':<24}{'read':>10}{'kept':>10}{'words':>14}  rejected")
    for name, s in data["sources"].items():
        rej = ", ".join(f"{k} {v}" for k, v in s["rejected"].items()) or "-"
        print(f"{name:<24}{s['read']:>10,}{s['documents']:>10,}{s['words']:>14,}  {rej}")
    if data["rejected_examples"]:
        print("\nfirst rejected records:")
        for ex in data["rejected_examples"][:20]:
            print(f"  {ex['reason']:<22} {ex['where']}")
    print(f"\ntokens: {data['counts']['tokens']}")


build_parser = _parser


def main(argv: list[str], prog: str = "polyclinic corpus") -> int:
    parser = _parser(prog)
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(parser, argv)  # k=v also after flags: `build CFG --no-progress k=v`
    if args.action is None:
        parser.print_help()
        return 2
    if args.action == "stats":
        _print_stats(Path(args.folder), args.json)
        return 0
    from polyclinic.config import load_config
    from polyclinic.data.config import CorpusConfig
    from polyclinic.data.corpus import build_corpus

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("progress=false")
    cfg = load_config(CorpusConfig, args.config, overrides)
    report = build_corpus(cfg)
    st = report["stats"]
    print(f"corpus written to {report['output_dir']}: {st['kept']:,} documents kept of {st['read']:,} read "
          f"({', '.join(f'{k} {v:,}' for k, v in st['rejected'].items()) or 'nothing rejected'})")
    return 0
