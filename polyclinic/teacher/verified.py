"""The verified subset: the only labels that judge teacher and student.

``export_sample`` writes a stable sample of labelled documents for annotation (CSV or JSONL, columns ``id,
text, lang, teacher_label, gold_label``; ``gold_label`` empty unless prefilled from the input's gold
column, which is how the demo's code-derived categories play the hand-verified labels). ``import_verified``
reads an annotated file back (or any file of ``id`` + ``gold_label``), checks ids and labels, and writes
``<teacher>/verified.jsonl``. ``evaluate_teacher`` then scores the teacher against it (accuracy, per-class
P/R/F1, Cohen's kappa, confusion-matrix PNG) before any student is trained. Multi-label gold cells are
``|``-separated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from polyclinic.errors import UserError
from polyclinic.io import atomic_write_text, read_json, write_json
from polyclinic.logging_utils import get_logger
from polyclinic.teacher.labeler import load_labels, read_jsonl

log = get_logger("teacher.verified")
COLUMNS = ("id", "text", "lang", "teacher_label", "gold_label")


def _config(teacher_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((teacher_dir / "config.yaml").read_text(encoding="utf-8"))


def _fmt(value) -> str:
    return "|".join(value) if isinstance(value, list) else ("" if value is None else str(value))


def export_sample(teacher_dir: str | Path, output: str | Path, size: int | None = None, prefill_gold: bool = False,
                  seed: int = 0) -> dict:
    """Write a stable sample of ``size`` labelled documents (default: the recipe's ``verified_size``)."""
    d = Path(teacher_dir)
    docs, labels, _ = load_labels(d)
    cfg = _config(d)
    size = size or cfg.get("verified_size", 200)
    ranked = sorted(docs, key=lambda r: hashlib.sha256(f"verify:{seed}:{r['id']}".encode()).hexdigest())
    sample = ranked[:size]
    if prefill_gold and not any("gold" in r for r in sample):
        raise UserError("--prefill-gold: the input documents have no gold column (data.gold_column)")
    rows = []
    for r in sample:
        lab = labels.get(r["id"])
        teacher = (lab.get("labels") if "labels" in (lab or {}) else (lab or {}).get("label"))
        rows.append({"id": r["id"], "text": r["text"], "lang": r.get("lang", ""), "teacher_label": _fmt(teacher),
                     "gold_label": _fmt(r.get("gold")) if prefill_gold else ""})
    output = Path(output)
    if output.suffix.lower() == ".jsonl":
        atomic_write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif output.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(output, buf.getvalue())
    else:
        raise UserError(f"{output}: export as .csv or .jsonl")
    return {"path": str(output), "rows": len(rows), "prefilled": prefill_gold}


def import_verified(teacher_dir: str | Path, path: str | Path, gold_column: str = "gold_label") -> dict:
    """Read annotated labels back into ``<teacher>/verified.jsonl``; rows with an empty gold cell are skipped
    (not annotated yet) and counted."""
    d, path = Path(teacher_dir), Path(path)
    docs, _, _ = load_labels(d)
    cfg = _config(d)
    names = [l["name"] for l in cfg["labels"]]
    multi = bool(cfg.get("multi_label"))
    known = {r["id"]: r for r in docs}
    if not path.is_file():
        raise UserError(f"verified file not found: {path}")
    if path.suffix.lower() == ".jsonl":
        rows = read_jsonl(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    else:
        raise UserError(f"{path}: verified labels must be .csv, .tsv or .jsonl")
    out, skipped = [], 0
    for i, r in enumerate(rows, 2 if path.suffix.lower() != ".jsonl" else 1):
        if "id" not in r or gold_column not in r:
            raise UserError(f"{path}: needs columns 'id' and {gold_column!r} (found {sorted(r)})")
        cell = r[gold_column]
        gold = cell if isinstance(cell, list) else [g.strip() for g in str(cell or "").split("|") if g.strip()]
        if not gold:
            skipped += 1
            continue
        doc_id = str(r["id"])
        if doc_id not in known:
            raise UserError(f"{path}:{i}: id {doc_id!r} is not one of the teacher's documents")
        bad = [g for g in gold if g not in names]
        if bad:
            raise UserError(f"{path}:{i}: label {bad[0]!r} is not in the label set {names}")
        if not multi and len(gold) != 1:
            raise UserError(f"{path}:{i}: one label expected (the label set is multi-class), got {gold}")
        out.append({"id": doc_id, "gold": gold if multi else gold[0], "lang": known[doc_id].get("lang", "")})
    if not out:
        raise UserError(f"{path}: no annotated rows (fill the {gold_column!r} column)")
    atomic_write_text(d / "verified.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return {"verified": len(out), "skipped_unannotated": skipped, "path": str(d / "verified.jsonl")}


def load_verified(teacher_dir: str | Path) -> list[dict]:
    p = Path(teacher_dir) / "verified.jsonl"
    if not p.is_file():
        raise UserError(f"{teacher_dir} has no verified subset: `polyclinic teacher export` a sample, annotate it, "
                        "then `polyclinic teacher import` it")
    return read_jsonl(p)


def evaluate_teacher(teacher_dir: str | Path) -> dict:
    """Teacher vs verified labels -> ``<teacher>/eval/teacher.json`` (+ per language), the confusion PNG and
    ``<teacher>/teacher_eval.json`` (full metrics). Documents the teacher rejected count in ``coverage``."""
    from polyclinic.classification.metrics import classification_metrics, flat_metrics, plot_confusion
    from polyclinic.evaluation.report import eval_record, write_eval

    d = Path(teacher_dir)
    _, labels, stats = load_labels(d)
    cfg = _config(d)
    names = [l["name"] for l in cfg["labels"]]
    multi = bool(cfg.get("multi_label"))
    verified = load_verified(d)
    covered = [v for v in verified if v["id"] in labels]
    if not covered:
        raise UserError("the teacher labelled none of the verified documents")

    def pred(v):
        row = labels[v["id"]]
        return list(row["labels"]) if multi else row["label"]

    m = classification_metrics([v["gold"] for v in covered], [pred(v) for v in covered], names, multi)
    m["coverage"] = len(covered) / len(verified)
    teacher = stats.get("teacher", {})
    model = teacher.get("name", "teacher")
    langs = sorted({v.get("lang") or "und" for v in covered})

    def rec(mm, lang, n):
        return eval_record(task="text-classification", dataset="verified subset", split="verified", language=lang,
                           metrics={**flat_metrics(mm), "coverage": mm.get("coverage", 1.0)}, model=model,
                           num_examples=n, role="teacher", teacher=teacher)

    by_lang = {}
    if len(langs) > 1:
        for lang in langs:
            sub = [v for v in covered if (v.get("lang") or "und") == lang]
            mm = classification_metrics([v["gold"] for v in sub], [pred(v) for v in sub], names, multi)
            by_lang[lang] = rec(mm, lang, len(sub))
    write_eval(d / "eval" / "teacher.json", rec(m, "multilingual" if len(langs) > 1 else langs[0], len(covered)),
               by_language=by_lang)
    png = plot_confusion(m, d / "eval" / "teacher_confusion.png", f"teacher vs verified (n={len(covered)})")
    m["confusion_png"] = str(png) if png else None
    m["verified_size"] = len(verified)
    m["by_language"] = {k: v["metrics"] for k, v in by_lang.items()}
    write_json(d / "teacher_eval.json", m)
    return m


def teacher_eval(teacher_dir: str | Path) -> dict:
    p = Path(teacher_dir) / "teacher_eval.json"
    return read_json(p) if p.is_file() else evaluate_teacher(teacher_dir)
