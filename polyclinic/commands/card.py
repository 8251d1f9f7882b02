"""``polyclinic card``: render a model or dataset card from what a run / dataset folder measured."""

from __future__ import annotations

import argparse
from pathlib import Path

from polyclinic.logging_utils import get_logger

log = get_logger("card")

DESCRIPTION = """\
Render release/<repo>/README.md from a run folder (mt5, encoder) or a dataset folder (corpus, benchmark,
pairs) with the templates in model_cards/ and dataset_cards/, then validate it: the YAML metadata must
parse with huggingface_hub's ModelCard/DatasetCard, carry license, language, tags, pipeline_tag,
library_name and model-index (from eval/*.json), and the body must hold the required sections
(training recipe, compute, evaluation, intended use, out-of-scope use, bias and limitations, usage,
citation). Problems are listed and the exit status is 1, unless --allow-incomplete-card.

Model cards also record a "verification slice" (span-corruption loss on fixed sentences for mT5, mean
cosine of fixed synonym pairs for encoders) that `polyclinic verify` recomputes after download.
"""

EPILOG = """\
examples:
  polyclinic card runs/demo/mt5 --kind mt5 --repo-id polyclinic-demo/mt5-demo --language es --language en \\
      --output release/mt5-demo/README.md
  polyclinic card runs/demo/encoder --kind encoder --repo-id polyclinic-demo/encoder-demo --language es
  polyclinic card runs/demo/benchmark/coding-search-es-en --kind benchmark --repo-id org/coding-search
  polyclinic card --release recipes/release/demo.yaml --repo-id polyclinic-demo/mt5-demo root=runs/demo
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, help="run folder (with final/, eval/) or dataset folder")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="release config overrides (with --release)")
    p.add_argument("--kind", choices=["mt5", "encoder", "classifier", "corpus", "benchmark", "pairs"], help="artefact kind")
    p.add_argument("--release", type=Path, help="take the artefact (kind, path, languages, licence...) from a release YAML")
    p.add_argument("--repo-id", default=None, help="Hub repo id shown in the card and its usage snippet")
    p.add_argument("--language", action="append", default=[], help="ISO 639-1 code (repeat); default: from the run")
    p.add_argument("--license", default="apache-2.0")
    p.add_argument("--tag", action="append", default=[], help="extra tag (repeat)")
    p.add_argument("--base-model", default=None, help="Hub id of the starting model (default: from config.yaml)")
    p.add_argument("--dataset", action="append", default=[], help="Hub id of a training dataset (repeat)")
    p.add_argument("--template", default=None, help="template path relative to the repository root")
    p.add_argument("--version", default=None, help="release version mentioned in the card")
    p.add_argument("--output", type=Path, default=None, help="where to write (default release/<name>/README.md)")
    p.add_argument("--no-verification-slice", action="store_true", help="do not load the model to compute the slice")
    p.add_argument("--allow-incomplete-card", action="store_true", help="exit 0 even when validation finds problems")
    return p


def main(argv: list[str], prog: str) -> int:
    from polyclinic.commands._args import parse_with_overrides

    args = parse_with_overrides(build_parser(prog), argv)

    from polyclinic.errors import UserError
    from polyclinic.hub import cards
    from polyclinic.hub.release import MODEL_KINDS, ArtefactSpec, load_release_config

    if args.release:
        overrides = ([str(args.path)] if args.path and "=" in str(args.path) else []) + list(args.overrides)
        cfg = load_release_config(args.release, overrides)
        specs = [a for a in cfg.artefacts if a.repo_id == args.repo_id] if args.repo_id else cfg.artefacts[:1]
        if not specs:
            raise UserError(f"--repo-id {args.repo_id} is not in {args.release} ({', '.join(a.repo_id for a in cfg.artefacts)})")
        spec, path, version = specs[0], cfg.artefact_path(specs[0]), args.version or cfg.version
    else:
        if args.path is None or args.kind is None:
            raise UserError("give a folder and --kind (or --release release.yaml); see --help")
        if args.overrides:
            raise UserError(f"KEY=VALUE overrides need --release (got {args.overrides})")
        path, version = args.path, args.version
        spec = ArtefactSpec(kind=args.kind, path=str(path), repo_id=args.repo_id or f"local/{path.resolve().name}",
                            license=args.license, languages=args.language, tags=args.tag, base_model=args.base_model,
                            datasets=args.dataset, card_template=args.template)
    weights = spec.model_folders(Path(path))[0] if spec.kind in MODEL_KINDS else None
    if weights is not None and not weights.is_dir():
        raise UserError(f"{path} is not a finished {spec.kind} run folder (it needs "
                        f"{weights.relative_to(path)}/ with the weights and eval/)")
    if spec.kind not in MODEL_KINDS and not Path(path).is_dir():
        raise UserError(f"{path} is not a dataset folder")
    if spec.kind in MODEL_KINDS:
        verification = None
        if not args.no_verification_slice:
            from polyclinic.hub.verify import local_verification

            verification = local_verification(spec.kind, weights)
        text = cards.render_model_card(path, spec, version=version, verification=verification, template=args.template)
        problems = cards.validate_card(text, "model", spec.kind)
    else:
        text = cards.render_dataset_card(path, spec, version=version, template=args.template)
        problems = cards.validate_card(text, "dataset", spec.kind)
    from polyclinic.io import atomic_write_text

    out = args.output or Path("release") / spec.name / "README.md"
    atomic_write_text(out, text)
    print(f"wrote {out} ({len(text.splitlines())} lines) for {spec.repo_id} ({spec.kind})")
    if problems:
        print("card problems:")
        for pr in problems:
            print(f"  - {pr}")
        return 0 if args.allow_incomplete_card else 1
    print("card metadata and sections are valid")
    return 0
