"""Held-out span-corruption loss and token accuracy of a seq2seq model on a corpus' validation split.

The validation text of each language is packed exactly like training data and corrupted with a fixed seed and
the row id as index, so the same model always gets the same number and two models are compared on identical
batches. Loss is the token-weighted mean cross-entropy over target tokens (labels != -100); token accuracy is
the fraction of target tokens whose argmax prediction (teacher forcing) is right.

Used by the trainer for periodic evaluation (:func:`span_corruption_loss`, rank-sharded) and standalone by
``polyclinic eval span-corruption`` (:func:`evaluate_span_corruption`, which also writes the eval JSON).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from polyclinic.logging_utils import get_logger

log = get_logger("evaluation.span_corruption")

TASK = "span-corruption"
_MODEL_KEYS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels")


@torch.no_grad()
def span_corruption_sums(model, batches: Iterable[dict], device, autocast=None) -> dict[str, float]:
    """Sum of token losses, number of target tokens and correct tokens over ``batches`` (no reduction
    across processes). ``autocast`` is a context-manager factory (e.g. ``accelerator.autocast``)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    tokens = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    rows = 0
    try:
        for batch in batches:
            skip = "_skip" in batch
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k in _MODEL_KEYS}
            labels = batch.pop("labels")
            ctx = autocast() if autocast is not None else contextlib.nullcontext()
            with ctx:
                logits = model(**batch).logits
            if skip:  # a padding forward so every rank runs as many (ZeRO-3); not counted
                continue
            logits = logits.float()
            mask = labels != -100
            loss = torch.nn.functional.cross_entropy(
                logits.view(-1, logits.size(-1)), labels.clamp_min(0).view(-1), reduction="none"
            ).view_as(labels)
            loss_sum += (loss * mask).sum().double()
            tokens += mask.sum().double()
            correct += ((logits.argmax(-1) == labels) & mask).sum().double()
            rows += labels.shape[0]
    finally:
        model.train(was_training)
    return {"loss_sum": loss_sum, "tokens": tokens, "correct": correct, "rows": rows}


def _finish(sums: dict) -> dict[str, float]:
    tokens = float(sums["tokens"])
    if tokens == 0:
        return {"loss": float("nan"), "token_accuracy": float("nan"), "target_tokens": 0}
    return {
        "loss": float(sums["loss_sum"]) / tokens,
        "token_accuracy": float(sums["correct"]) / tokens,
        "target_tokens": int(tokens),
    }


def span_corruption_loss(model, batches: Iterable[dict], accelerator=None, device=None) -> dict[str, float]:
    """Loss/accuracy over ``batches``; with an ``accelerator`` each rank passes its own share and the sums are
    reduced across processes (so the result is the same on every rank)."""
    if accelerator is not None:
        sums = span_corruption_sums(model, batches, accelerator.device, accelerator.autocast)
        stacked = torch.stack([sums["loss_sum"], sums["tokens"], sums["correct"]]).to(accelerator.device)
        stacked = accelerator.reduce(stacked, reduction="sum")
        return _finish({"loss_sum": stacked[0], "tokens": stacked[1], "correct": stacked[2]})
    return _finish(span_corruption_sums(model, batches, device or next(model.parameters()).device))


def evaluate_span_corruption(
    model_path: str | Path,
    corpus_dir: str | Path,
    langs: Sequence[str] | None = None,
    split: str = "validation",
    input_length: int = 512,
    batch_size: int = 8,
    max_batches: int | None = None,
    seed: int = 0,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    tokenizer_path: str | Path | None = None,
    output: str | Path | None = None,
    device: str | None = None,
    text_column: str = "text",
) -> dict[str, Any]:
    """Held-out span-corruption loss per language and overall (token-weighted) for a saved model.

    ``max_batches`` limits the rows *per language* to ``max_batches * batch_size`` (the set of rows, hence the
    numbers, does not depend on ``batch_size`` otherwise). Returns the eval-JSON dict
    (``{"task", "dataset", "split", "language", "metrics", "model", "num_examples", ...}``) with
    ``metrics = {"loss", "token_accuracy", "loss_<lang>", "token_accuracy_<lang>"}`` and ``per_language``;
    writes it to ``output`` when given (e.g. ``runs/<run>/eval/span-corruption.json``).
    """
    from polyclinic.pretraining.data import corpus_languages, eval_batches, load_split, pack_split
    from polyclinic.pretraining.model import load_model
    from polyclinic.span_corruption import SpanCorruptionCollator
    from polyclinic.tokenization import load_tokenizer

    start = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path or model_path)
    model = load_model(str(model_path))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    collator = SpanCorruptionCollator(tokenizer, input_length, noise_density, mean_noise_span_length, seed=seed)
    langs = list(langs) if langs else corpus_languages(corpus_dir, split)
    per_lang: dict[str, dict] = {}
    totals = {"loss_sum": 0.0, "tokens": 0.0, "correct": 0.0}
    rows_total = 0
    for lang in langs:
        ds = load_split(corpus_dir, [lang], split, text_column)
        packed = pack_split(ds, tokenizer, collator.raw_length, text_column=text_column, desc=f"pack {lang} {split}")
        max_rows = None if max_batches is None else max_batches * batch_size
        sums = span_corruption_sums(model, eval_batches(packed, collator, batch_size, max_rows), dev)
        res = _finish(sums)
        res["num_examples"] = int(sums["rows"])
        res["documents"] = len(ds)
        per_lang[lang] = res
        for k in totals:
            totals[k] += float(sums[k])
        rows_total += int(sums["rows"])
        if res["num_examples"] == 0:
            log.warning("%s/%s: fewer than one row of %d tokens, language skipped", lang, split, collator.raw_length)
    overall = _finish(totals)
    metrics: dict[str, float] = {"loss": overall["loss"], "token_accuracy": overall["token_accuracy"]}
    for lang, res in per_lang.items():
        metrics[f"loss_{lang}"] = res["loss"]
        metrics[f"token_accuracy_{lang}"] = res["token_accuracy"]
    result = {
        "task": TASK,
        "dataset": str(corpus_dir),
        "split": split,
        "language": langs[0] if len(langs) == 1 else "multilingual",
        "languages": langs,
        "metrics": metrics,
        "per_language": per_lang,
        "model": str(model_path),
        "num_examples": rows_total,
        "target_tokens": overall["target_tokens"],
        "settings": {
            "input_length": input_length,
            "raw_length": collator.raw_length,
            "targets_length": collator.targets_length,
            "noise_density": noise_density,
            "mean_noise_span_length": mean_noise_span_length,
            "batch_size": batch_size,
            "max_batches": max_batches,
            "seed": seed,
        },
        "seconds": round(time.perf_counter() - start, 3),
    }
    if output is not None:
        from polyclinic.evaluation.report import write_eval

        write_eval(output, result)  # stamps the hash of the weights it measured
    return result


__all__ = ["TASK", "evaluate_span_corruption", "span_corruption_loss", "span_corruption_sums"]
