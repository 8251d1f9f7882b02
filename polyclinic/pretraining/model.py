"""Build or load the mT5 model, keeping an untied ``lm_head`` untied.

What transformers 5.23 actually does (measured):
  - ``MT5Config.__post_init__`` forces ``tie_word_embeddings=True`` whatever is passed or serialised, so a model
    *built from a config* always shares ``lm_head.weight`` with ``shared.weight``.
  - Setting ``model.config.tie_word_embeddings = False`` *after* construction sticks for that object and is what
    ``save_pretrained`` writes; a later ``model.tie_weights()`` then ties nothing.
  - ``from_pretrained`` re-creates the config (tie forced to True) but, when the checkpoint stores both
    ``shared.weight`` and ``lm_head.weight`` with *different values*, it logs a warning and leaves them untied.
    If the two stored tensors happen to be *equal* (e.g. a head cloned from the embeddings and never trained),
    it ties them: training would then silently update one shared matrix.
  - The MT5 forward no longer rescales the decoder output by ``d_model**-0.5`` when tied, so tying only changes
    which parameters exist.

So: :func:`untie_lm_head` gives the head its own parameter (fresh init, never a clone) and sets the config flag
on the object; :func:`load_model` re-checks after every load from a folder whose safetensors store a separate
``lm_head.weight`` and unties when transformers tied it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("pretraining.model")


def is_tied(model) -> bool:
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    if head is None:
        return False
    return head.weight is emb.weight or head.weight.data_ptr() == emb.weight.data_ptr()


def untie_lm_head(model, init_std: float | None = None):
    """Give ``lm_head`` its own parameter (if it shares the embeddings) and mark the config untied."""
    model.config.tie_word_embeddings = False
    if hasattr(model, "all_tied_weights_keys") and isinstance(model.all_tied_weights_keys, dict):
        model.all_tied_weights_keys.pop("lm_head.weight", None)
    if is_tied(model):
        emb = model.get_input_embeddings().weight
        std = init_std if init_std is not None else model.config.d_model**-0.5
        new = torch.empty_like(emb.detach())
        with torch.no_grad():
            new.normal_(0.0, std)
        model.lm_head.weight = torch.nn.Parameter(new)
    return model


def _stored_keys(folder: Path) -> set[str] | None:
    """Tensor names stored in a local safetensors checkpoint (None when not a local safetensors folder)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text())["weight_map"])
    single = folder / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), "pt") as fh:
            return set(fh.keys())
    return None


def _hub_has_separate_head(name_or_path: str) -> bool:
    """After from_pretrained of a Hub id: did the checkpoint store lm_head.weight? (cache lookup, no download)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors.index.json", "model.safetensors"):
            cached = try_to_load_from_cache(name_or_path, fname)
            if isinstance(cached, str):
                keys = _stored_keys(Path(cached).parent)
                if keys is not None:
                    return "lm_head.weight" in keys
    except Exception:  # noqa: BLE001 - best effort only
        pass
    return False


def build_model(model_cfg, tokenizer):
    """A fresh MT5ForConditionalGeneration from ``model.config`` (vocab size from the tokenizer)."""
    from transformers import MT5Config, MT5ForConditionalGeneration

    arch = dict(model_cfg.config or {})
    arch.setdefault("vocab_size", len(tokenizer))
    if arch["vocab_size"] < len(tokenizer):
        raise UserError(f"model.config.vocab_size={arch['vocab_size']} is smaller than the tokenizer ({len(tokenizer)} ids)")
    arch.setdefault("feed_forward_proj", "gated-gelu")
    arch["dropout_rate"] = model_cfg.dropout_rate
    arch.setdefault("pad_token_id", tokenizer.pad_token_id)
    arch.setdefault("eos_token_id", tokenizer.eos_token_id)
    arch.setdefault("decoder_start_token_id", tokenizer.pad_token_id)
    arch.pop("tie_word_embeddings", None)
    try:
        config = MT5Config(**arch)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model.config: {exc}") from None
    model = MT5ForConditionalGeneration(config)
    if not model_cfg.tie_word_embeddings:
        untie_lm_head(model)
    return model


def load_model(name_or_path: str, dropout_rate: float | None = None, tie_word_embeddings: bool | None = None, **kwargs):
    """``AutoModelForSeq2SeqLM.from_pretrained`` that keeps a separately stored ``lm_head`` separate.

    ``tie_word_embeddings=None`` keeps what the checkpoint stores (a stored ``lm_head.weight`` means untied);
    False unties (fresh head if it was tied); True leaves transformers' tying.
    """
    from transformers import AutoModelForSeq2SeqLM

    if dropout_rate is not None:
        kwargs["dropout_rate"] = dropout_rate
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load model {name_or_path!r}: {exc}") from None
    folder = Path(name_or_path)
    keys = _stored_keys(folder) if folder.is_dir() else None
    stored_separately = ("lm_head.weight" in keys) if keys is not None else _hub_has_separate_head(name_or_path)
    want_untied = (not tie_word_embeddings) if tie_word_embeddings is not None else stored_separately
    if want_untied:
        if is_tied(model) and stored_separately:
            # transformers tied two stored tensors because their values were equal: restore two parameters
            # holding the stored values (not a fresh init: the stored head is the checkpoint's head).
            model.config.tie_word_embeddings = False
            model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
            log.warning("%s stores an lm_head equal to the embeddings; transformers tied them, untied again", name_or_path)
        untie_lm_head(model)
    return model


def prepare_for_training(model, model_cfg):
    model.config.use_cache = False
    if model_cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def create_model(cfg, tokenizer):
    """The model a :class:`PretrainConfig` asks for (before ``accelerator.prepare``)."""
    mc = cfg.model
    if mc.name_or_path is not None:
        model = load_model(mc.name_or_path, dropout_rate=mc.dropout_rate, tie_word_embeddings=mc.tie_word_embeddings)
        if model.config.vocab_size < len(tokenizer):
            raise UserError(
                f"tokenizer {cfg.tokenizer_path!r} has {len(tokenizer)} ids but model {mc.name_or_path!r} only "
                f"{model.config.vocab_size}: use the model's own tokenizer"
            )
    else:
        model = build_model(mc, tokenizer)
    return prepare_for_training(model, mc)


def parameter_counts(model) -> dict[str, int]:
    """Unique parameters per part (tied tensors counted once)."""
    seen: set[int] = set()
    counts = {"encoder": 0, "decoder": 0, "embeddings": 0, "lm_head": 0, "total": 0}
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        counts["total"] += n
        if name.startswith("encoder."):
            counts["encoder"] += n
        elif name.startswith("decoder."):
            counts["decoder"] += n
        elif name.startswith("lm_head"):
            counts["lm_head"] += n
        else:
            counts["embeddings"] += n
    return counts


def flops_per_row(counts: dict[str, int], input_length: int, targets_length: int) -> float:
    """Training FLOPs of one row, 6·params·tokens split between encoder and decoder (nanoT5's estimate).

    Embedding lookups cost nothing; the lm_head (a matmul) runs on decoder tokens. Attention score FLOPs are
    left out, as in the usual 6ND estimate.
    """
    enc = counts["encoder"]
    dec = counts["decoder"] + counts["lm_head"]
    if counts["lm_head"] == 0:  # tied: the head matmul still runs
        dec += counts["embeddings"]
    return 6.0 * (enc * input_length + dec * targets_length)


_PEAK_BF16 = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "A10": 125e12, "L4": 121e12, "L40": 181e12, "A6000": 155e12}


def peak_flops(device_name: str | None) -> float | None:
    if not device_name:
        return None
    for key, value in _PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def describe_untied(model) -> dict[str, Any]:
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    return {
        "tied": is_tied(model),
        "config_tie_word_embeddings": bool(model.config.tie_word_embeddings),
        "same_values": bool(emb.shape == head.shape and torch.equal(emb.detach().cpu(), head.detach().cpu())),
        "head_rms": float(head.detach().float().pow(2).mean().sqrt()),
    }
