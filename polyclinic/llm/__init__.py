"""The kit's one LLM client (OpenAI-compatible endpoints and local transformers chat models).

Every stage that asks a language model something (concept definitions, teacher labels) goes through
:class:`polyclinic.llm.client.LLMClient`, so caching, retries, concurrency, constrained answers,
log-probabilities and provenance behave the same everywhere.
"""

from polyclinic.llm.client import LLMAnswer, LLMClient, LLMClientConfig, LLMError, span_probability, validate_schema

__all__ = ["LLMAnswer", "LLMClient", "LLMClientConfig", "LLMError", "span_probability", "validate_schema"]
