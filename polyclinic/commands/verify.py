"""``polyclinic verify``: download into a fresh cache in a fresh process and load/evaluate as a user would."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Verify pushed artefacts from a fresh Python process with an empty HF_HOME (nothing local is reused):
  mt5       AutoTokenizer + AutoModelForSeq2SeqLM.from_pretrained, generate on a sentinel prompt,
            span-corruption loss on the fixed verification slice == the card's model-index value
  encoder   SentenceTransformer(repo), encode + similarity, slice cosine == the card's value
  dataset   load_dataset(repo, config, split) for every config/split; rows == the card's dataset_info
Prints a table (and --json writes the report). Exit status 1 when any check fails.
"""

EPILOG = """\
examples:
  polyclinic verify polyclinic-demo/mt5-demo --kind mt5 --revision v0.1.0 --endpoint http://127.0.0.1:8765
  polyclinic verify polyclinic-demo/demo-medical-corpus --kind dataset
  polyclinic verify --release recipes/release/demo.yaml root=runs/demo endpoint=http://127.0.0.1:8765
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("repo_id", nargs="?", help="repo to verify (or use --release)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="release config overrides (with --release)")
    p.add_argument("--release", type=Path, help="verify every artefact of this release YAML at its version tag")
    p.add_argument("--kind", choices=["auto", "mt5", "encoder", "classifier", "dataset"], default="auto",
                   help="what the repo holds (auto: read the model card's library_name, else dataset)")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default main; the version tag with --release)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint (default HF_ENDPOINT or huggingface.co)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="absolute tolerance for the slice vs the card")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    return p


def main(argv: list[str], prog: str) -> int:
    from polyclinic.commands._args import check_endpoint, parse_with_overrides

    args = parse_with_overrides(build_parser(prog), argv)

    from polyclinic.errors import UserError
    from polyclinic.hub.verify import format_report, verify_release, verify_repo

    if args.release:
        from polyclinic.hub.release import load_release_config

        overrides = ([args.repo_id] if args.repo_id and "=" in args.repo_id else []) + list(args.overrides)
        extra = [f"endpoint={args.endpoint}"] if args.endpoint else []
        cfg = load_release_config(args.release, [*overrides, *extra])
        check_endpoint(cfg.endpoint)
        report = verify_release(cfg, revision=args.revision)
    elif args.repo_id:
        if args.overrides:
            raise UserError(f"unexpected arguments {args.overrides} (KEY=VALUE overrides need --release)")
        import os

        endpoint = args.endpoint or os.environ.get("HF_ENDPOINT")
        check_endpoint(endpoint)
        r = verify_repo(args.repo_id, args.kind, endpoint=endpoint, revision=args.revision, tolerance=args.tolerance)
        report = {"endpoint": endpoint, "ok": r["ok"], "repos": [r]}
    else:
        raise UserError("give a REPO_ID or --release release.yaml; see --help")
    print(format_report(report))
    if args.json:
        from polyclinic.io import write_json

        write_json(args.json, report)
    return 0 if report["ok"] else 1
