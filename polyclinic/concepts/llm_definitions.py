"""LLM-written definitions for concepts that have none (BioLORD-2023 used 400k of them for SNOMED).

Requests go through the kit's one LLM client (:mod:`polyclinic.llm.client`): an OpenAI-compatible
endpoint (key read from an environment variable, never stored), a local transformers causal LM
(``local_model``) or any callable ``fn(prompt: str) -> str`` (tests, custom clients). With none configured,
:meth:`DefinitionGenerator.generate` sends NOTHING: it logs that and returns no definitions.

The client caches every raw answer on disk (keyed by model, prompt and generation parameters), so a
re-run sends nothing for prompts it has seen (rejected answers are cached too and re-validated on read,
so changing the validation rules needs no new requests). Answers are validated and rejected with a
reason: ``empty``, ``echo`` (just the name again), ``wrong_language`` (py3langid), ``too_long``; failed
requests count as ``error``; an unreachable endpoint stops the run with a one-line error.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Callable, Iterable

from pydantic import Field

from polyclinic.concepts.table import Concept, ConceptTable, FEATURES, iter_concepts
from polyclinic.errors import UserError
from polyclinic.llm.client import LLMClient, LLMClientConfig
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


class LLMConfig(LLMClientConfig):
    """The shared client settings plus what definition validation needs."""

    cache_dir: str = ".cache/llm_definitions"
    system: str | None = SYSTEM
    logprobs: bool = False  # definitions do not use them
    max_chars: int = Field(400, ge=1)
    min_langid_chars: int = 25  # shorter answers are too short for a language check
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
        wrapped = None
        if fn is not None:
            def wrapped(messages: list[dict]) -> str:
                return fn(messages[-1]["content"])

            wrapped.model_id = getattr(fn, "model_id", getattr(fn, "__name__", "callable"))
        self.client = LLMClient(self.cfg, fn=wrapped)

    @property
    def configured(self) -> bool:
        return self.client.configured

    @property
    def model_id(self) -> str:
        return self.client.model_id

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
            try:
                ans = self.client.complete(prompt)
            except UserError:
                raise  # unreachable endpoint / bad key: a configuration mistake, stop now
            except Exception as exc:  # noqa: BLE001 - one failed request must not stop a long run
                stats["error"] += 1
                log.debug("LLM error for %s: %s", c.concept_id, exc)
                continue
            stats["cached" if ans.cached else "sent"] += 1
            answer = ans.text
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
