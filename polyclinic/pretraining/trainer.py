"""The span-corruption training loop (one loop for CPU, 2-rank CPU, GPUs, DeepSpeed and FSDP via accelerate).

``train(cfg)`` does, in order: refuse fp16, build the Accelerator (the launch config decides devices and
distribution), clean leftovers of an interrupted run, load the tokenizer, pack train/validation data, build
the model (untied lm_head kept untied), optimizer and schedule, ``prepare`` them, resume from the newest
complete and intact checkpoint (``training.resume: auto``; damaged ones are skipped with a warning, a changed
config is refused with a diff unless ``--allow-config-change``: see :mod:`polyclinic.pretraining.checkpoint`)
and run. Outputs under ``run_dir``: ``config.yaml``,
``manifest.json``, ``checkpoints/step-N/``, ``logs/`` (TensorBoard + ``loss.jsonl``), ``final/``,
``metrics.json``, ``loss.png``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from polyclinic.distributed import use_cpu_ranks_without_gpu
from polyclinic.errors import UserError
from polyclinic.io import atomic_directory
from polyclinic.logging_utils import get_logger, setup_logging
from polyclinic.pretraining.config import FP16_REFUSAL, PretrainConfig

log = get_logger("pretraining.trainer")

LOSS_LOG = "loss.jsonl"


# --------------------------------------------------------------------------------------------------- setup
def refuse_fp16(cfg: PretrainConfig) -> None:
    """fp16 from the recipe, the launch config (ACCELERATE_MIXED_PRECISION) or a DeepSpeed json is refused."""
    if cfg.training.mixed_precision == "fp16":
        raise UserError(FP16_REFUSAL)
    if cfg.training.mixed_precision == "auto" and os.environ.get("ACCELERATE_MIXED_PRECISION", "no") == "fp16":
        raise UserError(FP16_REFUSAL + " (it came from the accelerate config / `accelerate launch --mixed_precision fp16`)")


def _check_trackers(names: list[str]) -> list[str]:
    modules = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}
    for name in names:
        if importlib.util.find_spec(modules[name]) is None:
            raise UserError(f"logging.trackers: {name!r} is requested but not installed (pip install {modules[name]})")
    return names


def make_accelerator(cfg: PretrainConfig, with_trackers: bool = True):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    refuse_fp16(cfg)
    use_cpu_ranks_without_gpu()
    run_dir = Path(cfg.run_dir)
    kwargs: dict[str, Any] = dict(
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
        # we step the scheduler once per optimizer step ourselves; accelerate would step it num_processes times
        step_scheduler_with_optimizer=False,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if with_trackers and cfg.logging.trackers:
        kwargs["log_with"] = _check_trackers(list(cfg.logging.trackers))
    if cfg.training.mixed_precision != "auto":
        kwargs["mixed_precision"] = cfg.training.mixed_precision
    if cfg.model.compile:
        kwargs["dynamo_backend"] = "inductor"
    accelerator = Accelerator(**kwargs)
    if accelerator.mixed_precision == "fp16":
        raise UserError(FP16_REFUSAL)
    ds = getattr(accelerator.state, "deepspeed_plugin", None)
    if ds is not None:
        dsc = ds.deepspeed_config
        if dsc.get("fp16", {}).get("enabled") is True:
            raise UserError(FP16_REFUSAL + " (the DeepSpeed config enables fp16)")
        dsc["train_micro_batch_size_per_gpu"] = cfg.training.per_device_batch_size
        dsc["train_batch_size"] = (
            cfg.training.per_device_batch_size * accelerator.num_processes * cfg.training.gradient_accumulation_steps
        )
        dsc["gradient_accumulation_steps"] = cfg.training.gradient_accumulation_steps
        if dsc.get("gradient_clipping", "auto") == "auto":
            dsc["gradient_clipping"] = float(cfg.training.max_grad_norm or 0.0)
        dsc.setdefault("zero_allow_untested_optimizer", True)  # Adafactor / AdamWScale are client optimizers
    if cfg.training.cpu_threads and accelerator.device.type == "cpu":
        torch.set_num_threads(cfg.training.cpu_threads)
    if cfg.training.tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons so ``train`` can be called again in one process."""
    from accelerate.state import AcceleratorState, GradientState

    with contextlib.suppress(Exception):
        AcceleratorState._reset_state(True)
    with contextlib.suppress(Exception):
        GradientState._reset_state()


def _flat_config(cfg: PretrainConfig) -> dict[str, Any]:
    from polyclinic.config import config_to_dict

    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(node, (int, float, str, bool)):
            out[prefix] = node
        else:
            out[prefix] = str(node)

    walk("", config_to_dict(cfg))
    return out


def hardware(accelerator) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device_type": accelerator.device.type,
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "mixed_precision": accelerator.mixed_precision,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if accelerator.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(accelerator.device)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(accelerator.device).total_memory / 2**30, 1)
    return info


# ----------------------------------------------------------------------------------------------- the loop
@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    elapsed_before: float = 0.0  # wall seconds of previous sessions (resume)
    last_loss: float = float("nan")
    history: list = field(default_factory=list)


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def run_loop(
    accelerator,
    model,
    optimizer,
    scheduler,
    batches: Iterable[dict],
    state: LoopState,
    total_steps: int,
    max_grad_norm: float | None = None,
    log_every: int = 10,
    on_log: Callable[[int, dict], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    progress=None,
    tokens_per_step: int = 0,
) -> LoopState:
    """Consume micro-batches until ``total_steps`` optimizer steps: accumulate, clip, step, schedule, log.

    Losses stay on the device between log steps (one reduction across ranks per log), so a log interval of 10
    costs one host sync per 10 steps.
    """
    pending: list[torch.Tensor] = []
    micro_losses: list[torch.Tensor] = []
    t_last = time.perf_counter()
    steps_since = 0
    for batch in batches:
        if state.step >= total_steps:
            break
        batch = _to_device(batch, accelerator.device)
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            micro_losses.append(loss.detach())
            accelerator.backward(loss)
            if accelerator.sync_gradients and max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        state.step += 1
        steps_since += 1
        pending.append(torch.stack(micro_losses).float().mean())
        micro_losses = []
        if state.step % log_every == 0 or state.step == total_steps:
            losses = accelerator.reduce(torch.stack(pending), reduction="mean").tolist()
            pending = []
            now = time.perf_counter()
            dt = max(now - t_last, 1e-9)
            t_last = now
            lr = scheduler.get_last_lr()[0]
            first = state.step - len(losses) + 1
            for i, value in enumerate(losses):
                state.history.append({"step": first + i, "loss": value})
            state.last_loss = losses[-1]
            record = {
                "loss": sum(losses) / len(losses),
                "lr": lr,
                "steps_per_s": steps_since / dt,
                "tokens_per_s": steps_since * tokens_per_step / dt,
                "per_step_losses": losses,
            }
            steps_since = 0
            if on_log is not None:
                on_log(state.step, record)
            if progress is not None:
                progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        if progress is not None:
            progress.update(1)
        if on_step is not None:
            on_step(state.step)
    return state


# ------------------------------------------------------------------------------------------------- train
def _quiet_accelerate_logs() -> None:
    """accelerate logs every file of every checkpoint at INFO, and warns that the encoder/decoder embeddings
    (which share ``shared.weight`` by design) were de-duplicated on save; we log one line per checkpoint."""
    import logging

    if os.environ.get("POLYCLINIC_LOG_LEVEL", "INFO").upper() == "DEBUG":
        return
    for name in ("accelerate.checkpointing", "accelerate.accelerator"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) a pretraining run; returns the metrics written to ``run_dir/metrics.json``."""
    setup_logging()
    _quiet_accelerate_logs()
    accelerator = make_accelerator(cfg)
    try:
        return _train(cfg, accelerator)
    finally:
        with contextlib.suppress(Exception):
            accelerator.end_training()
        if accelerator.num_processes == 1:
            reset_accelerate_state()


def _resolve_resume_on_main(accelerator, cfg: PretrainConfig) -> Path | None:
    """The checkpoint to resume from, chosen (and verified: hashes are read) by the main process only and
    broadcast, so a refusal reaches every rank as the same UserError instead of leaving the others waiting."""
    from polyclinic.pretraining import checkpoint as ckpt

    result: list[Any] = [None, None]
    if accelerator.is_main_process:
        try:
            found = ckpt.resolve_resume(cfg.training.resume, cfg.run_dir, cfg.training.checkpoint_hashes)
            result = [str(found) if found else None, None]
        except UserError as exc:
            result = [None, str(exc)]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        result = broadcast_object_list(result)
    if result[1]:
        raise UserError(result[1])
    return Path(result[0]) if result[0] else None


def _input_fingerprints(cfg: PretrainConfig) -> dict[str, str | None]:
    """Content fingerprints of the local inputs (corpus, tokenizer, initial model); None for Hub ids."""
    from polyclinic.manifest import fingerprint_path

    paths = {"corpus": cfg.data.corpus, "tokenizer": cfg.tokenizer_path}
    if cfg.model.name_or_path:
        paths["model"] = cfg.model.name_or_path
    return {k: fingerprint_path(v) if Path(v).exists() else None for k, v in paths.items()}


def _check_resume_config(cfg: PretrainConfig, resume_path: Path, run_config: dict, fingerprints: dict) -> dict:
    """Compare this launch's config and inputs with the checkpoint's; refuse a change unless it is allowed.

    Checkpoints written before the config was stored in ``trainer_state.json`` are compared with the run's
    ``config.yaml`` (the config of the launch that wrote them), without input fingerprints."""
    import yaml

    from polyclinic.io import read_json
    from polyclinic.pretraining import checkpoint as ckpt

    saved = read_json(resume_path / ckpt.STATE_FILE)
    old = saved.get("config")
    new = dict(run_config)
    if isinstance(old, dict):
        old = dict(old)
        for k, v in (saved.get("inputs") or {}).items():
            old[f"inputs.{k}"] = v
            new[f"inputs.{k}"] = fingerprints.get(k)
    else:
        previous = Path(cfg.run_dir) / "config.yaml"
        if not previous.is_file():
            return {}
        try:
            old = ckpt.flatten(yaml.safe_load(previous.read_text(encoding="utf-8")) or {})
        except (yaml.YAMLError, UnicodeDecodeError):
            log.warning("%s is unreadable: the config of %s cannot be compared with this launch's", previous, resume_path)
            return {}
    return ckpt.check_resume_config(resume_path, old, new, cfg.training.allow_config_change)


def _train(cfg: PretrainConfig, accelerator) -> dict[str, Any]:
    from accelerate.utils import broadcast_object_list, set_seed
    from tqdm.auto import tqdm

    from polyclinic.config import config_hash, config_to_dict, save_config
    from polyclinic.io import read_json
    from polyclinic.evaluation.span_corruption import span_corruption_loss
    from polyclinic.manifest import write_manifest, write_metrics
    from polyclinic.pretraining import checkpoint as ckpt
    from polyclinic.pretraining.data import (
        MicroBatches,
        eval_batches,
        load_split,
        micro_batch_loader,
        pack_split,
    )
    from polyclinic.pretraining.model import create_model, flops_per_row, parameter_counts, peak_flops
    from polyclinic.pretraining.optim import build_optimizer
    from polyclinic.pretraining.schedules import build_scheduler
    from polyclinic.span_corruption import SpanCorruptionCollator
    from polyclinic.tokenization import load_tokenizer

    t_start = time.perf_counter()
    tc = cfg.training
    run_dir = Path(cfg.run_dir)
    main = accelerator.is_main_process
    world = accelerator.num_processes
    launch_id = broadcast_object_list([f"{os.getpid()}"])[0] if world > 1 else f"{os.getpid()}"

    if main:
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        ckpt.clean_leftovers(run_dir)
    accelerator.wait_for_everyone()
    resume_path = _resolve_resume_on_main(accelerator, cfg)
    run_config = ckpt.flatten(config_to_dict(cfg))
    input_fingerprints = _input_fingerprints(cfg)
    changes: dict[str, Any] = {}
    if resume_path is not None:
        changes = _check_resume_config(cfg, resume_path, run_config, input_fingerprints)
    if main:
        if changes:
            saved_step = int(read_json(resume_path / ckpt.STATE_FILE).get("step", 0))
            ckpt.record_config_changes(run_dir, saved_step, resume_path, changes)
            log.warning("resuming %s under a changed config (%s), recorded in %s:\n%s", resume_path, ckpt.ALLOW_FLAG,
                        ckpt.CHANGES_FILE, ckpt.format_changes(changes))
        save_config(cfg, run_dir / "config.yaml")
    accelerator.wait_for_everyone()

    # ---- data
    tokenizer = load_tokenizer(cfg.tokenizer_path)
    collator = SpanCorruptionCollator(
        tokenizer, cfg.data.input_length, cfg.data.noise_density, cfg.data.mean_noise_span_length, seed=cfg.seed
    )
    eval_collator = SpanCorruptionCollator(
        tokenizer, cfg.data.input_length, cfg.data.noise_density, cfg.data.mean_noise_span_length, seed=cfg.seed + 1
    )
    raw_length, targets_length = collator.raw_length, collator.targets_length
    with accelerator.main_process_first():
        train_split = pack_split(
            load_split(cfg.data.corpus, cfg.data.langs, "train", cfg.data.text_column),
            tokenizer, raw_length, cfg.data.text_column, cfg.data.num_proc, desc="pack train",
        )
        try:
            val_split = pack_split(
                load_split(cfg.data.corpus, cfg.data.langs, cfg.data.validation_split, cfg.data.text_column),
                tokenizer, raw_length, cfg.data.text_column, cfg.data.num_proc, desc="pack validation",
            )
        except UserError as exc:
            log.warning("no held-out evaluation: %s", exc)
            val_split = None

    per_device, ga = tc.per_device_batch_size, tc.gradient_accumulation_steps
    rows_per_step = per_device * world * ga
    micro_per_epoch = len(train_split) // (per_device * world)
    if micro_per_epoch == 0:
        raise UserError(
            f"{cfg.data.corpus}: {len(train_split)} packed rows of {raw_length} tokens is less than one global micro-batch "
            f"({per_device} x {world} processes); add data or lower training.per_device_batch_size / data.input_length"
        )
    total_steps = tc.max_steps or max(1, int(tc.num_epochs * micro_per_epoch) // ga)
    tokens_in, tokens_tgt = rows_per_step * cfg.data.input_length, rows_per_step * targets_length
    tokens_per_step = tokens_in + tokens_tgt

    # ---- model, optimizer, schedule
    set_seed(cfg.seed)
    model = create_model(cfg, tokenizer)
    counts = parameter_counts(model)
    untied = not cfg.model.tie_word_embeddings
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = build_scheduler(optimizer, cfg.scheduler, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    loop = LoopState()
    if resume_path is not None:
        ckpt_state = ckpt.load_checkpoint(accelerator, resume_path)
        loop.step = int(ckpt_state["step"])
        loop.elapsed_before = float(ckpt_state.get("elapsed_s", 0.0))
        loop.last_loss = float(ckpt_state.get("last_loss", float("nan")))
        if int(ckpt_state.get("rows_per_step", rows_per_step)) != rows_per_step:
            raise UserError(
                f"cannot resume {resume_path}: it was trained with {ckpt_state['rows_per_step']} rows per step, this launch "
                f"has {rows_per_step} (per_device_batch_size x processes x gradient_accumulation_steps); keep the global batch"
            )
        if untied:
            from polyclinic.pretraining.model import is_tied

            assert not is_tied(accelerator.unwrap_model(model)), "resume tied the lm_head"
        log.info("resumed from %s at step %d", resume_path, loop.step)

    loss_log = run_dir / "logs" / LOSS_LOG
    if main:
        _truncate_loss_log(loss_log, loop.step)
        inputs = {"corpus": cfg.data.corpus, "tokenizer": cfg.tokenizer_path}
        if cfg.model.name_or_path:
            inputs["model"] = cfg.model.name_or_path
        write_manifest(run_dir, "pretrain", cfg, inputs, packing={"train": train_split.stats,
                       "validation": val_split.stats if val_split is not None else None},
                       resumed_from=str(resume_path) if resume_path else None,
                       **({"config_changes": read_json(run_dir / ckpt.CHANGES_FILE)}
                          if (run_dir / ckpt.CHANGES_FILE).is_file() else {}))
    if accelerator.log_with:
        accelerator.init_trackers(cfg.logging.project, config=_flat_config(cfg))

    log.info(
        "pretrain: %d processes (%s, %s), %d rows/step (%d x %d x %d), %d tokens/step, steps %d -> %d, params %s",
        world, accelerator.device, accelerator.mixed_precision, rows_per_step, per_device, world, ga,
        tokens_per_step, loop.step, total_steps, f"{counts['total']:,}",
    )

    eval_bs = tc.eval_batch_size or per_device

    def evaluate() -> dict[str, float] | None:
        if val_split is None or len(val_split) == 0:
            return None
        batches = eval_batches(val_split, eval_collator, eval_bs, tc.eval_max_rows, accelerator.process_index, world)
        return span_corruption_loss(model, batches, accelerator)

    def state_dict_for_ckpt(step: int) -> dict:
        return {
            "step": step,
            "micro_step": step * ga,
            "rows_per_step": rows_per_step,
            "world_size": world,
            "elapsed_s": loop.elapsed_before + (time.perf_counter() - t_start),
            "last_loss": loop.last_loss,
            "config_hash": config_hash(cfg),
            # what the checkpoint was trained with: a resume under anything else is refused with a diff
            "config": run_config,
            "inputs": input_fingerprints,
        }

    last_eval: dict[str, Any] = {}

    def on_log(step: int, rec: dict) -> None:
        if main:
            with loss_log.open("a", encoding="utf-8") as fh:
                first = step - len(rec["per_step_losses"]) + 1
                for i, v in enumerate(rec["per_step_losses"]):
                    fh.write(f'{{"step": {first + i}, "loss": {v!r}}}\n')
        accelerator.log({"train/loss": rec["loss"], "train/lr": rec["lr"], "train/tokens_per_s": rec["tokens_per_s"],
                         "train/tokens_seen": step * tokens_per_step}, step=step)

    def on_step(step: int) -> None:
        if tc.eval_every and step % tc.eval_every == 0 and step < total_steps:
            res = evaluate()
            if res is not None:
                last_eval.update(res, step=step)
                accelerator.log({"eval/loss": res["loss"], "eval/token_accuracy": res["token_accuracy"]}, step=step)
                if main:
                    with loss_log.open("a", encoding="utf-8") as fh:
                        fh.write(f'{{"step": {step}, "eval_loss": {res["loss"]!r}}}\n')
                    log.info("step %d: eval loss %.4f, token accuracy %.4f", step, res["loss"], res["token_accuracy"])
        if tc.save_every and step % tc.save_every == 0 and step < total_steps:
            ckpt.save_checkpoint(accelerator, run_dir, step, state_dict_for_ckpt(step), tc.keep_last, launch_id)

    dataset = MicroBatches(train_split, collator, per_device, world, accelerator.process_index, cfg.seed,
                           cfg.data.shuffle, start=loop.step * ga, stop=total_steps * ga)
    loader = micro_batch_loader(dataset, cfg.data.num_workers, pin_memory=accelerator.device.type == "cuda")
    show = main and cfg.logging.progress_bar and sys.stderr.isatty()
    progress = tqdm(total=total_steps, initial=loop.step, desc="pretrain", unit="step", disable=not show, dynamic_ncols=True)
    start_step = loop.step
    model.train()
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    t_loop = time.perf_counter()
    run_loop(accelerator, model, optimizer, scheduler, loader, loop, total_steps, tc.max_grad_norm, tc.log_every,
             on_log, on_step, progress, tokens_per_step)
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    loop_s = time.perf_counter() - t_loop
    progress.close()
    if loop.step < total_steps:
        raise RuntimeError(f"data ran out at step {loop.step} of {total_steps}")

    final_eval = evaluate()
    if final_eval is not None:
        accelerator.log({"eval/loss": final_eval["loss"], "eval/token_accuracy": final_eval["token_accuracy"]},
                        step=loop.step)
        if main:
            with loss_log.open("a", encoding="utf-8") as fh:
                fh.write(f'{{"step": {loop.step}, "eval_loss": {final_eval["loss"]!r}}}\n')

    # ---- final model (every rank takes part in gathering the state dict: ZeRO-3 / FSDP)
    if tc.save_final:
        save_final(accelerator, model, tokenizer, run_dir / "final")
    if tc.save_every and loop.step % tc.save_every == 0 and loop.step > start_step:
        ckpt.save_checkpoint(accelerator, run_dir, loop.step, state_dict_for_ckpt(loop.step), tc.keep_last, launch_id)

    # ---- metrics
    steps_run = loop.step - start_step
    wall = loop.elapsed_before + (time.perf_counter() - t_start)
    hw = hardware(accelerator)
    flops_step = flops_per_row(counts, cfg.data.input_length, targets_length) * rows_per_step
    tokens_per_s = steps_run * tokens_per_step / loop_s if loop_s > 0 and steps_run else None
    metrics: dict[str, Any] = {
        "final_train_loss": loop.last_loss,
        "eval_loss": final_eval["loss"] if final_eval else None,
        "eval_token_accuracy": final_eval["token_accuracy"] if final_eval else None,
        "steps": loop.step,
        "steps_this_session": steps_run,
        "world_size": world,
        "distributed_type": hw["distributed_type"],
        "per_device_batch_size": per_device,
        "gradient_accumulation_steps": ga,
        "rows_per_step": rows_per_step,
        "input_length": cfg.data.input_length,
        "targets_length": targets_length,
        "raw_length": raw_length,
        "tokens_per_step": tokens_per_step,
        "tokens_seen": loop.step * tokens_per_step,
        "input_tokens_seen": loop.step * tokens_in,
        "target_tokens_seen": loop.step * tokens_tgt,
        "raw_tokens_seen": loop.step * rows_per_step * raw_length,
        "epochs_seen": loop.step * ga / micro_per_epoch,
        "train_rows": len(train_split),
        "wall_time_s": round(wall, 3),
        "train_loop_s_this_session": round(loop_s, 3),
        "tokens_per_s": tokens_per_s,
        "steps_per_s": steps_run / loop_s if loop_s > 0 and steps_run else None,
        "device": str(accelerator.device),
        "hardware": hw,
        "mixed_precision": accelerator.mixed_precision,
        "parameters": counts,
        "lm_head_untied": untied,
        "flops_per_step_estimate": flops_step,
        "resumed_from": str(resume_path) if resume_path else None,
    }
    if accelerator.device.type == "cuda" and loop_s > 0 and steps_run:
        achieved = flops_step * steps_run / loop_s
        peak = peak_flops(hw.get("gpu"))
        metrics["achieved_flops_per_s"] = achieved
        metrics["mfu"] = achieved / (peak * world) if peak else None
    if main:
        write_metrics(run_dir, metrics, merge=False)
        if cfg.logging.loss_plot:
            with contextlib.suppress(Exception):
                plot_loss(loss_log, run_dir / "loss.png", title=f"{run_dir.name}: span-corruption loss")
        log.info("done: step %d, train loss %.4f, eval loss %s, %.1f s", loop.step, loop.last_loss,
                 f"{final_eval['loss']:.4f}" if final_eval else "n/a", wall)
    accelerator.wait_for_everyone()
    return metrics


def save_final(accelerator, model, tokenizer, folder: Path) -> None:
    """``final/``: safetensors model + tokenizer that ``from_pretrained`` loads, written atomically."""
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        with atomic_directory(folder) as tmp:
            unwrapped.save_pretrained(str(tmp), state_dict=state_dict, is_main_process=True)
            tokenizer.save_pretrained(str(tmp))
    accelerator.wait_for_everyone()


def _truncate_loss_log(path: Path, step: int) -> None:
    """On (re)start keep only entries up to the resume step, so the log reads like one uninterrupted run."""
    import json

    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:
            continue  # a line cut by a kill
    from polyclinic.io import atomic_write_text

    atomic_write_text(path, "".join(x + "\n" for x in kept))


def read_loss_log(path: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train [(step, loss)], eval [(step, loss)]) from ``logs/loss.jsonl``."""
    import json

    train, evals = [], []
    p = Path(path)
    if not p.is_file():
        return train, evals
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "loss" in rec:
            train.append((rec["step"], rec["loss"]))
        if "eval_loss" in rec:
            evals.append((rec["step"], rec["eval_loss"]))
    return train, evals


def plot_loss(loss_log: str | Path, out: str | Path, title: str = "span-corruption loss") -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polyclinic.io import atomic_write_bytes

    train, evals = read_loss_log(loss_log)
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([s for s, _ in train], [v for _, v in train], lw=1, label="train")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="held-out")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / target token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())


__all__ = ["LoopState", "make_accelerator", "plot_loss", "read_loss_log", "refuse_fp16", "run_loop", "save_final", "train"]
