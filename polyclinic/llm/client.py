"""One LLM client for the whole kit: OpenAI-compatible endpoints and local transformers chat models.

Why one client: definitions (concepts) and teacher labels (classifiers) need the same guarantees, and two
copies would drift. What it guarantees:

* **Nothing is sent unless a backend is configured** (``base_url`` + ``model``, ``local_model`` or a
  callable); :attr:`LLMClient.configured` tells callers, who log and skip.
* **On-disk cache** keyed by ``sha256(model, messages, generation parameters, constraint)``: one JSON file per
  request, written atomically; a re-run (or a resumed run after a kill) sends nothing it has already asked.
  The API key is never part of a key, a cache file or a log line.
* **Retries with exponential backoff** on 408/429/5xx and transient network errors; a **closed port fails
  fast** (connection refused is a configuration mistake, not a transient error) with a one-line
  :class:`~polyclinic.errors.UserError`.
* **Concurrency limit**: :meth:`LLMClient.complete_many` runs at most ``concurrency`` requests at a time
  (local models are serialised behind a lock) and yields answers as they arrive, so callers can persist
  progress row by row.
* **Constrained answers**: given a JSON schema, the request carries ``response_format: json_schema``
  (OpenAI, vLLM, llama.cpp, Ollama), ``guided_json`` (older vLLM) or ``json_object``; given a list of
  choices, ``guided_choice`` (vLLM). A server that rejects the constraint with HTTP 400 is retried with the
  next weaker one (down to a plain prompt). Whatever the server did, the answer is **validated** here
  (:func:`validate_schema`), so an unconstrained server cannot slip an invalid answer through.
* **Log-probabilities** when the server returns them (``logprobs`` / ``top_logprobs``; local models compute
  them from the generation scores); :func:`span_probability` turns them into the probability of a span of
  the answer (e.g. the label value of a JSON answer).
* **Provenance**: every answer carries the model id, backend, prompt version and the date it was generated
  (a cached answer keeps its original date).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from pydantic import Field

from polyclinic.config import StrictModel
from polyclinic.errors import UserError
from polyclinic.io import atomic_write_text
from polyclinic.logging_utils import get_logger

log = get_logger("llm")

RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
# strongest first; "auto" starts at json_schema and steps down when a server refuses with HTTP 400
CONSTRAINT_LADDER = ("json_schema", "guided_json", "json_object", "none")
Constraint = Literal["auto", "json_schema", "guided_json", "json_object", "guided_choice", "none"]


class LLMError(RuntimeError):
    """A request failed after its retries (counted as an ``error`` by callers; never a silent success)."""


class LLMClientConfig(StrictModel):
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; None = none")
    model: str | None = Field(None, description="model name sent to the endpoint")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (optional locally)")
    local_model: str | None = Field(None, description="a transformers causal-LM folder (used when base_url is None)")
    cache_dir: str = ".cache/llm"
    system: str | None = Field(None, description="system message prepended to every request")
    prompt_version: str = Field("v1", description="recorded in the provenance of every answer")
    temperature: float = 0.0
    max_tokens: int = Field(120, ge=1)
    seed: int | None = None
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles per attempt")
    max_backoff_s: float = Field(10.0, ge=0)
    concurrency: int = Field(4, ge=1, description="requests in flight at once")
    constraint: Constraint = Field("auto", description="how schemas/choices are sent to the server")
    logprobs: bool = Field(True, description="ask for token log-probabilities")
    top_logprobs: int = Field(5, ge=0, le=20)


@dataclasses.dataclass
class LLMAnswer:
    text: str
    parsed: Any = None  # the JSON value when a schema was given and the answer is valid
    error: str | None = None  # why the answer is invalid: invalid_json, schema:<detail>, not_a_choice, empty
    logprobs: list[dict] | None = None  # [{"token", "logprob", "top": [{"token", "logprob"}]}]
    cached: bool = False
    model: str = ""
    backend: str = ""
    prompt_version: str = ""
    created: str = ""  # ISO date-time the answer was generated
    latency_s: float | None = None  # wall time of the request that produced it (None when cached)
    constraint: str = "none"

    @property
    def ok(self) -> bool:
        return self.error is None

    def provenance(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "prompt_version": self.prompt_version,
                "date": self.created, "constraint": self.constraint}


# ------------------------------------------------------------------------------------------ validation
_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate_schema(value: Any, schema: dict, path: str = "$") -> str | None:
    """Check ``value`` against the JSON-schema subset the kit uses (type, enum, const, properties, required,
    additionalProperties, items, minItems, maxItems, uniqueItems, minimum, maximum). None when valid, else a
    short reason such as ``$.label: 'x' not in enum``."""
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} not in enum"
    if "const" in schema and value != schema["const"]:
        return f"{path}: {value!r} != {schema['const']!r}"
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        ok = False
        for t in types:
            if t == "number":
                ok |= isinstance(value, (int, float)) and not isinstance(value, bool)
            elif t == "integer":
                ok |= isinstance(value, int) and not isinstance(value, bool)
            elif t in _JSON_TYPES:
                ok |= isinstance(value, _JSON_TYPES[t])
        if not ok:
            return f"{path}: expected {'/'.join(types)}, got {type(value).__name__}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} > maximum {schema['maximum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{path}: missing {key!r}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"{path}: unexpected {extra[0]!r}"
        for key, sub in props.items():
            if key in value:
                err = validate_schema(value[key], sub, f"{path}.{key}")
                if err:
                    return err
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            return f"{path}: duplicate items"
        if "items" in schema:
            for i, v in enumerate(value):
                err = validate_schema(v, schema["items"], f"{path}[{i}]")
                if err:
                    return err
    return None


def extract_json(text: str) -> Any:
    """Parse a JSON answer, tolerating a Markdown fence or prose around one object (servers without JSON
    mode often add them). Raises ValueError when there is no JSON value."""
    t = (text or "").strip()
    if t.startswith("```"):
        t = t.strip("`")
        t = t[t.find("\n") + 1:] if "\n" in t else t
        t = t.rsplit("```", 1)[0] if "```" in t else t
    try:
        return json.loads(t)
    except ValueError:
        pass
    start, end = t.find("{"), t.rfind("}")
    if start >= 0 and end > start:
        return json.loads(t[start:end + 1])
    raise ValueError("no JSON value in the answer")


def span_probability(logprobs: Sequence[dict] | None, text: str, start: int, end: int) -> float | None:
    """Probability the model gave to ``text[start:end]``: exp of the summed log-probabilities of the tokens
    overlapping that span (tokens are aligned to ``text`` by concatenation). None when the tokens do not
    reproduce ``text`` (e.g. a server that re-formats) or no log-probabilities came back."""
    if not logprobs or start >= end:
        return None
    joined = "".join(t.get("token", "") for t in logprobs)
    if joined != text:
        offset = joined.find(text)  # some servers emit leading whitespace tokens
        if offset < 0:
            return None
        start, end = start + offset, end + offset
    pos, total, hit = 0, 0.0, False
    for tok in logprobs:
        s, e = pos, pos + len(tok.get("token", ""))
        pos = e
        if e > start and s < end:
            lp = tok.get("logprob")
            if lp is None:
                return None
            total += float(lp)
            hit = True
        if s >= end:
            break
    return math.exp(total) if hit else None


# ------------------------------------------------------------------------------------------ client
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class LLMClient:
    """Ask an LLM; see the module docstring for what every call guarantees.

    ``fn`` (``fn(messages) -> str``; ``fn.model_id`` names it) replaces the backends, for tests and custom clients.
    """

    def __init__(self, config: LLMClientConfig | None = None, fn: Callable[[list[dict]], str] | None = None):
        self.cfg = config or LLMClientConfig()
        self.fn = fn
        self._local = None
        self._local_lock = threading.Lock()
        self._ladder_lock = threading.Lock()
        self._refused: set[str] = set()  # constraints this server rejected (HTTP 400)
        self._no_logprobs = False
        if self.cfg.base_url and not self.cfg.model:
            raise UserError("LLM endpoint given without a model name (set llm.model, e.g. --llm-model NAME)")

    # ------------------------------------------------------------------ identity
    @property
    def configured(self) -> bool:
        return bool(self.fn or self.cfg.base_url or self.cfg.local_model)

    @property
    def backend(self) -> str:
        if self.fn is not None:
            return "callable"
        if self.cfg.base_url:
            return "openai-compatible"
        return "transformers" if self.cfg.local_model else "none"

    @property
    def model_id(self) -> str:
        if self.fn is not None:
            return str(getattr(self.fn, "model_id", getattr(self.fn, "__name__", "callable")))
        return self.cfg.model or self.cfg.local_model or ""

    def provenance(self) -> dict[str, Any]:
        out = {"model": self.model_id, "backend": self.backend, "prompt_version": self.cfg.prompt_version}
        if self.cfg.base_url:
            u = urllib.parse.urlsplit(self.cfg.base_url)
            out["endpoint"] = f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}{u.path}"
        return out

    def messages(self, prompt: str | list[dict]) -> list[dict]:
        if isinstance(prompt, list):
            return prompt
        msgs = [{"role": "system", "content": self.cfg.system}] if self.cfg.system else []
        return msgs + [{"role": "user", "content": prompt}]

    # ------------------------------------------------------------------ cache
    def _params(self) -> dict[str, Any]:
        return {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens, "seed": self.cfg.seed,
                "logprobs": self.cfg.logprobs, "top_logprobs": self.cfg.top_logprobs}

    def cache_key(self, messages: list[dict], schema: dict | None = None, choices: Sequence[str] | None = None) -> str:
        blob = json.dumps([self.model_id, messages, self._params(), schema, list(choices) if choices else None],
                          ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return Path(self.cfg.cache_dir) / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> dict | None:
        p = self._cache_path(key)
        if not p.is_file():
            return None
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
            entry["answer"]  # noqa: B018 - must exist
            return entry
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt entry (kill during a non-atomic copy, manual edit) is simply asked again

    def _write_cache(self, key: str, messages: list[dict], answer: str, logprobs, created: str, constraint: str) -> None:
        atomic_write_text(self._cache_path(key), json.dumps(
            {"model": self.model_id, "backend": self.backend, "prompt_version": self.cfg.prompt_version,
             "messages": messages, "params": self._params(), "answer": answer, "logprobs": logprobs,
             "created": created, "constraint": constraint}, ensure_ascii=False))

    # ------------------------------------------------------------------ main entry points
    def complete(self, prompt: str | list[dict], *, schema: dict | None = None,
                 choices: Sequence[str] | None = None) -> LLMAnswer:
        """One answer (from the cache when this exact request was asked before). Raises :class:`LLMError`
        when the request fails after retries and :class:`UserError` when the endpoint cannot be reached."""
        if not self.configured:
            raise UserError("no LLM endpoint or local model configured (set llm.base_url + llm.model or llm.local_model)")
        messages = self.messages(prompt)
        key = self.cache_key(messages, schema, choices)
        entry = self._read_cache(key)
        latency = None
        if entry is None:
            t0 = time.perf_counter()
            text, logprobs, constraint = self._ask(messages, schema, choices)
            latency = time.perf_counter() - t0
            created = _now()
            self._write_cache(key, messages, text, logprobs, created, constraint)
            cached = False
        else:
            text, logprobs, created = entry["answer"], entry.get("logprobs"), entry.get("created", "")
            constraint, cached = entry.get("constraint", "none"), True
        ans = LLMAnswer(text=text or "", logprobs=logprobs, cached=cached, model=self.model_id, backend=self.backend,
                        prompt_version=self.cfg.prompt_version, created=created, latency_s=latency,
                        constraint=constraint)
        self._validate(ans, schema, choices)
        return ans

    def complete_many(self, prompts: Iterable[str | list[dict]], *, schema: dict | None = None,
                      choices: Sequence[str] | None = None) -> Iterator[tuple[int, LLMAnswer | Exception]]:
        """``(index, answer or exception)`` for each prompt, in completion order, at most ``concurrency``
        requests in flight. A :class:`UserError` (unreachable endpoint) stops everything and is raised."""
        prompts = list(prompts)
        workers = 1 if self.backend == "transformers" else self.cfg.concurrency
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            pending: dict = {}
            it = iter(enumerate(prompts))

            def submit_next() -> bool:
                try:
                    i, p = next(it)
                except StopIteration:
                    return False
                pending[pool.submit(self.complete, p, schema=schema, choices=choices)] = i
                return True

            for _ in range(workers * 2):  # bounded queue: a kill loses at most this many in-flight answers
                if not submit_next():
                    break
            try:
                while pending:
                    done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        exc = fut.exception()
                        if isinstance(exc, UserError):
                            raise exc
                        yield i, (exc if exc is not None else fut.result())
                        submit_next()
            finally:
                for fut in pending:
                    fut.cancel()

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _validate(ans: LLMAnswer, schema: dict | None, choices: Sequence[str] | None) -> None:
        text = ans.text.strip()
        if not text:
            ans.error = "empty"
            return
        if choices is not None and schema is None:
            if text not in choices:
                ans.error = "not_a_choice"
            else:
                ans.parsed = text
            return
        if schema is not None:
            try:
                value = extract_json(text)
            except ValueError:
                ans.error = "invalid_json"
                return
            err = validate_schema(value, schema)
            if err:
                ans.error = f"schema:{err}"
                return
            ans.parsed = value

    # ------------------------------------------------------------------ backends
    def _ask(self, messages: list[dict], schema: dict | None, choices: Sequence[str] | None) -> tuple[str, Any, str]:
        if self.fn is not None:
            return self.fn(messages), None, "none"
        if self.cfg.base_url:
            return self._http(messages, schema, choices)
        text, lps = self._local_generate(messages, schema, choices)
        return text, lps, "prompt"

    def _endpoint(self) -> str:
        base = self.cfg.base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"

    def _constraint_for(self, schema: dict | None, choices: Sequence[str] | None) -> str:
        if schema is None and choices is None:
            return "none"
        want = self.cfg.constraint
        if choices is not None and schema is None:
            return "none" if want == "none" or "guided_choice" in self._refused else "guided_choice"
        ladder = CONSTRAINT_LADDER if want in ("auto", "guided_choice") else CONSTRAINT_LADDER[CONSTRAINT_LADDER.index(want):]
        for c in ladder:
            if c not in self._refused:
                return c
        return "none"

    def _body(self, messages: list[dict], schema: dict | None, choices: Sequence[str] | None, constraint: str) -> dict:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens}
        if self.cfg.seed is not None:
            body["seed"] = self.cfg.seed
        if self.cfg.logprobs and not self._no_logprobs:
            body["logprobs"] = True
            if self.cfg.top_logprobs:
                body["top_logprobs"] = self.cfg.top_logprobs
        if constraint == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        elif constraint == "guided_json":
            body["guided_json"] = schema
        elif constraint == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif constraint == "guided_choice":
            body["guided_choice"] = list(choices or [])
        return body

    def _http(self, messages: list[dict], schema: dict | None, choices: Sequence[str] | None) -> tuple[str, Any, str]:
        url = self._endpoint()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last: Exception | None = None
        attempt = 0
        while True:
            constraint = self._constraint_for(schema, choices)
            body = self._body(messages, schema, choices, constraint)
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                choice = data["choices"][0]
                text = choice["message"].get("content") or ""
                lp = choice.get("logprobs") or {}
                content = lp.get("content") if isinstance(lp, dict) else None
                logprobs = [{"token": t.get("token", ""), "logprob": t.get("logprob"),
                             "top": [{"token": x.get("token", ""), "logprob": x.get("logprob")}
                                     for x in (t.get("top_logprobs") or [])]} for t in content] if content else None
                return text, logprobs, constraint
            except urllib.error.HTTPError as exc:
                detail = ""
                try:
                    detail = exc.read().decode("utf-8", "replace")[:300]
                except OSError:
                    pass
                if exc.code == 400 and (constraint != "none" or "logprobs" in body):
                    with self._ladder_lock:  # the server does not support this feature: step down, ask again
                        if constraint != "none":
                            self._refused.add(constraint)
                        else:
                            self._no_logprobs = True
                    log.info("endpoint refused %s (HTTP 400: %s); retrying with a weaker constraint",
                             constraint if constraint != "none" else "logprobs", detail[:120])
                    continue
                if exc.code in (401, 403):
                    raise UserError(f"LLM endpoint {url} refused the request (HTTP {exc.code}): set a valid key in "
                                    f"${self.cfg.api_key_env}") from None
                if exc.code == 404:
                    raise UserError(f"LLM endpoint {url} answered 404: check llm.base_url (…/v1) and llm.model "
                                    f"({self.cfg.model!r})") from None
                last = LLMError(f"HTTP {exc.code}: {detail[:200]}")
                if exc.code not in RETRY_STATUS:
                    break
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                    what = "connection refused" if isinstance(reason, ConnectionRefusedError) else "unknown host"
                    raise UserError(f"cannot reach the LLM endpoint {url} ({what}): start the server or fix "
                                    "llm.base_url") from None
                last = exc
            except ConnectionRefusedError:
                raise UserError(f"cannot reach the LLM endpoint {url} (connection refused): start the server or fix "
                                "llm.base_url") from None
            except (TimeoutError, OSError, KeyError, IndexError, ValueError, TypeError) as exc:
                last = exc
            if attempt >= self.cfg.retries:
                break
            time.sleep(min(self.cfg.backoff_s * 2 ** attempt, self.cfg.max_backoff_s))
            attempt += 1
        raise LLMError(f"LLM request to {url} failed after {attempt + 1} attempt(s): {last}")

    def _local_generate(self, messages: list[dict], schema: dict | None, choices: Sequence[str] | None):
        import torch

        with self._local_lock:
            if self._local is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tok = AutoTokenizer.from_pretrained(self.cfg.local_model)
                model = AutoModelForCausalLM.from_pretrained(self.cfg.local_model)
                model.eval()
                self._local = (tok, model)
            tok, model = self._local
            if schema is not None or choices is not None:  # no grammar decoding locally: say it, validate after
                hint = (f"Answer with JSON matching this schema: {json.dumps(schema)}" if schema is not None
                        else f"Answer with exactly one of: {', '.join(choices)}")
                messages = messages[:-1] + [{**messages[-1], "content": messages[-1]["content"] + "\n" + hint}]
            if getattr(tok, "chat_template", None):
                enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            else:
                enc = tok("\n".join(m["content"] for m in messages), return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=self.cfg.max_tokens, do_sample=self.cfg.temperature > 0,
                                     temperature=self.cfg.temperature if self.cfg.temperature > 0 else None,
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                                     output_scores=True, return_dict_in_generate=True)
            new = out.sequences[0, enc["input_ids"].shape[1]:]
            logprobs = []
            for step, tid in enumerate(new.tolist()):
                if tid in (tok.eos_token_id, tok.pad_token_id):
                    break
                lp = torch.log_softmax(out.scores[step][0].float(), dim=-1)
                top = torch.topk(lp, k=max(1, self.cfg.top_logprobs))
                logprobs.append({"token": tok.decode([tid]), "logprob": float(lp[tid]),
                                 "top": [{"token": tok.decode([int(i)]), "logprob": float(v)}
                                         for v, i in zip(top.values.tolist(), top.indices.tolist())]})
            return tok.decode(new, skip_special_tokens=True), logprobs if self.cfg.logprobs else None
