"""The shared runner of the contrastive family, and the recipe driver.

:func:`train_model` turns a :class:`TrainSettings` into ``SentenceTransformerTrainingArguments`` and
runs ``SentenceTransformerTrainer`` (which is Accelerate-aware: the same code runs as one process or
under ``accelerate launch`` with DDP / FSDP / DeepSpeed). It adds what polyclinic runs need:
checkpoints every ``save_steps`` (``save_total_limit`` kept) marked ``COMPLETE`` once fully written,
``resume: auto`` from the newest complete checkpoint, the final sentence-transformers folder written
atomically, and the log history.

:func:`run_encoder_recipe` runs the phases of an :class:`EncoderConfig` (contrastive ->
self-distillation -> averaging -> multilingual distillation), evaluates before and after each, and
writes the run folder::

    <output_dir>/config.yaml  manifest.json  metrics.json  final/  eval/*.json
    <output_dir>/phases/<phase>/{checkpoints/checkpoint-N/, final/, metrics.json, logs/}

A phase whose ``final/`` is complete and whose config did not change is skipped on a re-run, so an
interrupted recipe continues where it stopped (and inside a phase, training resumes from the newest
complete checkpoint).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from polyclinic.distributed import is_main_process, process_state, wait_for_everyone  # noqa: F401 (re-exported)
from polyclinic.config import config_hash, save_config
from polyclinic.encoders.config import PHASE_ORDER, EncoderConfig, TrainSettings, check_runtime, normalize_phase
from polyclinic.errors import UserError
from polyclinic.io import COMPLETE_MARKER, atomic_directory, clean_stale_tmp, is_complete, read_json, write_json
from polyclinic.logging_utils import get_logger
from polyclinic.manifest import write_manifest, write_metrics

log = get_logger("encoders.trainer")


# --------------------------------------------------------------------------------------------- process
# --------------------------------------------------------------------------------------------- runner
def _complete_marker_callback():
    from transformers import TrainerCallback

    class MarkCheckpointComplete(TrainerCallback):
        """``checkpoint-N/COMPLETE`` once the trainer finished writing it (model, optimizer, state)."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    from polyclinic.checkpoints import write_checkpoint_manifest

                    write_checkpoint_manifest(folder)  # sizes + hashes, checked before a resume
                    (folder / COMPLETE_MARKER).write_text("ok\n")
            return control

    return MarkCheckpointComplete()


def latest_checkpoint(folder: str | Path) -> Path | None:
    """Newest complete checkpoint that is also intact (:func:`polyclinic.checkpoints.pick_intact`: damaged
    ones are warned about and skipped, so a truncated file never crashes the resume). When complete
    checkpoints exist but none is intact, a UserError: restarting silently would throw away the phase's
    progress (``--force`` restarts the phase on purpose)."""
    from polyclinic.checkpoints import pick_intact
    from polyclinic.encoders.averaging import checkpoint_dirs

    done = [p for p in checkpoint_dirs(folder) if (p / COMPLETE_MARKER).exists()]
    chosen, damaged = pick_intact(reversed(done))
    if chosen is None and damaged:
        detail = "; ".join(f"{p.name}: {probs[0]}" for p, probs in damaged)
        raise UserError(f"every checkpoint under {folder} is damaged ({detail}); run again with --force to restart "
                        f"this phase from scratch")
    return chosen


def resolve_resume(resume: bool | str, checkpoints: Path) -> str | None:
    if resume is False or resume in ("false", "no", "none", ""):
        return None
    if resume is True or resume == "auto":
        found = latest_checkpoint(checkpoints)
        if found is None and resume is True:
            raise UserError(f"resume=true but no complete checkpoint under {checkpoints}")
        if found is not None:
            log.info("resuming from %s", found)
        return str(found) if found else None
    path = Path(str(resume))
    if not path.is_dir():
        raise UserError(f"resume checkpoint not found: {path}")
    from polyclinic.checkpoints import verify_checkpoint

    problems = verify_checkpoint(path)
    if problems:
        raise UserError(f"resume checkpoint {path} is damaged or incomplete: {'; '.join(problems[:3])}")
    return str(path)


def build_training_args(settings: TrainSettings, output_dir: str | Path, seed: int, run_name: str | None = None):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    sampler = {
        "no_duplicates": BatchSamplers.NO_DUPLICATES,
        "no_duplicates_hashed": BatchSamplers.NO_DUPLICATES_HASHED,
        "batch_sampler": BatchSamplers.BATCH_SAMPLER,
    }[settings.batch_sampler]
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=float(settings.warmup_ratio),  # transformers 5: a float < 1 is a ratio
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_grad_norm=settings.max_grad_norm,
        bf16=settings.precision == "bf16",
        fp16=settings.precision == "fp16",
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        eval_strategy="no",
        seed=seed,
        data_seed=seed,
        batch_sampler=sampler,
        report_to="none",
        dataloader_num_workers=settings.dataloader_num_workers,
        dataloader_pin_memory=_cuda_available(),
        disable_tqdm=not sys.stderr.isatty(),
        run_name=run_name,
    )
    if settings.deepspeed:
        kwargs["deepspeed"] = settings.deepspeed
    try:
        return SentenceTransformerTrainingArguments(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid training settings: {exc}") from None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclasses.dataclass
class PhaseResult:
    model: Any
    final_dir: Path
    metrics: dict[str, Any]


def save_model_atomic(model, final: str | Path, trainer=None) -> Path:
    """Write a sentence-transformers folder to ``final`` so that it never looks complete half-written.

    One process: ``atomic_directory``. Several: every rank takes part in the save (ZeRO-3 gathers
    weights), the main rank marks it complete and renames it into place.
    """
    final = Path(final)
    state = process_state()
    if state.num_processes == 1 or trainer is None:
        if state.is_main_process:
            with atomic_directory(final) as tmp:
                model.save(str(tmp))
        state.wait_for_everyone()
        return final
    tmp = final.with_name(final.name + ".tmp-save")
    if state.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    state.wait_for_everyone()
    trainer.save_model(str(tmp))
    state.wait_for_everyone()
    if state.is_main_process:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle: not part of a released model
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():
            trash = final.with_name(final.name + ".old-save")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    state.wait_for_everyone()
    return final


def train_model(
    model,
    train_dataset,
    loss,
    settings: TrainSettings,
    phase_dir: str | Path,
    seed: int,
    run_name: str | None = None,
    callbacks: Sequence = (),
    save_final: bool = True,
) -> PhaseResult:
    """Train ``model`` with ``loss`` on ``train_dataset`` and write ``phase_dir/final`` (+ checkpoints, logs)."""
    from sentence_transformers import SentenceTransformerTrainer

    phase_dir = Path(phase_dir)
    ckpt = phase_dir / "checkpoints"
    if is_main_process():
        phase_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_tmp(phase_dir)
    args = build_training_args(settings, ckpt, seed, run_name)
    if len(train_dataset) < settings.batch_size:
        log.warning("only %d training rows for batch_size %d", len(train_dataset), settings.batch_size)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        callbacks=[_complete_marker_callback(), *callbacks],
    )
    resume = resolve_resume(settings.resume, ckpt)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    elapsed = time.perf_counter() - start
    metrics = {
        "train_loss": round(float(output.training_loss), 5),
        "steps": int(output.global_step),
        "train_rows": len(train_dataset),
        "seconds": round(elapsed, 2),
        "pairs_per_second": round(float(output.metrics.get("train_samples_per_second", 0.0)), 2),
        "resumed_from": resume,
        "world_size": int(args.world_size),
        "effective_batch_size": int(settings.batch_size * args.world_size * settings.gradient_accumulation_steps),
    }
    if is_main_process():
        write_json(phase_dir / "logs" / "log_history.json", trainer.state.log_history)
    final = phase_dir / "final"
    if save_final:
        save_model_atomic(trainer.model, final, trainer)
    return PhaseResult(trainer.model, final, metrics)


# --------------------------------------------------------------------------------------------- data
@dataclasses.dataclass
class EncoderData:
    train_pairs: Any
    dev_pairs: Any | None
    table: Any | None = None
    split: Any | None = None
    info: dict = dataclasses.field(default_factory=dict)
    tasks: list = dataclasses.field(default_factory=list)
    inputs: dict = dataclasses.field(default_factory=dict)


def load_concept_table(cfg: EncoderConfig):
    src = cfg.data.concepts
    if src is None:
        return None
    if src.table:
        from polyclinic.concepts.table import load_table

        return load_table(src.table)
    if not src.sources:
        raise UserError("data.concepts needs table: <folder> or sources: [icd10cm, cie10, ...]")
    from polyclinic.concepts.loaders import load_sources

    table, _reports = load_sources(src.sources)
    return table


def prepare_data(cfg: EncoderConfig, need_pairs: bool = True) -> EncoderData:
    from datasets import concatenate_datasets

    from polyclinic.encoders.data import load_pairs_files, split_pairs

    parts_train, parts_dev = [], []
    info: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    table = split = None
    if cfg.data.concepts is not None:
        from polyclinic.concepts.pairs import PairConfig, build_pairs
        from polyclinic.config import build_config

        table = load_concept_table(cfg)
        src = cfg.data.concepts
        pair_cfg = build_config(
            PairConfig,
            {"dev_fraction": src.dev_fraction, "seed": cfg.seed, "langs": src.langs,
             **({"group_by": src.group_by} if src.group_by else {}), **src.options},
            "data.concepts.options",
        )
        result = build_pairs(table, pair_cfg)
        split = result.split
        parts_train.append(result.train)
        parts_dev.append(result.dev)
        info["concepts"] = result.stats.to_dict()
        if src.table:
            inputs["concept_table"] = src.table
    if cfg.data.pairs_files:
        pairs = load_pairs_files(cfg.data.pairs_files)
        for i, p in enumerate(cfg.data.pairs_files):
            inputs[f"pairs_{i}"] = p
        if cfg.data.eval_pairs_files:
            dev = load_pairs_files(cfg.data.eval_pairs_files)
            train = pairs
        else:
            train, dev = split_pairs(pairs, cfg.data.dev_fraction, cfg.seed)
        parts_train.append(train)
        parts_dev.append(dev)
    if not parts_train:
        if need_pairs:
            raise UserError("no training data: set data.pairs_files and/or data.concepts")
        return EncoderData(None, None, table, split, info, inputs=inputs)
    common = ["anchor", "positive"]
    if all("negative" in p.column_names for p in parts_train):
        common.append("negative")
    keep_cols = lambda ds: ds.select_columns([c for c in ds.column_names if c in (*common, "concept_id", "kind", "lang")])
    train = concatenate_datasets([keep_cols(p).cast(keep_cols(parts_train[0]).features) for p in parts_train]) if len(parts_train) > 1 else parts_train[0]
    dev_parts = [p for p in parts_dev if p is not None and len(p)]
    dev = dev_parts[0] if len(dev_parts) == 1 else (concatenate_datasets([keep_cols(p) for p in dev_parts]) if dev_parts else None)
    if cfg.data.max_train_pairs and len(train) > cfg.data.max_train_pairs:
        train = train.shuffle(seed=cfg.seed).select(range(cfg.data.max_train_pairs))
    info["train_pairs"] = len(train)
    info["dev_pairs"] = len(dev) if dev is not None else 0
    return EncoderData(train, dev, table, split, info, inputs=inputs)


def build_eval_tasks(cfg: EncoderConfig, data: EncoderData) -> list:
    from polyclinic.encoders.evaluation import coding_search_task, pairs_task

    tasks = []
    if not cfg.eval.enabled:
        return tasks
    dev = data.dev_pairs
    if cfg.eval.dev_pairs and dev is not None and len(dev):
        kinds = sorted(set(dev["kind"])) if "kind" in dev.column_names else []
        if len(kinds) > 1:  # one task per pair kind: an easy kind would hide a hard one in a pooled score
            for kind in kinds:
                part = dev.filter(lambda k, kind=kind: k == kind, input_columns="kind")
                tasks.append(pairs_task(part, f"dev_{kind}", cfg.data.max_eval_pairs, cfg.seed))
        else:
            tasks.append(pairs_task(dev, "dev_pairs", cfg.data.max_eval_pairs, cfg.seed))
    for cs in cfg.eval.coding_search:
        if data.table is None:
            raise UserError("eval.coding_search needs data.concepts (a concept table with both languages)")
        codes = None
        if data.split is not None:
            codes = sorted(c.split(":", 1)[-1] for c in data.split.dev if c.startswith("ICD10:"))
        tasks.append(coding_search_task(data.table, cs.query_lang, cs.corpus_lang, codes=codes, max_queries=cs.max_queries,
                                        seed=cfg.seed, corpus_scope=cs.corpus_scope))
    return tasks


# --------------------------------------------------------------------------------------------- phases
def _evaluate(model, tasks, cfg: EncoderConfig) -> dict:
    from polyclinic.encoders.evaluation import evaluate_tasks

    if not tasks:
        return {}
    out: dict = {}
    if is_main_process():
        was_training = model.training
        model.eval()
        out = evaluate_tasks(model, tasks, cfg.eval.ks, cfg.eval.batch_size)
        model.train(was_training)
    wait_for_everyone()
    return out


def _model_card(model, cfg: EncoderConfig, phase: str) -> None:
    data = getattr(model, "model_card_data", None)
    if data is None:
        return
    try:
        data.language = list(cfg.language)
        data.license = cfg.license
        data.model_name = f"{cfg.name} ({phase})"
        data.local_files_only = True
    except Exception:  # noqa: BLE001 - cards are best effort here; polyclinic card renders the real one
        pass


def _load(name: str, cfg: EncoderConfig, max_seq_length: int | None = None):
    from polyclinic.encoders.model import load_sentence_transformer

    return load_sentence_transformer(name, max_seq_length=max_seq_length or cfg.max_seq_length)


def phase_contrastive(cfg: EncoderConfig, model, data: EncoderData, out: Path, seed: int | None = None) -> PhaseResult:
    from polyclinic.encoders.contrastive import build_contrastive_loss
    from polyclinic.encoders.data import loss_columns

    ph = cfg.phases.contrastive
    train = data.train_pairs
    if ph.loss.hard_negatives and "negative" in train.column_names:
        train = train.filter(lambda n: bool(n), input_columns="negative")
    loss = build_contrastive_loss(model, ph.loss, ph.train.deepspeed)
    _model_card(model, cfg, "contrastive")
    seed = seed if seed is not None else (ph.train.seed if ph.train.seed is not None else cfg.seed)
    res = train_model(model, loss_columns(train, ph.loss.hard_negatives), loss, ph.train, out, seed, f"{cfg.name}-contrastive")
    res.metrics["loss"] = {"class": type(loss).__name__, "gather_across_devices": bool(loss.gather_across_devices),
                           "scale": loss.scale, "hard_negatives": ph.loss.hard_negatives}
    return res


def phase_self_distill(cfg: EncoderConfig, model, data: EncoderData, out: Path, seed: int | None = None) -> PhaseResult:
    from polyclinic.encoders.contrastive import resolve_gather
    from polyclinic.encoders.data import loss_columns
    from polyclinic.encoders.self_distill import SelfDistillationLoss

    ph = cfg.phases.self_distill
    teacher = _load(ph.teacher, cfg) if ph.teacher else copy.deepcopy(model)
    teacher.to(model.device)
    train = data.train_pairs
    if ph.loss.hard_negatives and "negative" in train.column_names:
        train = train.filter(lambda n: bool(n), input_columns="negative")
    loss = SelfDistillationLoss(
        model,
        teacher,
        distill_weight=ph.distill_weight,
        contrastive_weight=ph.contrastive_weight,
        scale=ph.loss.scale,
        gather_across_devices=resolve_gather(ph.loss.gather_across_devices),
        symmetric=ph.loss.symmetric,
        include_anchor_anchor=ph.include_anchor_anchor,
    )
    _model_card(model, cfg, "self-distill")
    seed = seed if seed is not None else (ph.train.seed if ph.train.seed is not None else cfg.seed)
    res = train_model(model, loss_columns(train, ph.loss.hard_negatives), loss, ph.train, out, seed, f"{cfg.name}-self-distill")
    res.metrics["loss"] = {"class": type(loss).__name__, **loss.get_config_dict(),
                           "gather_across_devices": bool(loss.contrastive.gather_across_devices)}
    return res


def phase_average(cfg: EncoderConfig, model, data: EncoderData, out: Path, previous: str | None, prev_input, tasks) -> PhaseResult:
    """Average checkpoints of the previous training phase, re-runs with other seeds, or given models."""
    from polyclinic.encoders.averaging import average_models, checkpoint_dirs

    ph = cfg.phases.average
    members: list[tuple[str, Any]] = []
    if ph.source == "models":
        members = [(m, _load(m, cfg)) for m in ph.models]
    elif ph.source == "checkpoints":
        if previous is None:
            raise UserError("phases.average.source=checkpoints needs a training phase before it (contrastive or self_distill)")
        ckpts = checkpoint_dirs(Path(cfg.output_dir) / "phases" / previous / "checkpoints")
        ckpts = [c for c in ckpts if (c / COMPLETE_MARKER).exists()][-ph.last_k:]
        members = [(str(c), _load(str(c), cfg)) for c in ckpts]
        members.append((f"phases/{previous}/final", model))
        # the final model is usually the newest checkpoint too: drop exact duplicates of the last step
        if len(members) >= 2 and _same_weights(members[-1][1], members[-2][1]):
            members.pop(-2)
        if len(members) < 2:
            raise UserError(
                f"phases.average: fewer than two distinct checkpoints in phases/{previous}/checkpoints; "
                f"lower phases.{previous}.train.save_steps or use source=seeds"
            )
    else:  # seeds
        if previous is None:
            raise UserError("phases.average.source=seeds needs a training phase before it (contrastive or self_distill)")
        members.append((f"phases/{previous}/final (seed {cfg.seed})", model))
        for s in ph.seeds:
            run_fn = phase_contrastive if previous == "contrastive" else phase_self_distill
            start = prev_input()
            res = run_fn(cfg, start, data, out / f"seed-{s}", seed=s)
            members.append((f"seed {s}", res.model))
    metrics: dict[str, Any] = {"source": ph.source, "members": [name for name, _ in members], "member_eval": {}}
    if ph.evaluate_members:
        for name, m in members:
            metrics["member_eval"][name] = _evaluate(m, tasks, cfg)
    averaged = average_models([m for _, m in members], ph.weights)
    final = save_model_atomic(averaged, out / "final")
    return PhaseResult(averaged, final, metrics)


def _same_weights(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def phase_distill(cfg: EncoderConfig, teacher, data: EncoderData, out: Path, tasks, base_eval: dict | None = None) -> PhaseResult:
    from polyclinic.encoders.contrastive import resolve_gather
    from polyclinic.encoders.data import load_parallel_files
    from polyclinic.encoders.multilingual import (
        MultilingualDistillLoss,
        add_teacher_labels,
        check_dimensions,
        evaluate_distillation,
        parallel_from_table,
    )

    ph = cfg.phases.distill
    if ph.teacher:
        teacher = _load(ph.teacher, cfg)
    student_name = ph.student or cfg.base_model
    student = _load(student_name, cfg, ph.student_max_seq_length)
    check_dimensions(student, teacher)
    par = ph.parallel
    parts = []
    dev = None
    if par.files:
        ds = load_parallel_files(par.files, par.source_column, par.target_column)
        split_at = int(round(len(ds) * (1 - par.dev_fraction)))
        ds = ds.shuffle(seed=cfg.seed)
        parts.append(ds.select(range(split_at)))
        dev = ds.select(range(split_at, len(ds))) if split_at < len(ds) else None
    if par.from_concepts:
        if data.table is None:
            raise UserError("phases.distill.parallel.from_concepts needs data.concepts")
        train_ids = data.split.train if data.split is not None else None
        ds = parallel_from_table(data.table, par.source_lang, par.target_langs, concept_ids=train_ids, max_pairs=par.max_pairs,
                                 seed=cfg.seed, hard_negatives=ph.hard_negatives)
        parts.append(ds.select_columns(["english", "non_english", *(["negative"] if ph.hard_negatives else [])]))
        if data.split is not None and data.split.dev:
            try:
                held = parallel_from_table(data.table, par.source_lang, par.target_langs, concept_ids=data.split.dev, max_pairs=par.max_heldout_pairs, seed=cfg.seed)
                held = held.select_columns(["english", "non_english"])
                dev = held if dev is None else _concat([dev, held])
            except UserError:
                pass
    train = _concat(parts)
    if par.max_pairs and len(train) > par.max_pairs:
        train = train.shuffle(seed=cfg.seed).select(range(par.max_pairs))
    teacher.eval()
    train = add_teacher_labels(train, teacher, cfg.eval.batch_size)
    metrics: dict[str, Any] = {"teacher": "previous phase" if not ph.teacher else ph.teacher, "student": student_name,
                               "parallel_train": len(train)}
    if dev is not None and len(dev):
        dev = add_teacher_labels(dev, teacher, cfg.eval.batch_size)
        metrics["parallel_dev"] = len(dev)
        if is_main_process():
            metrics["dev_mse_before"] = evaluate_distillation(student, dev, cfg.eval.batch_size)
    if student_name == cfg.base_model and base_eval:
        metrics["student_before"] = base_eval  # the same model was evaluated as the base
    else:
        metrics["student_before"] = _evaluate(student, tasks, cfg)
    loss = MultilingualDistillLoss(student, ph.contrastive_weight, ph.contrastive_scale, resolve_gather("auto"), ph.mse_weight,
                                   symmetric=ph.contrastive_symmetric)
    _model_card(student, cfg, "multilingual distillation")
    seed = ph.train.seed if ph.train.seed is not None else cfg.seed
    res = train_model(student, train, loss, ph.train, out, seed, f"{cfg.name}-distill")
    res.metrics.update(metrics)
    if dev is not None and len(dev) and is_main_process():
        res.metrics["dev_mse_after"] = evaluate_distillation(res.model, dev, cfg.eval.batch_size)
    return res


def _concat(parts):
    from datasets import concatenate_datasets

    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        raise UserError("no parallel sentences")
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


# --------------------------------------------------------------------------------------------- recipe
RESUMABLE_KEYS = ("max_steps", "epochs", "resume", "save_steps", "save_total_limit", "logging_steps", "dataloader_num_workers")


def _phase_hash(cfg: EncoderConfig, phase: str, for_resume: bool = False) -> str:
    """What a phase's result depends on: its own settings, the data, the base model and earlier phases.

    ``for_resume``: leave out the step budget and I/O settings of the phase itself, so a longer run
    (more steps/epochs) continues from the checkpoints of a shorter one, while any other change
    (loss, learning rate, data, earlier phases) starts the phase afresh.
    """
    import hashlib

    relevant = {
        "base_model": cfg.base_model,
        "max_seq_length": cfg.max_seq_length,
        "seed": cfg.seed,
        "data": cfg.data.model_dump(mode="json"),
        "phases": {p: getattr(cfg.phases, p).model_dump(mode="json") for p in PHASE_ORDER[: PHASE_ORDER.index(phase) + 1]
                   if getattr(cfg.phases, p).enabled},
    }
    from polyclinic.manifest import local_input_fingerprints

    # the content of local inputs (pairs / parallel files, teacher and base folders), not only their paths
    relevant["inputs"] = local_input_fingerprints({k: relevant[k] for k in ("base_model", "data", "phases")})
    if for_resume and isinstance(relevant["phases"].get(phase, {}).get("train"), dict):
        for key in RESUMABLE_KEYS:
            relevant["phases"][phase]["train"].pop(key, None)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _summary(metrics: dict) -> dict:
    """Before -> after of the main numbers (recall@10, MRR@10) for every task."""
    base = metrics.get("eval", {}).get("base", {})
    final = metrics.get("eval", {}).get("final", {})
    out = {}
    for task, vals in final.items():
        for m in ("recall@1", "recall@10", "mrr@10"):
            if m in vals and m in base.get(task, {}):
                out[f"{task}/{m}"] = {"before": base[task][m], "after": vals[m], "gain": round(vals[m] - base[task][m], 4)}
    return out


def _write_eval_records(folder: Path, tasks, results: dict) -> None:
    """``folder/eval/<task>.json`` for the model in ``folder/final`` (stamped with its weights hash)."""
    from polyclinic.encoders.evaluation import eval_json
    from polyclinic.evaluation.report import write_eval

    for task in tasks:
        if task.name in results:
            write_eval(folder / "eval" / f"{task.name}.json", eval_json(task, results[task.name], str(folder / "final")))


def run_encoder_recipe(cfg: EncoderConfig, phases: Iterable[str] | None = None, force: bool = False) -> dict:
    """Run the enabled phases of ``cfg`` (or only ``phases``) and return the run's metrics."""
    from transformers import set_seed

    check_runtime(cfg)
    run = Path(cfg.output_dir)
    selected = [normalize_phase(p) for p in phases] if phases else cfg.enabled_phases()
    for p in selected:
        if not getattr(cfg.phases, p).enabled and phases:
            getattr(cfg.phases, p).enabled = True  # asked for explicitly on the command line
    selected = [p for p in PHASE_ORDER if p in selected]
    if not selected:
        raise UserError("no phase enabled in the recipe (phases.<name>.enabled=true)")
    avg = cfg.phases.average
    if avg.enabled and avg.source == "checkpoints":
        for p in ("self_distill", "contrastive"):
            ph = getattr(cfg.phases, p)
            if ph.enabled:
                if ph.train.save_total_limit is not None and ph.train.save_total_limit < avg.last_k:
                    log.info("phases.%s.train.save_total_limit raised to %d to keep the checkpoints to average", p, avg.last_k)
                    ph.train.save_total_limit = avg.last_k
                break
    started = time.perf_counter()
    if is_main_process():
        run.mkdir(parents=True, exist_ok=True)
        clean_stale_tmp(run)
        save_config(cfg, run / "config.yaml")
    wait_for_everyone()
    set_seed(cfg.seed)

    avg = cfg.phases.average
    need_pairs = bool({"contrastive", "self_distill"} & set(selected)) or ("average" in selected and avg.source == "seeds")
    data = prepare_data(cfg, need_pairs=need_pairs)
    tasks = build_eval_tasks(cfg, data)
    # earlier results of this run folder are kept (phases not re-run keep their numbers)
    metrics: dict[str, Any] = read_json(run / "metrics.json") if (run / "metrics.json").exists() else {}
    metrics.update({"name": cfg.name, "base_model": cfg.base_model, "data": data.info, "phases_run": selected})
    metrics.setdefault("phases", {})
    metrics.setdefault("eval", {})
    metrics["eval_tasks"] = {t.name: t.info for t in tasks}

    # the model each phase starts from: the newest complete output of an earlier enabled phase
    def start_model_path(phase: str) -> str:
        for prev in reversed(PHASE_ORDER[: PHASE_ORDER.index(phase)]):
            if prev == "distill" or not getattr(cfg.phases, prev).enabled:
                continue
            folder = run / "phases" / prev / "final"
            if is_complete(folder):
                return str(folder)
        return cfg.base_model

    if "base" not in metrics["eval"] or force:
        log.info("evaluating the base model %s", cfg.base_model)
        metrics["eval"]["base"] = _evaluate(_load(cfg.base_model, cfg), tasks, cfg)
    current = None
    current_path = None
    previous_training: str | None = None
    for phase in selected:
        out = run / "phases" / phase
        digest = _phase_hash(cfg, phase)
        done = out / "metrics.json"
        if not force and is_complete(out / "final") and done.exists() and read_json(done).get("config_hash") == digest:
            log.info("phase %s already complete at %s (config and input contents unchanged): skipped", phase, out)
            current, current_path = None, str(out / "final")
            metrics["phases"][phase] = read_json(done)
            metrics["eval"][phase] = metrics["phases"][phase].get("eval_after", {})
            if phase in ("contrastive", "self_distill"):
                previous_training = phase
            continue
        log.info("=== phase %s ===", phase)
        stamp = out / "config_hash"
        resume_digest = _phase_hash(cfg, phase, for_resume=True)
        if is_main_process():
            if out.exists() and (force or not stamp.exists() or stamp.read_text().strip() != resume_digest):
                # checkpoints of another configuration (or --force): never resume from them
                log.info("phase %s: clearing %s (config changed or --force)", phase, out)
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
            stamp.write_text(resume_digest + "\n")
        wait_for_everyone()
        if current is None and not (phase == "distill" and cfg.phases.distill.teacher):
            current_path = current_path or start_model_path(phase)
            current = _load(current_path, cfg)
        t0 = time.perf_counter()
        if phase == "contrastive":
            res = phase_contrastive(cfg, current, data, out)
        elif phase == "self_distill":
            res = phase_self_distill(cfg, current, data, out)
        elif phase == "average":
            prev = previous_training or next((p for p in ("self_distill", "contrastive") if getattr(cfg.phases, p).enabled), None)
            prev_input = lambda prev=prev: _load(start_model_path(prev), cfg)  # noqa: E731
            res = phase_average(cfg, current, data, out, prev, prev_input, tasks)
        else:
            res = phase_distill(cfg, current, data, out, tasks, metrics["eval"].get("base"))
        res.metrics["wall_seconds"] = round(time.perf_counter() - t0, 1)
        res.metrics["eval_after"] = _evaluate(res.model, tasks, cfg)
        res.metrics["config_hash"] = digest
        if is_main_process():
            # records of this phase's own weights: a release can publish the phase's model (BioLORD's -C / -S)
            _write_eval_records(out, tasks, res.metrics["eval_after"])
            write_json(done, res.metrics)
        metrics["phases"][phase] = res.metrics
        metrics["eval"][phase] = res.metrics["eval_after"]
        current, current_path = res.model, str(res.final_dir)
        if phase in ("contrastive", "self_distill"):
            previous_training = phase
        if is_main_process():
            write_metrics(run, metrics, merge=False)

    # the run's final model: the output of the last phase of the recipe
    last = [p for p in cfg.enabled_phases()][-1]
    last_final = run / "phases" / last / "final"
    if is_main_process() and is_complete(last_final):
        with atomic_directory(run / "final") as tmp:
            shutil.copytree(last_final, tmp, dirs_exist_ok=True)
            (tmp / COMPLETE_MARKER).unlink(missing_ok=True)
        metrics["final_phase"] = last
        metrics["eval"]["final"] = metrics["eval"].get(last) or metrics["phases"].get(last, {}).get("eval_after", {})
        metrics["summary"] = _summary(metrics)
        metrics["wall_seconds_this_invocation"] = round(time.perf_counter() - started, 1)
        _write_eval_records(run, tasks, metrics["eval"]["final"])
        write_metrics(run, metrics, merge=False)
        write_manifest(run, "encoder", cfg, inputs={k: v for k, v in data.inputs.items()},
                       base_model=cfg.base_model, phases=selected)
    wait_for_everyone()
    return metrics
