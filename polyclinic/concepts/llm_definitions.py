"""LLM-written definitions for concepts that have none (BioLORD-2023 used 400k of them for SNOMED).

Backends:
  - an OpenAI-compatible endpoint (``POST {base_url}/chat/completions``, stdlib ``urllib``), with the key
    read from an environment variable (never stored in configs, caches or logs);
  - a local transformers causal LM (``local_model`` path; chat template when the tokenizer has one);
  - any callable ``fn(prompt: str) -> str`` (tests, custom clients).
With none configured, :meth:`DefinitionGenerator.generate` sends NOTHING: it logs that and returns no
definitions.

Every raw answer is cached on disk, one JSON file per ``sha256(model, prompt)`` (atomic writes), so a
re-run sends nothing for prompts it has seen (rejected answers are cached too, and re-validated on read, so
changing the validation rules needs no new requests). Answers are validated and rejected with a reason:
``empty``, ``echo`` (just the name again), ``wrong_language`` (py3langid), ``too_long``; HTTP failures
count as ``error``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from pydantic import Field

from polyclinic.concepts.table import Concept, ConceptTable, FEATURES, iter_concepts
from polyclinic.config import StrictModel
from polyclinic.errors import UserError
from polyclinic.io import atomic_write_text
from polyclinic.logging_utils import get_logger

log = get_logger("concepts.llm")

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "it": "Italian", "pt": "Portuguese",
                  "ca": "Catalan", "pl": "Polish", "de": "German", "nl": "Dutch"}
PROMPT = (
    "Write a one-sentence medical definition, in {language}, of the concept \"{name}\"{context}. "
    "Answer with the definition only, without repeating the question."
)
SYSTEM = "You are a careful clinical terminologist. You write short, factual definitions."
REJECT_REASONS = ("empty", "echo", "wrong_language", "too_long")


class LLMConfig(StrictModel):
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1 ; None = no endpoint
    model: str | None = None  # model name sent to the endpoint
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (optional for local servers)
    local_model: str | None = None  # a transformers causal-LM folder (used when base_url is None)
    cache_dir: str = ".cache/llm_definitions"
    temperature: float = 0.0
    max_tokens: int = Field(120, ge=1)
    max_chars: int = Field(400, ge=1)
    min_langid_chars: int = 25  # shorter answers are too short for a language check
    timeout_s: float = 60.0
    retries: int = Field(2, ge=0)
    only_missing: bool = True  # generate only for rows without a definition


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def clean_answer(text: str) -> str:
    text = (text or "").strip()
    text = re.sub(r"^(definition|definición|définition|definizione|definição|definició|definicja|definition)\s*:\s*", "",
                  text, flags=re.I)
    text = text.strip().strip('"“”«»').strip()
    return " ".join(text.split())


_LANGID = None


def detect_language(text: str) -> str:
    global _LANGID
    if _LANGID is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _LANGID = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _LANGID.classify(text)[0]


def validate_definition(answer: str, name: str, lang: str, max_chars: int = 400, min_langid_chars: int = 25) -> tuple[str, str | None]:
    """(cleaned answer, rejection reason or None)."""
    text = clean_answer(answer)
    if not text:
        return text, "empty"
    n, t = _norm(name), _norm(text)
    if not t or t == n or (n and t.replace(n, "").strip() in ("", "is", "es", "est", "è", "é")):
        return text, "echo"
    if len(text) > max_chars:
        return text, "too_long"
    if len(text) >= min_langid_chars and detect_language(text) != lang:
        return text, "wrong_language"
    return text, None


def build_prompt(concept: Concept, parent_names: Iterable[str] = ()) -> str:
    parents = [p for p in parent_names if p]
    context = f" (a kind of {', '.join(parents)})" if parents else ""
    return PROMPT.format(language=LANGUAGE_NAMES.get(concept.lang, concept.lang), name=concept.name, context=context)


@dataclasses.dataclass
class GenerationResult:
    definitions: dict[tuple[str, str, str], str]  # (concept_id, system, lang) -> accepted definition
    stats: dict[str, int]
    rejected: dict[str, int]


class DefinitionGenerator:
    def __init__(self, config: LLMConfig | None = None, fn: Callable[[str], str] | None = None):
        self.cfg = config or LLMConfig()
        self.fn = fn
        self._local = None
        if self.cfg.base_url and not self.cfg.model:
            raise UserError("LLM endpoint given without a model name (--llm-model / llm.model)")

    # ------------------------------------------------------------------ backends
    @property
    def configured(self) -> bool:
        return bool(self.fn or self.cfg.base_url or self.cfg.local_model)

    @property
    def model_id(self) -> str:
        if self.fn is not None:
            return getattr(self.fn, "model_id", getattr(self.fn, "__name__", "callable"))
        return self.cfg.model or self.cfg.local_model or ""

    def _endpoint(self) -> str:
        base = self.cfg.base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"

    def _http(self, prompt: str) -> str:
        body = json.dumps({
            "model": self.cfg.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last: Exception | None = None
        for attempt in range(self.cfg.retries + 1):
            req = urllib.request.Request(self._endpoint(), data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return data["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code not in (408, 429, 500, 502, 503, 504):
                    break
            except (urllib.error.URLError, TimeoutError, OSError, KeyError, IndexError, ValueError) as exc:
                last = exc
            if attempt < self.cfg.retries:
                time.sleep(min(2 ** attempt, 10))
        raise RuntimeError(f"LLM request failed: {last}")

    def _local_generate(self, prompt: str) -> str:
        if self._local is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.cfg.local_model)
            model = AutoModelForCausalLM.from_pretrained(self.cfg.local_model)
            model.eval()
            self._local = (tok, model)
        tok, model = self._local
        import torch

        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                                          add_generation_prompt=True, return_tensors="pt", return_dict=True)
        else:
            ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=self.cfg.max_tokens, do_sample=self.cfg.temperature > 0,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    def _ask(self, prompt: str) -> str:
        if self.fn is not None:
            return self.fn(prompt)
        if self.cfg.base_url:
            return self._http(prompt)
        return self._local_generate(prompt)

    # ------------------------------------------------------------------ cache
    def cache_key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps([self.model_id, prompt], ensure_ascii=False).encode()).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return Path(self.cfg.cache_dir) / key[:2] / f"{key}.json"

    def cached(self, prompt: str) -> str | None:
        p = self._cache_path(self.cache_key(prompt))
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))["answer"]
        except (ValueError, KeyError):
            return None  # a corrupt entry is simply asked again

    def _store(self, prompt: str, answer: str) -> None:
        key = self.cache_key(prompt)
        atomic_write_text(self._cache_path(key), json.dumps({"model": self.model_id, "prompt": prompt, "answer": answer},
                                                            ensure_ascii=False))

    # ------------------------------------------------------------------ main entry
    def generate(self, concepts: Iterable[Concept], parent_names: Callable[[Concept], list[str]] | None = None,
                 limit: int | None = None) -> GenerationResult:
        """Definitions for ``concepts`` (those without one when ``only_missing``). Sends nothing when no
        backend is configured."""
        todo = [c for c in concepts if not (self.cfg.only_missing and c.definition)]
        if limit is not None:
            todo = todo[:limit]
        stats = collections.Counter(requested=len(todo))
        rejected: collections.Counter = collections.Counter({r: 0 for r in REJECT_REASONS})
        defs: dict[tuple[str, str, str], str] = {}
        if not self.configured:
            log.warning("no LLM endpoint or local model configured: nothing sent, %d concepts left without definitions",
                        len(todo))
            stats["not_configured"] = len(todo)
            return GenerationResult(defs, dict(stats), dict(rejected))
        from tqdm.auto import tqdm

        import sys

        for c in tqdm(todo, desc="definitions", disable=not sys.stderr.isatty()):
            prompt = build_prompt(c, parent_names(c) if parent_names else ())
            answer = self.cached(prompt)
            if answer is None:
                try:
                    answer = self._ask(prompt)
                except Exception as exc:  # noqa: BLE001 - one failed request must not stop a long run
                    stats["error"] += 1
                    log.debug("LLM error for %s: %s", c.concept_id, exc)
                    continue
                stats["sent"] += 1
                self._store(prompt, answer)
            else:
                stats["cached"] += 1
            text, reason = validate_definition(answer, c.name, c.lang, self.cfg.max_chars, self.cfg.min_langid_chars)
            if reason:
                rejected[reason] += 1
                continue
            stats["accepted"] += 1
            defs[(c.concept_id, c.system, c.lang)] = text
        log.info("definitions: %s; rejected %s", dict(stats), dict(rejected))
        return GenerationResult(defs, dict(stats), dict(rejected))


def define_table(table: ConceptTable, generator: DefinitionGenerator, limit: int | None = None) -> tuple[ConceptTable, GenerationResult]:
    """Fill empty ``definition`` cells of ``table`` with accepted LLM definitions."""
    from polyclinic.concepts.table import ConceptIndex

    index = ConceptIndex(table)

    def parents(c: Concept) -> list[str]:
        return [index.name(p, c.lang) or "" for p in index.parents.get(c.concept_id, [])][:2]

    result = generator.generate(index.rows, parents, limit=limit)
    if not result.definitions:
        return table, result
    rows = []
    for c in iter_concepts(table):
        d = result.definitions.get((c.concept_id, c.system, c.lang))
        if d and not c.definition:
            c.definition = d
        rows.append(c.to_row())
    import datasets

    return datasets.Dataset.from_list(rows, features=FEATURES), result
