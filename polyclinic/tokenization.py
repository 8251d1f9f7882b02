"""Tokenizers for span corruption: load any T5/mT5 tokenizer and check its sentinels, or train one offline.

T5's vocabulary layout: pad=0, eos=1, unk=2, and 100 sentinels ``<extra_id_0..99>`` at the *top* of the
vocabulary (``<extra_id_0>`` = ``len(tokenizer) - 1``, counting down). Span corruption relies on that, so
every tokenizer is checked id by id (never by string lookups: transformers 5's
``get_sentinel_tokens()`` is unreliable, and old slow tokenizers added a "▁" after sentinels).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("tokenizer")

NUM_SENTINELS = 100


def sentinel_ids(tokenizer, num_sentinels: int = NUM_SENTINELS) -> list[int]:
    """Ids of ``<extra_id_0>``, ``<extra_id_1>``… (descending from the last vocabulary id)."""
    top = len(tokenizer) - 1
    return [top - k for k in range(num_sentinels)]


def check_sentinels(tokenizer, num_sentinels: int = NUM_SENTINELS, name: str = "tokenizer") -> list[int]:
    """Verify T5's layout; return the sentinel ids. Raises :class:`UserError` with a fix when it is wrong."""
    ids = sentinel_ids(tokenizer, num_sentinels)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    bad = [(k, i, t) for k, (i, t) in enumerate(zip(ids, tokens)) if t != f"<extra_id_{k}>"]
    if bad:
        k, i, t = bad[0]
        raise UserError(
            f"{name} has no T5 sentinels at the top of its vocabulary: id {i} should be <extra_id_{k}> but is {t!r} "
            f"({len(bad)} of {num_sentinels} wrong). Span corruption needs {num_sentinels} sentinels with <extra_id_0> "
            f"as the last id. Use an mT5/T5 tokenizer, or train one with `polyclinic tokenizer train`."
        )
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise UserError(f"{name} must define eos and pad tokens (T5 layout: pad=0, eos=1)")
    return ids


def load_tokenizer(name_or_path: str | os.PathLike, num_sentinels: int = NUM_SENTINELS, check: bool = True):
    """Load a tokenizer from a folder or Hub id and check its sentinels.

    A folder holding only ``spiece.model`` (as SentencePiece writes it) is loaded as a T5 tokenizer with
    ``extra_ids`` sentinels added; transformers 5 ignores ``T5Tokenizer(vocab_file=...)``, so the folder
    route is the one that works.
    """
    from transformers import AutoTokenizer, T5Tokenizer

    path = Path(name_or_path)
    try:
        if path.is_dir() and (path / "spiece.model").is_file() and not (path / "tokenizer_config.json").is_file():
            tok = T5Tokenizer.from_pretrained(str(path), extra_ids=num_sentinels)
        else:
            tok = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as exc:
        raise UserError(f"cannot load tokenizer {str(name_or_path)!r}: {exc}") from None
    if check:
        check_sentinels(tok, num_sentinels, name=str(name_or_path))
    return tok


def train_tokenizer(
    texts: Iterable[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 8000,
    num_sentinels: int = NUM_SENTINELS,
    character_coverage: float = 1.0,
    input_sentence_size: int = 2_000_000,
    byte_fallback: bool = False,
    seed_text: Iterable[str] = (),
):
    """Train a SentencePiece unigram model with T5's layout and save a loadable tokenizer folder.

    ``vocab_size`` counts the SentencePiece pieces; the final tokenizer has ``vocab_size + num_sentinels`` ids.
    ``byte_fallback`` stays off by default: transformers' conversion to the fast backend drops byte pieces,
    so full ``character_coverage`` of the training text is what keeps accents and symbols lossless.
    """
    import io

    import sentencepiece as spm

    from polyclinic.io import atomic_directory

    output_dir = Path(output_dir)
    # Refuse before any training: span corruption needs sentinels, and a 0-sentinel tokenizer would be
    # written (and marked COMPLETE) before anything noticed.
    if isinstance(num_sentinels, bool) or not isinstance(num_sentinels, int) or not 1 <= num_sentinels <= 1000:
        raise UserError(f"num_sentinels must be between 1 and 1000 (T5 uses 100), got {num_sentinels!r}")
    if not isinstance(vocab_size, int) or vocab_size < 10:
        raise UserError(f"vocab_size must be an integer >= 10, got {vocab_size!r}")

    def _lines() -> Iterator[str]:
        for t in seed_text:
            yield t
        for t in texts:
            t = t.strip()
            if t:
                yield t

    # model_writer instead of model_prefix: the trainer spec stored inside spiece.model records
    # model_prefix, and a temp path of the build machine must not be published with the tokenizer.
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_lines(),
            model_writer=writer,
            vocab_size=vocab_size,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            character_coverage=character_coverage,
            byte_fallback=byte_fallback,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise UserError(f"SentencePiece training failed: {exc}") from None
    with atomic_directory(output_dir) as out:
        (out / "spiece.model").write_bytes(writer.getvalue())
        tok = load_tokenizer(out, num_sentinels=num_sentinels, check=True)
        tok.save_pretrained(str(out))
    log.info("trained tokenizer: %d pieces + %d sentinels -> %s", vocab_size, num_sentinels, output_dir)
    return load_tokenizer(output_dir, num_sentinels=num_sentinels)
