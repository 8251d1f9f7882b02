"""Text normalisation: Unicode NFC, control/format characters, whitespace, length filters."""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

from polyclinic.data.config import CleaningConfig


@lru_cache(maxsize=1)
def _invisible_re() -> re.Pattern:
    """Control (Cc, except tab/newline/CR) and format (Cf, except ZWJ/ZWNJ) characters, e.g. soft hyphens."""
    keep = {"\t", "\n", "\r", "\u200c", "\u200d"}
    chars = []
    start = prev = None
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        bad = unicodedata.category(ch) in ("Cc", "Cf") and ch not in keep
        if bad:
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            chars.append((start, prev))
            start = None
    if start is not None:
        chars.append((start, prev))
    cls = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in chars)
    return re.compile(f"[{cls}]+")


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")
_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")  # runs of whitespace other than newline (single spaces untouched)
_SPACE_NL = re.compile(r" *\n *")
_MANY_NL = re.compile(r"\n{3,}")
_ANY_SPACE = re.compile(r"\s+")


def clean_text(text: str, cfg: CleaningConfig) -> str:
    ascii_only = text.isascii()  # ASCII is invariant under NFC/NFKC and has no format characters
    if cfg.unicode_normalization != "none" and not ascii_only:
        text = unicodedata.normalize(cfg.unicode_normalization, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.strip_control_chars:
        text = (_ASCII_CONTROL if ascii_only else _invisible_re()).sub("", text)
    if cfg.collapse_whitespace:
        if cfg.keep_newlines:
            text = _HSPACE.sub(" ", text)
            text = _SPACE_NL.sub("\n", text)
            text = _MANY_NL.sub("\n\n", text)
        else:
            text = _ANY_SPACE.sub(" ", text)
    return text.strip()


def count_words(text: str) -> int:
    return len(text.split())


def length_reason(text: str, n_words: int, cfg: CleaningConfig) -> str | None:
    """Rejection reason for a cleaned text, or None when it passes the length filters."""
    if not text:
        return "empty"
    if len(text) < cfg.min_chars:
        return "too_short_chars"
    if n_words < cfg.min_words:
        return "too_short_words"
    if cfg.max_chars is not None and len(text) > cfg.max_chars:
        return "too_long_chars"
    return None
