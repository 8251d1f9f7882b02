"""``polyclinic demo``: the whole release flow, end to end, on packaged data and tiny models.

Stages (each writes into ``--output``; a stage whose output is complete and whose config did not
change is skipped, so an interrupted demo resumes where it stopped):

  1. corpus      packaged ICD-10-CM / WHO ICD-10 / CIE-10 / HPO text -> HF dataset (es, en configs)
  2. tokenizer   SentencePiece unigram with T5 layout (100 sentinels) trained on the corpus
  3. pretrain    tiny mT5, span corruption, a few hundred steps (loss must go down)
  4. eval        held-out span-corruption loss; export check with AutoModelForSeq2SeqLM
  5. encoder     BioLORD-style phases on packaged concepts from all-MiniLM-L6-v2, before/after eval
  6. classifier  OFFLINE zero-shot teacher labels packaged CIE-10/ICD-10-CM texts, a verified subset, a MiniLM
                 student; teacher vs student on the verified subset (quality, size, memory, latency)
  7. release     local Hub-compatible server -> gated push -> verify from a fresh process
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from polyclinic.io import is_complete, read_json, write_json
from polyclinic.logging_utils import get_logger

log = get_logger("demo")

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
STAGES = {
    "corpus": "packaged ICD-10-CM / WHO ICD-10 / CIE-10 / HPO text -> HF dataset (es, en configs)",
    "tokenizer": "SentencePiece unigram with T5 layout (100 sentinels) trained on the corpus",
    "pretrain": "tiny mT5, span corruption, a few hundred steps (loss must go down)",
    "eval": "held-out span-corruption loss; export check with AutoModelForSeq2SeqLM",
    "encoder": "BioLORD-style phases on packaged concepts from all-MiniLM-L6-v2, before/after eval",
    "classifier": "offline zero-shot teacher -> verified subset -> MiniLM student; teacher vs student",
    "release": "local Hub-compatible server -> gated push -> verify from a fresh process",
}


def _stage_key(*parts) -> str:
    """What a stage's output depends on: configs (as values) and upstream folders (as content fingerprints)."""
    import hashlib

    from polyclinic.manifest import fingerprint_path

    blob = [fingerprint_path(p) if isinstance(p, Path) and p.exists() else p for p in parts]
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _recorded_keys(out: Path) -> dict[str, str]:
    """The input key each finished stage was built from (``out/stage_inputs.json``)."""
    return read_json(out / "stage_inputs.json") if (out / "stage_inputs.json").is_file() else {}


def _up_to_date(out: Path, stage: str, key: str, folder: Path) -> bool:
    """True when ``folder`` is complete and was built from inputs with this ``key``."""
    return is_complete(folder) and _recorded_keys(out).get(stage) == key


def _record_key(out: Path, stage: str, key: str) -> None:
    write_json(out / "stage_inputs.json", {**_recorded_keys(out), stage: key})


def _banner(name: str, text: str) -> None:
    log.info("=" * 72)
    log.info("[%s] %s", name, text)
    log.info("=" * 72)


def stage_corpus(out: Path, force: bool) -> dict:
    from polyclinic.config import load_config
    from polyclinic.data.config import CorpusConfig
    from polyclinic.data.corpus import build_corpus

    from polyclinic import __version__
    from polyclinic.config import config_to_dict

    target = out / "corpus"
    cfg = load_config(CorpusConfig, RECIPES / "corpus" / "demo.yaml", [f"output_dir={target}", "overwrite=true"])
    key = _stage_key(config_to_dict(cfg), __version__)
    if _up_to_date(out, "corpus", key, target) and not force:
        log.info("corpus already built at %s from the same config (use --force to rebuild)", target)
        return read_json(target / "stats.json")
    build_corpus(cfg)
    _record_key(out, "corpus", key)
    return read_json(target / "stats.json")


def stage_tokenizer(out: Path, force: bool, vocab_size: int) -> dict:
    from polyclinic.data.corpus import load_corpus
    from polyclinic.tokenization import load_tokenizer, train_tokenizer

    target = out / "tokenizer"
    key = _stage_key(out / "corpus", vocab_size)
    if _up_to_date(out, "tokenizer", key, target) and not force:
        tok = load_tokenizer(target)
    else:
        ds = load_corpus(out / "corpus", split="train")
        tok = train_tokenizer((row["text"] for row in ds), target, vocab_size=vocab_size)
        _record_key(out, "tokenizer", key)
    return {"vocab_size": len(tok), "first_sentinel_id": len(tok) - 1, "path": str(target)}


def stage_pretrain(out: Path, force: bool, overrides: list[str]) -> dict:
    from polyclinic.pretraining.config import load_pretrain_config
    from polyclinic.pretraining.trainer import train

    from polyclinic.config import config_to_dict

    run = out / "mt5"
    args = [f"data.corpus={out / 'corpus'}", f"tokenizer={out / 'tokenizer'}", f"run_dir={run}", *overrides]
    key = _stage_key(config_to_dict(load_pretrain_config(RECIPES / "pretrain" / "demo.yaml", args)),
                     out / "corpus", out / "tokenizer")
    if _up_to_date(out, "pretrain", key, run / "final") and (run / "metrics.json").exists() and not force:
        log.info("pretraining already finished at %s on the same corpus, tokenizer and config", run)
        return read_json(run / "metrics.json")
    stale = force or _recorded_keys(out).get("pretrain") not in (None, key)
    # other inputs than the checkpoints were trained on: start afresh instead of resuming them
    cfg = load_pretrain_config(RECIPES / "pretrain" / "demo.yaml", [*args, *(["training.resume=never"] if stale else [])])
    metrics = train(cfg)
    _record_key(out, "pretrain", key)
    return metrics


def stage_eval(out: Path) -> dict:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from polyclinic.evaluation.span_corruption import evaluate_span_corruption

    from polyclinic.config import read_yaml

    run = out / "mt5"
    final = run / "final"
    model = AutoModelForSeq2SeqLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    data_cfg = read_yaml(run / "config.yaml")["data"]
    result = evaluate_span_corruption(
        final,
        out / "corpus",
        split="validation",
        input_length=data_cfg["input_length"],
        noise_density=data_cfg["noise_density"],
        mean_noise_span_length=data_cfg["mean_noise_span_length"],
        output=run / "eval" / "span-corruption.json",
    )
    result["export_check"] = {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tok),
    }
    return result


def stage_encoder(out: Path, force: bool, overrides: list[str]) -> dict:
    from polyclinic.encoders.config import load_encoder_config
    from polyclinic.encoders.trainer import run_encoder_recipe

    run = out / "encoder"
    # no short cut here: each phase skips itself when its config and input contents are unchanged
    cfg = load_encoder_config(RECIPES / "encoder" / "demo.yaml", [f"output_dir={run}", *overrides])
    return run_encoder_recipe(cfg, force=force)


def stage_classifier(out: Path, force: bool, overrides: list[str]) -> dict:
    """ADMEDTAGGER-style distillation on packaged data. The teacher is the OFFLINE zero-shot teacher (no LLM
    weights ship on PyPI) and the verified labels are the ICD-10 categories of the codes, prefilled: in a real
    project a person annotates the exported file instead."""
    from polyclinic.classification.report import compare
    from polyclinic.classification.trainer import ClassifierConfig, train
    from polyclinic.config import load_config
    from polyclinic.teacher.config import TeacherConfig
    from polyclinic.teacher.labeler import label
    from polyclinic.teacher.verified import export_sample, import_verified

    teacher_dir, run = (out / "classifier" / "teacher").resolve(), (out / "classifier" / "student").resolve()
    tcfg = load_config(TeacherConfig, RECIPES / "classifier" / "teacher-demo.yaml", [f"output_dir={teacher_dir}"])
    label(tcfg, force=force)
    sample = teacher_dir / "verify-sample.csv"
    export_sample(teacher_dir, sample, prefill_gold=True)  # the demo's "annotation": gold = category of the code
    import_verified(teacher_dir, sample)
    ccfg = load_config(ClassifierConfig, RECIPES / "classifier" / "demo.yaml",
                       [f"teacher_dir={teacher_dir}", f"output_dir={run}", *overrides])
    metrics = train(ccfg, force=force)  # skipped when config and input contents are unchanged
    done = run / "comparison.json"
    if done.is_file() and not force and read_json(done).get("student_inputs_hash") == metrics.get("inputs_hash"):
        log.info("teacher vs student comparison of this student already measured: %s", done)
        return read_json(done)
    return compare(run)


def stage_release(out: Path) -> dict:
    from polyclinic.hub.release import load_release_config
    from polyclinic.hub.push import push_release
    from polyclinic.hub.server import serve
    from polyclinic.hub.verify import verify_release

    import os

    server = serve(out / "hub", host="127.0.0.1", port=0)
    log.info("publishing to a LOCAL Hub-compatible server at %s (not huggingface.co)", server.url)
    previous_token = os.environ.get("HF_TOKEN")
    os.environ["HF_TOKEN"] = server.token  # what a user does after `polyclinic hub serve` prints it
    try:
        cfg = load_release_config(RECIPES / "release" / "demo.yaml", [f"root={out}", f"endpoint={server.url}"])
        pushed = push_release(cfg)
        verified = verify_release(cfg)
    finally:
        server.shutdown()
        if previous_token is None:
            os.environ.pop("HF_TOKEN", None)
        else:
            os.environ["HF_TOKEN"] = previous_token
    return {"endpoint": server.url, "push": pushed, "verify": verified}


def _fmt(value, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "?"


def headline(summary: dict, out: Path) -> str:
    """The few numbers a person wants at the end of the demo (everything else is in summary.json)."""
    lines = ["", "polyclinic demo: results", "-" * 72]
    corpus = summary.get("corpus", {}).get("result", {})
    if corpus:
        langs = ", ".join(f"{k} {v.get('documents', '?')}" for k, v in corpus.get("languages", {}).items())
        totals = corpus.get("totals", {})
        lines.append(f"corpus     {totals.get('documents', '?')} documents ({langs}), {totals.get('words', '?')} words"
                     f" -> {out / 'corpus'}")
    tok = summary.get("tokenizer", {}).get("result", {})
    if tok:
        lines.append(f"tokenizer  {tok.get('vocab_size')} ids, <extra_id_0> = {tok.get('first_sentinel_id')}")
    pre = summary.get("pretrain", {}).get("result", {})
    if pre:
        lines.append(f"mT5        {pre.get('steps')} steps, {pre.get('tokens_seen')} tokens: train loss {_fmt(pre.get('final_train_loss'))},"
                     f" in-run held-out subset {_fmt(pre.get('eval_loss'))} -> {out / 'mt5' / 'final'}")
    ev = summary.get("eval", {}).get("result", {}).get("metrics", {})
    if ev:
        per = ", ".join(f"{k.split('_')[-1]} {_fmt(v)}" for k, v in ev.items() if k.startswith("loss_"))
        lines.append(f"eval       held-out span-corruption loss {_fmt(ev.get('loss'))} ({per}), token accuracy {_fmt(ev.get('token_accuracy'))}")
    enc = summary.get("encoder", {}).get("result", {}).get("summary", {})
    for key in sorted(enc):
        if key.endswith(("recall@10", "mrr@10")):
            v = enc[key]
            lines.append(f"encoder    {key:<34} {_fmt(v.get('before'))} -> {_fmt(v.get('after'))}  ({v.get('gain', 0):+.3f})")
    clf = summary.get("classifier", {}).get("result", {})
    if clf:
        t, st = clf.get("teacher", {}), clf.get("student", {})
        lines.append(f"classifier verified subset ({st.get('num_examples')} docs): macro-F1 teacher (OFFLINE zero-shot) "
                     f"{_fmt(t.get('macro_f1'))} vs student {_fmt(st.get('macro_f1'))}; latency ms/doc "
                     f"{_fmt(t.get('latency_ms_per_document'), '.1f')} vs {_fmt(st.get('latency_ms_per_document'), '.1f')}")
    rel = summary.get("release", {}).get("result", {})
    if rel:
        repos = rel.get("verify", {}).get("repos", [])
        ok = sum(1 for r in repos if r.get("ok"))
        lines.append(f"release    {len(repos)} repos on the LOCAL hub {rel.get('endpoint')}: {ok}/{len(repos)} verified from a fresh process")
        lines += [f"           {'ok  ' if r.get('ok') else 'FAIL'} {r.get('repo_id')} ({r.get('kind')})" for r in repos]
    lines.append("-" * 72)
    return "\n".join(lines)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  polyclinic demo --output runs/demo            # what `make demo` runs\n"
        "  polyclinic demo --stages corpus tokenizer pretrain --pretrain-override training.max_steps=50\n"
        "  polyclinic demo --stages classifier --classifier-override epochs=3",
    )
    parser.add_argument("--output", type=Path, default=Path("runs/demo"), help="folder for every demo artefact")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="run only these stages")
    parser.add_argument("--force", action="store_true", help="redo stages whose output already exists")
    parser.add_argument("--vocab-size", type=int, default=4000, help="SentencePiece pieces for the demo tokenizer")
    parser.add_argument("--pretrain-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--encoder-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--classifier-override", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)

    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    t_start = time.perf_counter()
    runners = {
        "corpus": lambda: stage_corpus(out, args.force),
        "tokenizer": lambda: stage_tokenizer(out, args.force, args.vocab_size),
        "pretrain": lambda: stage_pretrain(out, args.force, args.pretrain_override),
        "eval": lambda: stage_eval(out),
        "encoder": lambda: stage_encoder(out, args.force, args.encoder_override),
        "classifier": lambda: stage_classifier(out, args.force, args.classifier_override),
        "release": lambda: stage_release(out),
    }
    for name in STAGES:
        if name not in args.stages:
            continue
        _banner(name, STAGES[name])
        t0 = time.perf_counter()
        result = runners[name]()
        summary[name] = {"seconds": round(time.perf_counter() - t0, 1), "result": result}
        write_json(summary_path, summary)
    summary["total_seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(summary_path, summary)
    log.info("demo finished in %.0fs; summary: %s", summary["total_seconds"], summary_path)
    print(headline(summary, out))
    print("seconds per stage:", json.dumps({k: v.get("seconds") if isinstance(v, dict) else v for k, v in summary.items()}))
    release = summary.get("release", {}).get("result", {})
    if release and not release.get("verify", {}).get("ok", False):
        log.error("release verification failed; see %s", summary_path)
        return 1
    return 0
