"""LLM definition generator against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import re

import pytest

from fake_openai import FakeOpenAI, closed_port_url

from polyclinic.concepts.llm_definitions import DefinitionGenerator, LLMConfig, define_table
from polyclinic.concepts.table import Concept, concepts_to_table
from polyclinic.errors import UserError

ANSWERS = {
    "Bronquitis aguda": "Definición: Inflamación aguda de los bronquios, generalmente de origen viral, que cursa con tos.",
    "Asma": "   ",
    "Neumonía": "Neumonía.",
    "Gripe": "An acute viral infection of the respiratory tract caused by influenza viruses.",
    "Tos": "La tos es un reflejo " + "muy " * 200 + "largo.",
}


def _respond(body: dict) -> str:
    name = re.search(r'concept "([^"]+)"', body["messages"][-1]["content"]).group(1)
    return ANSWERS[name]


@pytest.fixture()
def server():
    with FakeOpenAI(_respond) as srv:
        yield srv.url.removesuffix("/v1"), srv.requests


def _concepts():
    return [Concept(f"ICD10:X{i}", "CIE-10", f"X{i}", "es", name) for i, name in enumerate(ANSWERS)]


def test_endpoint_cache_and_rejections(server, tmp_path, monkeypatch):
    url, requests = server
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    cfg = LLMConfig(base_url=url + "/v1", model="fake-model", api_key_env="TEST_LLM_KEY",
                    cache_dir=str(tmp_path / "cache"), retries=0)
    res = DefinitionGenerator(cfg).generate(_concepts())
    assert len(requests) == 5
    assert requests[0]["path"] == "/v1/chat/completions" and requests[0]["auth"] == "Bearer sk-test"
    assert requests[0]["body"]["model"] == "fake-model"
    assert res.stats["sent"] == 5 and res.stats["accepted"] == 1
    assert res.rejected == {"empty": 1, "echo": 1, "wrong_language": 1, "too_long": 1}
    assert res.definitions == {("ICD10:X0", "CIE-10", "es"):
                               "Inflamación aguda de los bronquios, generalmente de origen viral, que cursa con tos."}
    cached_files = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached_files) == 5 and "sk-test" not in "".join(f.read_text() for f in cached_files)

    # second run, fresh generator: everything from the cache, nothing sent, same verdicts
    res2 = DefinitionGenerator(cfg).generate(_concepts())
    assert len(requests) == 5
    assert res2.stats.get("sent", 0) == 0 and res2.stats["cached"] == 5
    assert res2.rejected == res.rejected and res2.definitions == res.definitions

    # another model name is another cache key
    cfg2 = cfg.model_copy(update={"model": "other-model"})
    DefinitionGenerator(cfg2).generate(_concepts()[:1])
    assert len(requests) == 6


def test_nothing_sent_when_unconfigured(server, tmp_path, caplog):
    url, requests = server
    gen = DefinitionGenerator(LLMConfig(cache_dir=str(tmp_path / "c")))
    assert not gen.configured
    with caplog.at_level("WARNING"):
        res = gen.generate(_concepts())
    assert requests == [] and res.definitions == {} and res.stats["not_configured"] == 5
    assert "nothing sent" in caplog.text
    assert not (tmp_path / "c").exists()


def test_fake_callable_and_define_table(tmp_path):
    calls = []

    def fake(prompt: str) -> str:
        calls.append(prompt)
        return "Enfermedad respiratoria aguda que afecta a los bronquios principales del pulmón."

    fake.model_id = "fake-fn"
    table = concepts_to_table([Concept("ICD10:J20", "CIE-10", "J20", "es", "Bronquitis aguda"),
                               Concept("ICD10:J21", "CIE-10", "J21", "es", "Bronquiolitis aguda", definition="Ya definida."),
                               Concept("ICD10:J20.0", "CIE-10", "J20.0", "es", "Bronquitis por micoplasma",
                                       parents=["ICD10:J20"])])
    gen = DefinitionGenerator(LLMConfig(cache_dir=str(tmp_path / "c")), fn=fake)
    out, res = define_table(table, gen)
    assert len(calls) == 2  # the defined row is skipped
    assert "Spanish" in calls[0] and "bronquitis aguda" in calls[1].lower()  # parent name as context
    assert out["definition"] == [fake(""), "Ya definida.", fake("")]


def test_closed_port_is_one_user_error(tmp_path):
    cfg = LLMConfig(base_url=closed_port_url(), model="m", cache_dir=str(tmp_path / "c"), retries=3, backoff_s=5)
    with pytest.raises(UserError, match="cannot reach the LLM endpoint"):
        DefinitionGenerator(cfg).generate(_concepts())
