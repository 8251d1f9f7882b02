"""Corpus statistics: kept documents/words/characters/tokens per language, split and source; rejections by
reason (with the first examples and their ``file:line``); language-verification outcomes.

Why excerpts are masked: ``stats.json`` is published with the dataset, and a rejected record is by definition
one the builder did not clean (an unsupported language, a corrupt line) and may carry a patient's name, ID,
phone, birth date or e-mail. Each kept example is therefore its locator (``where``: ``file:line``, row or index,
the record's id in its source) + ``reason`` + an excerpt and a detail passed through
:func:`polyclinic.phi.mask_phi` *before* truncation (a value cut in half would no longer be recognised), and
the log line shows only the masked detail."""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from typing import Any

from polyclinic.logging_utils import get_logger
from polyclinic.phi import mask_phi

log = get_logger("data.stats")

EXCERPT_CHARS = 160
_MASK_WINDOW = 20_000  # masked before cutting; placeholders cannot pull text from beyond this into the excerpt


_ABS_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/:'\"]+/)+(?=[^\s/:'\"])")


def _no_abs_paths(text: str) -> str:
    """``/home/me/data/notes.jsonl:12`` -> ``data/notes.jsonl:12`` under the working folder, else
    ``notes.jsonl:12``: stats.json is published, and absolute paths of the build machine must not be."""
    if not text or "/" not in text:
        return text
    cwd = os.getcwd().rstrip("/") + "/"
    text = text.replace(cwd, "")
    return _ABS_PATH.sub("", text)


def _masked(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text`` after PHI masking (see the module docstring)."""
    if not text:
        return ""
    return mask_phi(text[:_MASK_WINDOW])[:limit]


def _zero(tokens: bool) -> dict[str, int]:
    d = {"documents": 0, "words": 0, "characters": 0}
    if tokens:
        d["tokens"] = 0
    return d


class TokenCounter:
    """Counts tokens with a tokenizer (batched); ``None`` tokenizer means tokens are not counted."""

    def __init__(self, tokenizer_path: str | None):
        self.path = tokenizer_path
        self.tok = None
        if tokenizer_path:
            from polyclinic.errors import UserError

            try:
                from transformers import AutoTokenizer

                self.tok = AutoTokenizer.from_pretrained(tokenizer_path)
            except Exception as exc:  # noqa: BLE001
                raise UserError(f"could not load tokenizer {tokenizer_path!r} for token counts: {exc}") from None

    @property
    def enabled(self) -> bool:
        return self.tok is not None

    def count(self, texts: list[str]) -> list[int]:
        enc = self.tok(texts, add_special_tokens=False)["input_ids"]
        return [len(x) for x in enc]


class CorpusStats:
    def __init__(self, max_examples: int = 5, tokens: TokenCounter | None = None):
        self.max_examples = max_examples
        self.tokens = tokens if tokens is not None and tokens.enabled else None
        t = self.tokens is not None
        self.by_lang: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: _zero(t)))
        self.by_source: dict[str, dict[str, Any]] = {}
        self.rejected: Counter = Counter()
        self.rejected_by_lang: dict[str, Counter] = defaultdict(Counter)
        self.examples: list[dict[str, str]] = []
        self._examples_per_reason: Counter = Counter()
        self.langid = {"checked": 0, "agreed": 0, "mismatch": 0, "uncertain_mismatch": 0, "skipped_short": 0,
                       "dropped": 0, "retagged": Counter(), "kept_mismatch": 0}
        self.read = 0
        self._pending: list[tuple[str, str, str, str]] = []

    def _source(self, source: str) -> dict[str, Any]:
        s = self.by_source.get(source)
        if s is None:
            s = self.by_source[source] = {"read": 0, "kept": _zero(self.tokens is not None), "languages": Counter(),
                                          "rejected": Counter()}
        return s

    def on_read(self, source: str) -> None:
        self.read += 1
        self._source(source)["read"] += 1

    def on_reject(self, source: str, where: str, reason: str, lang: str | None, detail: str = "", text: str = "") -> None:
        self.rejected[reason] += 1
        self.rejected_by_lang[lang or "unknown"][reason] += 1
        self._source(source)["rejected"][reason] += 1
        if self._examples_per_reason[reason] < self.max_examples:
            self._examples_per_reason[reason] += 1
            ex = {"reason": reason, "source": _no_abs_paths(source), "where": _no_abs_paths(where), "lang": str(lang or "")}
            detail = _no_abs_paths(_masked(detail, 200))
            if detail:
                ex["detail"] = detail
            if text:
                ex["excerpt"] = _masked(text, EXCERPT_CHARS)
            self.examples.append(ex)
            log.warning("rejected (%s) %s%s", reason, where, f": {detail[:160]}" if detail else "")
        elif self._examples_per_reason[reason] == self.max_examples:
            self._examples_per_reason[reason] += 1
            log.warning("more %r rejections follow; not logged one by one (see stats.json)", reason)

    def on_keep(self, source: str, lang: str, split: str, text: str, words: int) -> None:
        d = self.by_lang[lang][split]
        d["documents"] += 1
        d["words"] += words
        d["characters"] += len(text)
        s = self._source(source)
        s["kept"]["documents"] += 1
        s["kept"]["words"] += words
        s["kept"]["characters"] += len(text)
        s["languages"][lang] += 1
        if self.tokens is not None:
            self._pending.append((source, lang, split, text))
            if len(self._pending) >= 256:
                self.flush_tokens()

    def flush_tokens(self) -> None:
        if not self._pending or self.tokens is None:
            return
        counts = self.tokens.count([p[3] for p in self._pending])
        for (source, lang, split, _), n in zip(self._pending, counts):
            self.by_lang[lang][split]["tokens"] += n
            self.by_source[source]["kept"]["tokens"] += n
        self._pending = []

    @property
    def kept(self) -> int:
        return sum(d["documents"] for splits in self.by_lang.values() for d in splits.values())

    def to_dict(self, languages: list[str], tokenizer: str | None) -> dict[str, Any]:
        self.flush_tokens()
        t = self.tokens is not None
        langs: dict[str, Any] = {}
        for lang in languages:
            splits = self.by_lang.get(lang, {})
            total = _zero(t)
            for d in splits.values():
                for k in total:
                    total[k] += d[k]
            langs[lang] = {
                **total,
                "splits": {s: dict(d) for s, d in sorted(splits.items())},
                "rejected": dict(sorted(self.rejected_by_lang.get(lang, Counter()).items())),
            }
        other_langs = {k: dict(v) for k, v in self.rejected_by_lang.items() if k not in languages}
        totals = _zero(t)
        for v in langs.values():
            for k in totals:
                totals[k] += v[k]
        sources = {
            name: {
                "read": s["read"],
                **s["kept"],
                "languages": dict(s["languages"]),
                "rejected": dict(sorted(s["rejected"].items())),
            }
            for name, s in self.by_source.items()
        }
        lid = dict(self.langid)
        lid["retagged"] = dict(lid["retagged"])
        return {
            "counts": {
                "words": "whitespace-separated words",
                "characters": "Unicode code points after cleaning",
                "tokens": f"tokens of {tokenizer} (no special tokens)" if t else "not counted (set `tokenizer:` in the config)",
            },
            "read": self.read,
            "kept": totals["documents"],
            "totals": totals,
            "languages": langs,
            "rejected_other_languages": other_langs,
            "sources": sources,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "rejected_examples": self.examples,
            "language_verification": lid,
        }
