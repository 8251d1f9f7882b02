#!/usr/bin/env python
"""Training-loop overhead: polyclinic's loop (accelerate accumulate/backward/clip, scheduler, device-side loss
logging) against a bare PyTorch loop, on the same tiny mT5, the same pre-collated span-corruption batches and
the same starting weights, in the same process. Rounds alternate (bare, polyclinic, bare, ...) and the median
round of each is compared, so machine load hits both alike. Both wall time and process CPU time are measured
(with one thread, CPU time is what the loop itself costs, insensitive to other processes on a shared machine);
the headline ratio is the median of the per-round (paired) CPU-time ratios. Target: polyclinic <= 5% slower.

  python benchmarks/bench_training_loop.py [--steps 60] [--rounds 5] [--threads 1]

Prints steps/s and tokens/s of both and the ratio; writes benchmarks/results/training_loop.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ARCH = {"d_model": 128, "d_ff": 256, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 32,
        "relative_attention_num_buckets": 16, "relative_attention_max_distance": 64}
VOCAB = 1000


def make_batches(n: int, batch: int, input_length: int, seed: int = 0) -> list[dict]:
    from polyclinic.span_corruption import SpanCorruptionCollator

    col = SpanCorruptionCollator(None, input_length, 0.15, 3.0, seed=seed, eos_token_id=1, pad_token_id=0,
                                 sentinel_ids=list(range(VOCAB - 1, VOCAB - 101, -1)))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        rows = rng.integers(3, VOCAB - 100, size=(batch, col.raw_length))
        out.append(col([{"input_ids": rows[i], "index": k * batch + i} for i in range(batch)]))
    return out, col.targets_length


def build(cfg):
    from polyclinic.pretraining.model import build_model

    class _Tok:  # vocabulary facts build_model needs
        pad_token_id, eos_token_id = 0, 1

        def __len__(self):
            return VOCAB

    torch.manual_seed(0)
    return build_model(cfg.model, _Tok())


def bare_loop(model, batches, opt_cfg, max_grad_norm, log_every) -> float:
    from polyclinic.pretraining.optim import build_optimizer

    opt = build_optimizer(model, opt_cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model.train()
    t, c = time.perf_counter(), time.process_time()
    pending = []
    for i, batch in enumerate(batches, 1):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        pending.append(loss.detach())
        if i % log_every == 0:
            torch.stack(pending).tolist()
            pending = []
    return time.perf_counter() - t, time.process_time() - c


def polyclinic_loop(model, batches, cfg) -> float:
    from polyclinic.pretraining.optim import build_optimizer
    from polyclinic.pretraining.schedules import build_scheduler
    from polyclinic.pretraining.trainer import LoopState, make_accelerator, reset_accelerate_state, run_loop

    accelerator = make_accelerator(cfg, with_trackers=False)
    opt = build_optimizer(model, cfg.optimizer)
    sched = build_scheduler(opt, cfg.scheduler, len(batches))
    model, opt, sched = accelerator.prepare(model, opt, sched)
    model.train()
    t, c = time.perf_counter(), time.process_time()
    run_loop(accelerator, model, opt, sched, batches, LoopState(), len(batches), cfg.training.max_grad_norm,
             cfg.training.log_every, tokens_per_step=0)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    reset_accelerate_state()
    return dt, dc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training_loop.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from polyclinic.pretraining.config import load_pretrain_config

    arch = "{" + ", ".join(f"{k}: {v}" for k, v in ARCH.items()) + "}"
    cfg = load_pretrain_config(None, [
        "run_dir=/tmp/polyclinic-bench-loop", "tokenizer=unused", "data.corpus=unused", f"model.config={arch}",
        "optimizer.name=adamw", "optimizer.lr=1e-3", "training.log_every=10", "training.max_grad_norm=1.0",
        "training.mixed_precision=no", f"training.cpu_threads={args.threads}", "logging.trackers=[]",
    ])
    batches, targets_length = make_batches(args.steps, args.batch, args.input_length)
    tokens_per_step = args.batch * (args.input_length + targets_length)
    base = build(cfg)
    # warm-up (allocator, kernels) for both paths
    bare_loop(copy.deepcopy(base), batches[:5], cfg.optimizer, 1.0, 10)
    polyclinic_loop(copy.deepcopy(base), batches[:5], cfg)
    bare_t, poly_t = [], []
    for _ in range(args.rounds):
        bare_t.append(bare_loop(copy.deepcopy(base), batches, cfg.optimizer, 1.0, cfg.training.log_every))
        poly_t.append(polyclinic_loop(copy.deepcopy(base), batches, cfg))
    bw, bc = [x[0] for x in bare_t], [x[1] for x in bare_t]
    pw, pc = [x[0] for x in poly_t], [x[1] for x in poly_t]
    ratio_cpu = statistics.median(p / b for p, b in zip(pc, bc))
    ratio_wall = statistics.median(p / b for p, b in zip(pw, bw))
    b, p = statistics.median(bc), statistics.median(pc)

    def side(cpu, wall):
        m = statistics.median(cpu)
        return {"cpu_seconds_median": m, "wall_seconds_median": statistics.median(wall),
                "steps_per_s": args.steps / m, "tokens_per_s": args.steps * tokens_per_step / m,
                "wall_steps_per_s": args.steps / statistics.median(wall), "rounds_cpu_s": cpu, "rounds_wall_s": wall}

    result = {
        "benchmark": "training_loop_overhead",
        "model": ARCH | {"vocab_size": VOCAB, "parameters": sum(x.numel() for x in base.parameters())},
        "batch": args.batch, "input_length": args.input_length, "targets_length": targets_length,
        "steps_per_round": args.steps, "rounds": args.rounds, "threads": args.threads,
        "bare": side(bc, bw),
        "polyclinic": side(pc, pw),
        "ratio_polyclinic_over_bare_time": ratio_cpu,
        "ratio_polyclinic_over_bare_wall_time": ratio_wall,
        "overhead_percent": 100.0 * (ratio_cpu - 1.0),
        "target_overhead_percent": 5.0,
        "device": "cpu", "torch": torch.__version__, "platform": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"bare PyTorch loop : {result['bare']['steps_per_s']:.2f} steps/s  {result['bare']['tokens_per_s']:.0f} tokens/s")
    print(f"polyclinic loop   : {result['polyclinic']['steps_per_s']:.2f} steps/s  {result['polyclinic']['tokens_per_s']:.0f} tokens/s")
    print(f"time ratio polyclinic/bare = {ratio_cpu:.3f} CPU time ({result['overhead_percent']:+.1f}%, target <= +5%), "
          f"{ratio_wall:.3f} wall time (median of {args.rounds} paired rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
