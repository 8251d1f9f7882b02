"""``polyclinic push``: gated, idempotent, resumable push of a release described in YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Push every artefact of a release YAML (see recipes/release/demo.yaml) to the Hub, or to any
Hub-compatible endpoint (`endpoint:` in the YAML, an override endpoint=URL, or HF_ENDPOINT).

Before anything is sent, every repo of the release passes the gates; a refusal names the file (and row)
and the flag that overrides it:
  card      metadata complete and valid, required sections present     --allow-incomplete-card
  weights   safetensors only (no .bin/.pt/.pkl/.ckpt/... pickles)       --allow-pickle
  secrets   no HF tokens, AWS keys, private keys, api_key=..., HF_TOKEN --allow-secrets
  paths     no absolute path of this machine (cwd, home, repo, tmp)    --allow-local-paths
  phi       no e-mails, phones, national ids (DNI/NIE, NIR, codice
            fiscale, NIF, PESEL, SSN), IBANs, record numbers, dates of
            birth, street addresses (masked report)                     --allow-phi
Secrets, paths and PHI read every file of every repo (text decided by content; Parquet/Arrow by their
string columns); binary files are skipped and listed with the reason in the report.

Each repo gets ONE commit (parent = current head) holding only what changed, then the version tag (and
--branch if set). Nothing changed -> no commit. A push interrupted after the upload re-runs without
re-uploading. The token comes from HF_TOKEN or `hf auth login` and is never printed.
"""

EPILOG = """\
examples:
  polyclinic push recipes/release/demo.yaml --dry-run                 # files, sizes, what would change
  polyclinic push recipes/release/demo.yaml root=runs/demo endpoint=http://127.0.0.1:8765
  polyclinic push release.yaml --only polyclinic-demo/mt5-demo version=v0.2.0
  polyclinic push release.yaml --allow-phi                             # after reviewing the PHI report
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("release", type=Path, help="release YAML")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. root=runs/demo version=v0.2.0")
    p.add_argument("--dry-run", action="store_true", help="build cards, run gates, diff with the remote; send nothing")
    p.add_argument("--only", action="append", default=[], metavar="REPO_ID", help="push only this repo (repeat)")
    p.add_argument("--allow-pickle", action="store_true", help="override the safetensors-only gate")
    p.add_argument("--allow-phi", action="store_true", help="override the personal-health-information gate")
    p.add_argument("--allow-secrets", action="store_true", help="override the secrets gate")
    p.add_argument("--allow-local-paths", action="store_true", help="override the gate on absolute paths of this machine")
    p.add_argument("--allow-incomplete-card", action="store_true", help="override the card gate")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    return p


def main(argv: list[str], prog: str) -> int:
    from polyclinic.commands._args import check_endpoint, parse_with_overrides

    args = parse_with_overrides(build_parser(prog), argv)  # `release.yaml --only REPO version=v0.2.0`

    from polyclinic.hub.push import format_push_report, push_release
    from polyclinic.hub.release import load_release_config

    cfg = load_release_config(args.release, args.overrides)
    if not args.dry_run:  # a dry run works offline (the remote diff is then marked unchecked)
        check_endpoint(cfg.endpoint)
    allow = [g for g, flag in (("weights", args.allow_pickle), ("phi", args.allow_phi), ("secrets", args.allow_secrets),
                               ("paths", args.allow_local_paths),
                               ("card", args.allow_incomplete_card)) if flag]
    report = push_release(cfg, dry_run=args.dry_run, allow=allow, only=args.only or None)
    print(format_push_report(report))
    if args.json:
        from polyclinic.io import write_json

        write_json(args.json, report)
    return 1 if report["refused"] else 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:], "polyclinic push"))
