"""The kit's LLM client against the fake OpenAI-compatible server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import math

import pytest

from fake_openai import FakeOpenAI, closed_port_url
from polyclinic.errors import UserError
from polyclinic.llm.client import LLMClient, LLMClientConfig, span_probability, validate_schema

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]}}, "required": ["label"],
          "additionalProperties": False}


def _cfg(url, tmp_path, **kw):
    return LLMClientConfig(base_url=url, model="fake", cache_dir=str(tmp_path / "cache"), retries=2, backoff_s=0, **kw)


def test_schema_constraint_cache_and_provenance(tmp_path):
    with FakeOpenAI(lambda body: json.dumps({"label": "a"})) as srv:
        client = LLMClient(_cfg(srv.url, tmp_path, prompt_version="p7"))
        ans = client.complete("x?", schema=SCHEMA)
        body = srv.requests[0]["body"]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert ans.ok and ans.parsed == {"label": "a"} and not ans.cached
        assert ans.provenance()["prompt_version"] == "p7" and ans.provenance()["model"] == "fake"
        again = LLMClient(_cfg(srv.url, tmp_path, prompt_version="p7")).complete("x?", schema=SCHEMA)
        assert len(srv.requests) == 1 and again.cached and again.created == ans.created
        LLMClient(_cfg(srv.url, tmp_path, temperature=0.7)).complete("x?", schema=SCHEMA)  # other params: new key
        assert len(srv.requests) == 2


def test_invalid_answers_are_rejected_even_without_server_support(tmp_path):
    answers = iter(['{"label": "c"}', "not json", '{"label": "b", "extra": 1}', "  "])
    with FakeOpenAI(lambda body: next(answers), json_schema=False) as srv:
        client = LLMClient(_cfg(srv.url, tmp_path))
        errors = [client.complete(f"q{i}", schema=SCHEMA).error for i in range(4)]
        # the server refused json_schema once (HTTP 400); the client stepped down and kept validating itself
        assert srv.requests[0]["body"]["response_format"]["type"] == "json_schema"
        assert "guided_json" in srv.requests[1]["body"]
        assert all((r["body"].get("response_format") or {}).get("type") != "json_schema" for r in srv.requests[1:])
    assert errors[0].startswith("schema:") and "not in enum" in errors[0]
    assert errors[1] == "invalid_json" and "unexpected" in errors[2] and errors[3] == "empty"


def test_retries_with_backoff_then_success_and_concurrency(tmp_path):
    with FakeOpenAI(lambda body: body["messages"][-1]["content"].upper(), fail_first=2) as srv:
        client = LLMClient(_cfg(srv.url, tmp_path, concurrency=3))
        assert client.complete("hello").text == "HELLO"
        assert len(srv.requests) == 3  # two 503s retried
        got = dict(client.complete_many([f"p{i}" for i in range(10)]))
    assert sorted(got) == list(range(10)) and all(got[i].text == f"P{i}" for i in range(10))


def test_logprobs_give_span_probability(tmp_path):
    with FakeOpenAI(lambda body: '{"label": "b"}', token_logprob=-0.2) as srv:
        ans = LLMClient(_cfg(srv.url, tmp_path)).complete("q", schema=SCHEMA)
        assert srv.requests[0]["body"]["logprobs"] is True
    start = ans.text.index('"b"') + 1
    p = span_probability(ans.logprobs, ans.text, start, start + 1)
    assert p == pytest.approx(math.exp(-0.2))  # one 3-char token covers the label


def test_closed_port_fails_fast_and_unconfigured_sends_nothing(tmp_path):
    with pytest.raises(UserError, match="cannot reach"):
        LLMClient(_cfg(closed_port_url(), tmp_path, )).complete("q")
    client = LLMClient(LLMClientConfig(cache_dir=str(tmp_path / "c")))
    assert not client.configured
    with pytest.raises(UserError, match="no LLM endpoint"):
        client.complete("q")
    assert not (tmp_path / "c").exists()


def test_validate_schema_subset():
    s = {"type": "object", "properties": {"labels": {"type": "array", "items": {"enum": ["x", "y"]}, "uniqueItems": True},
                                          "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}
    assert validate_schema({"labels": ["x", "y"], "confidence": 0.5}, s) is None
    assert "duplicate" in validate_schema({"labels": ["x", "x"]}, s)
    assert "maximum" in validate_schema({"labels": [], "confidence": 2}, s)
    assert "not in enum" in validate_schema({"labels": ["z"]}, s)
