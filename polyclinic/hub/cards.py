"""Model and dataset cards built from what a run measured.

A card context is read from the artefact folder (``metrics.json``, ``eval/*.json``, ``config.yaml``,
``manifest.json``, the training corpus' Parquet shards / ``stats.json``) and rendered with
:func:`polyclinic.cards.render_template`. Evaluation JSON becomes ``model-index`` (via huggingface_hub's
``EvalResult``), plus one *verification slice* result that ``polyclinic verify`` recomputes after download.

:func:`validate_card` parses the result with ``ModelCard`` / ``DatasetCard`` and lists what is missing;
:func:`eval_roundtrip_problems` checks that ``model-index`` parses back into the same numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from polyclinic.errors import UserError
from polyclinic.hub.gates import relativize_local_paths
from polyclinic.io import read_json
from polyclinic.logging_utils import get_logger

log = get_logger("hub.cards")

TEMPLATES = {
    "mt5": "model_cards/mt5_span_corruption.md.j2",
    "encoder": "model_cards/sentence_encoder.md.j2",
    "classifier": "model_cards/text_classifier.md.j2",
    "benchmark": "dataset_cards/benchmark.md.j2",
    "pairs": "dataset_cards/pairs.md.j2",
    "corpus": "dataset_cards/corpus.md.j2",
}
PIPELINE = {"mt5": ("text2text-generation", "transformers"), "encoder": ("sentence-similarity", "sentence-transformers"),
            "classifier": ("text-classification", "transformers")}
VERIFICATION_DATASET = "polyclinic/verification-slice"

REQUIRED_MODEL_METADATA = ("license", "language", "library_name", "pipeline_tag", "tags", "model-index")
REQUIRED_DATASET_METADATA = ("license", "language", "configs", "pretty_name", "tags")
REQUIRED_MODEL_SECTIONS = (
    "Training recipe", "Compute", "Evaluation", "Intended use", "Out-of-scope use",
    "Bias and limitations", "Usage", "Citation",
)
REQUIRED_DATASET_SECTIONS = ("Configs", "Intended use", "Out-of-scope use", "Limitations", "Usage", "Citation")

CITATIONS = {
    "t5": """@article{raffel2020t5,
  title   = {Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer},
  author  = {Raffel, Colin and Shazeer, Noam and Roberts, Adam and Lee, Katherine and Narang, Sharan and
             Matena, Michael and Zhou, Yanqi and Li, Wei and Liu, Peter J.},
  journal = {Journal of Machine Learning Research}, volume = {21}, number = {140}, pages = {1--67}, year = {2020}
}""",
    "mt5": """@inproceedings{xue2021mt5,
  title     = {mT5: A Massively Multilingual Pre-trained Text-to-Text Transformer},
  author    = {Xue, Linting and Constant, Noah and Roberts, Adam and Kale, Mihir and Al-Rfou, Rami and
               Siddhant, Aditya and Barua, Aditya and Raffel, Colin},
  booktitle = {Proceedings of NAACL-HLT 2021}, pages = {483--498}, year = {2021}
}""",
    "medical_mt5": """@inproceedings{garciaferrero2024medicalmt5,
  title     = {Medical mT5: An Open-Source Multilingual Text-to-Text LLM for the Medical Domain},
  author    = {Garc{\\'i}a-Ferrero, Iker and Agerri, Rodrigo and Atutxa Salazar, Aitziber and Cabrio, Elena and
               de la Iglesia, Iker and Lavelli, Alberto and Magnini, Bernardo and Molinet, Benjamin and
               Ramirez-Romero, Johana and Rigau, German and Villa-Gonzalez, Jose Maria and Villata, Serena and Zaninello, Andrea},
  booktitle = {Proceedings of LREC-COLING 2024}, year = {2024}
}""",
    "biolord": """@article{remy2024biolord2023,
  title   = {BioLORD-2023: Semantic Textual Representations Fusing Large Language Models and Clinical Knowledge Graph Insights},
  author  = {Remy, Fran{\\c{c}}ois and Demuynck, Kris and Demeester, Thomas},
  journal = {Journal of the American Medical Informatics Association}, year = {2024}
}""",
    "sentence_transformers": """@inproceedings{reimers2019sbert,
  title     = {Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks},
  author    = {Reimers, Nils and Gurevych, Iryna},
  booktitle = {Proceedings of EMNLP-IJCNLP 2019}, pages = {3982--3992}, year = {2019}
}""",
    "beir": """@inproceedings{thakur2021beir,
  title     = {BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information Retrieval Models},
  author    = {Thakur, Nandan and Reimers, Nils and R{\\"u}ckl{\\'e}, Andreas and Srivastava, Abhishek and Gurevych, Iryna},
  booktitle = {NeurIPS Datasets and Benchmarks Track}, year = {2021}
}""",
}

LANGUAGE_NAMES = {
    "es": "Spanish", "en": "English", "fr": "French", "it": "Italian", "pt": "Portuguese", "ca": "Catalan",
    "pl": "Polish", "de": "German", "nl": "Dutch", "eu": "Basque", "gl": "Galician", "ro": "Romanian",
}


# --------------------------------------------------------------------------------------------------------------------
# reading run folders
# --------------------------------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def _read_json_or_empty(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def _lookup(flat: dict[str, Any], *names: str) -> Any:
    """First value whose dotted key ends with one of ``names`` (in order of ``names``)."""
    for name in names:
        for k, v in flat.items():
            if (k == name or k.endswith("." + name)) and v not in (None, ""):
                return v
    return None


def read_eval_dir(run_dir: Path) -> list[dict]:
    """All ``eval/*.json`` of a run, each validated against the contract in CONTRIBUTING.md.

    When the run has ``final/``, every record must carry the ``weights_sha256`` of the run's ``final/`` weights (the
    ones a card describes and a push sends); a record measured on other weights (``final/`` replaced after
    the evaluation) or with no hash is refused with a message saying what to re-run.
    """
    evals = []
    for path in sorted((Path(run_dir) / "eval").glob("*.json")):
        data = _read_json_or_empty(path)
        if not isinstance(data.get("metrics"), dict):
            raise UserError(f"{path}: eval JSON needs a 'metrics' mapping ({{name: value}}); see CONTRIBUTING.md")
        data.setdefault("task", path.stem)
        data.setdefault("dataset", "unknown")
        data["_file"] = path.name
        evals.append(data)
    if evals and (Path(run_dir) / "final").is_dir():
        _refuse_stale_records(Path(run_dir), evals)
    return evals


def _refuse_stale_records(run_dir: Path, evals: list[dict]) -> None:
    from polyclinic.evaluation.report import weights_sha256

    final = run_dir / "final"
    current = weights_sha256(final)
    problems = []
    for e in evals:
        measured = e.get("weights_sha256")
        if measured is None:
            problems.append(f"eval/{e['_file']} records no weights_sha256 (written by hand or by an older polyclinic)")
        elif measured != current:
            problems.append(f"eval/{e['_file']} measured weights {measured[:12]}, but {final} now holds "
                            f"{(current or 'no weights')[:12]}")
    if problems:
        raise UserError(f"{run_dir}: evaluation records do not describe the weights being released:\n  - "
                        + "\n  - ".join(problems) + f"\nre-run the evaluation on {final} (e.g. polyclinic eval ... "
                        f"--model {final}) or restore the weights it measured; cards never show numbers of other weights")


def _task_type(kind: str, task: str) -> str:
    t = task.lower()
    if kind == "mt5":
        return "text2text-generation"
    if "retriev" in t or "search" in t or "ir" == t:
        return "text-retrieval"
    if "classif" in t:
        return "text-classification"
    return "sentence-similarity"


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def evals_to_eval_results(evals: list[dict], kind: str) -> list:
    """Eval JSON (one file per task) -> huggingface_hub ``EvalResult`` list (one per numeric metric)."""
    from huggingface_hub import EvalResult

    results = []
    for e in evals:
        task = str(e["task"])
        for name, value in e["metrics"].items():
            if not _numeric(value):
                continue
            results.append(
                EvalResult(
                    task_type=_task_type(kind, task),
                    task_name=task,
                    dataset_type=str(e.get("dataset_type") or e["dataset"]),
                    dataset_name=str(e["dataset"]),
                    dataset_config=str(e["language"]) if e.get("language") else None,
                    dataset_split=str(e["split"]) if e.get("split") else None,
                    metric_type=str(name),
                    metric_name=str(name),
                    metric_value=float(value),
                )
            )
    return results


def verification_eval_result(kind: str, value: float, metric: str, num_examples: int):
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type=PIPELINE[kind][0],
        task_name="verification slice",
        dataset_type=VERIFICATION_DATASET,
        dataset_name=f"polyclinic verification slice ({num_examples} fixed examples)",
        dataset_split="test",
        metric_type=metric,
        metric_name=metric,
        metric_value=float(value),
    )


def _results_table(evals: list[dict]) -> list[dict]:
    rows = []
    for e in evals:
        for name, value in e["metrics"].items():
            if _numeric(value):
                rows.append({
                    "task": e["task"], "dataset": e["dataset"], "split": e.get("split") or "-",
                    "language": e.get("language") or "-", "metric": name, "value": f"{float(value):.4g}",
                    "n": e.get("num_examples", "-"),
                })
    return rows


# --------------------------------------------------------------------------------------------------------------------
# corpus statistics (from the Parquet layout of CONTRIBUTING.md)
# --------------------------------------------------------------------------------------------------------------------

_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")


def dataset_layout(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """``{config: {split: [shards]}}`` for a ``<config>/<split>-0000K-of-0000N.parquet`` folder."""
    layout: dict[str, dict[str, list[Path]]] = {}
    for shard in sorted(Path(folder).glob("*/*.parquet")):
        m = _SHARD.match(shard.name)
        split = m.group("split") if m else shard.stem.split("-")[0]
        layout.setdefault(shard.parent.name, {}).setdefault(split, []).append(shard)
    return layout


def configs_metadata(layout: dict[str, dict[str, list[Path]]]) -> list[dict]:
    return [
        {"config_name": cfg, "data_files": [{"split": s, "path": f"{cfg}/{s}-*"} for s in sorted(splits, key=_split_order)]}
        for cfg, splits in layout.items()
    ]


def _split_order(s: str) -> tuple:
    return ({"train": 0, "validation": 1, "test": 2}.get(s, 3), s)


def parquet_rows(shards: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(str(s)).metadata.num_rows for s in shards)


def corpus_statistics(folder: str | Path, count_words_below_bytes: int = 500_000_000) -> dict:
    """Rows per language and split, documents and words per language and source.

    Row counts come from Parquet metadata; sources and words read the ``source``/``text`` columns
    (words only when the corpus is below ``count_words_below_bytes``, else taken from ``stats.json``).
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    layout = dataset_layout(folder)
    total_bytes = sum(p.stat().st_size for splits in layout.values() for shards in splits.values() for p in shards)
    count_words = total_bytes < count_words_below_bytes
    per_lang: dict[str, dict] = {}
    per_source: list[dict] = []
    for lang, splits in layout.items():
        entry = {"language": lang, "splits": {}, "documents": 0, "words": 0 if count_words else None}
        sources: dict[str, dict] = {}
        for split, shards in splits.items():
            entry["splits"][split] = parquet_rows(shards)
            entry["documents"] += entry["splits"][split]
            for shard in shards:
                pf = pq.ParquetFile(str(shard))
                names = set(pf.schema_arrow.names)
                cols = [c for c in ("source", "text") if c in names and (c != "text" or count_words)]
                if not cols:
                    continue
                for batch in pf.iter_batches(columns=cols, batch_size=8192):
                    src_col = batch.column("source").to_pylist() if "source" in cols else ["unknown"] * batch.num_rows
                    txt_col = batch.column("text").to_pylist() if "text" in cols else [None] * batch.num_rows
                    for s, t in zip(src_col, txt_col):
                        d = sources.setdefault(s or "unknown", {"documents": 0, "words": 0 if count_words else None})
                        d["documents"] += 1
                        if count_words and t:
                            w = len(t.split())
                            d["words"] += w
                            entry["words"] += w
        per_lang[lang] = entry
        for s, d in sorted(sources.items()):
            per_source.append({"language": lang, "source": s, **d})
    stats = _read_json_or_empty(folder / "stats.json")
    return {
        "languages": list(per_lang),
        "per_language": list(per_lang.values()),
        "per_source": per_source,
        "total_documents": sum(e["documents"] for e in per_lang.values()),
        "total_words": sum(e["words"] for e in per_lang.values()) if count_words else _lookup(_flatten(stats), "total_words", "words"),
        "layout": {k: {s: [str(p.relative_to(folder)) for p in v] for s, v in d.items()} for k, d in layout.items()},
        "stats_json": stats,
    }


def dataset_info_metadata(layout: dict[str, dict[str, list[Path]]]) -> list[dict]:
    """``dataset_info`` split sizes for the card (what ``polyclinic verify`` checks row counts against)."""
    return [
        {"config_name": cfg, "splits": [{"name": s, "num_examples": parquet_rows(shards)} for s, shards in sorted(splits.items(), key=lambda kv: _split_order(kv[0]))]}
        for cfg, splits in layout.items()
    ]


# --------------------------------------------------------------------------------------------------------------------
# model cards
# --------------------------------------------------------------------------------------------------------------------


def _fmt_int(v: Any) -> str:
    return f"{int(v):,}" if _numeric(v) else "not recorded"


def _base_model(spec, config: dict) -> str | None:
    if spec.base_model:
        return spec.base_model
    flat = _flatten(config)
    v = _lookup(flat, "base_model", "model_name_or_path", "init_from", "model.name", "model.pretrained", "pretrained", "teacher")
    if isinstance(v, str) and re.match(r"^[\w.-]+/[\w.-]+$", v) and not Path(v).exists():
        return v
    return None


def _compute(metrics: dict, manifest: dict) -> dict:
    fm = _flatten(metrics)
    seconds = _lookup(fm, "train_runtime", "wall_time_s", "train_seconds", "seconds", "runtime_s", "elapsed_s")
    hours = _lookup(fm, "hours", "train_hours")
    if hours is None and _numeric(seconds):
        hours = float(seconds) / 3600
    hardware = _lookup(fm, "hardware", "device", "devices", "accelerator")
    if hardware is None:
        host = manifest.get("host") or {}
        hardware = host.get("platform") or "not recorded"
    nproc = _lookup(fm, "num_processes", "world_size")
    return {
        "hardware": str(hardware) + (f" x {nproc} processes" if _numeric(nproc) and int(nproc) > 1 else ""),
        "hours": f"{float(hours):.3f}" if _numeric(hours) else "not recorded",
        "tokens": _fmt_int(_lookup(fm, "tokens_seen", "train_tokens", "tokens", "num_tokens", "input_tokens")),
        "steps": _fmt_int(_lookup(fm, "global_step", "steps", "step", "max_steps")),
        "examples": _fmt_int(_lookup(fm, "train_examples", "num_examples", "train_samples", "pairs")),
        "final_loss": (f"{float(v):.4f}" if _numeric(v := _lookup(fm, "final_loss", "train_loss", "loss")) else "not recorded"),
        "libraries": manifest.get("libraries") or {},
        "git_commit": manifest.get("git_commit") or "not recorded",
        "config_hash": manifest.get("config_hash") or "not recorded",
    }


RECIPE_KEYS = (
    "objective", "noise_density", "mean_noise_span_length", "mean_span_length", "input_length", "max_seq_length",
    "seq_len", "sequence_length", "max_length", "batch_size", "per_device_batch_size", "per_device_train_batch_size",
    "gradient_accumulation_steps", "tokens_per_step", "optimizer", "lr", "learning_rate", "schedule", "lr_scheduler",
    "warmup_steps", "max_steps", "epochs", "num_train_epochs", "precision", "mixed_precision", "dropout", "dropout_rate",
    "loss", "temperature", "scale", "phases", "seed",
)


def _recipe(config: dict) -> list[dict]:
    flat = _flatten(config)
    rows = []
    for key, value in flat.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in RECIPE_KEYS and value not in (None, "", [], {}):
            rows.append({"key": key, "value": value if not isinstance(value, (list, dict)) else yaml.safe_dump(value, default_flow_style=True).strip()})
    return rows


def _training_corpus(config: dict, run_dir: Path, manifest: dict) -> tuple[Path | None, dict | None]:
    candidates = []
    flat = _flatten(config)
    for key in ("data.corpus", "corpus", "dataset", "data.path", "train_data"):
        v = _lookup(flat, key)
        if isinstance(v, str):
            candidates.append(v)
    for k, v in (manifest.get("inputs") or {}).items():
        if "corpus" in k and isinstance(v, dict) and v.get("path"):
            candidates.append(v["path"])
    for c in candidates:
        for base in (Path(c), run_dir / c, run_dir.parent / c):
            if base.is_dir() and dataset_layout(base):
                return base, corpus_statistics(base)
    return None, None


def _language_notes(languages: list[str], corpus: dict | None) -> list[dict]:
    shares = {}
    if corpus and corpus.get("total_documents"):
        for e in corpus["per_language"]:
            shares[e["language"]] = e["documents"] / corpus["total_documents"]
    notes = []
    for lang in languages:
        share = shares.get(lang)
        name = LANGUAGE_NAMES.get(lang, lang)
        if share is None:
            text = f"{name}: no measured share of training data; expect weaker quality than for the main training languages."
        elif share < 0.2:
            text = (f"{name}: only {share:.0%} of the training documents; terminology and clinical register are covered "
                    "thinly, so expect more errors than in better-covered languages.")
        else:
            text = (f"{name}: {share:.0%} of the training documents; coverage follows the sources listed above "
                    "(terminology-heavy text, little real clinical narrative).")
        notes.append({"language": lang, "name": name, "text": text})
    return notes


def _usage_prompt(languages: list[str]) -> str:
    prompts = {
        "es": "El paciente presenta <extra_id_0> torácico de inicio súbito.",
        "fr": "Le patient présente une <extra_id_0> thoracique aiguë.",
        "it": "Il paziente presenta <extra_id_0> toracico acuto.",
        "pt": "O paciente apresenta <extra_id_0> torácica súbita.",
    }
    for lang in languages:
        if lang in prompts:
            return prompts[lang]
    return "The patient presents with acute <extra_id_0> pain."


def model_card_context(run_dir: str | Path, spec, *, version: str | None = None, verification: dict | None = None) -> dict:
    """Everything a model card template needs, read from ``run_dir`` (a run folder with ``final/``)."""
    run_dir = Path(run_dir)
    kind = spec.kind
    if kind not in PIPELINE:
        raise UserError(f"{spec.repo_id}: model card for kind {kind!r}; expected one of {sorted(PIPELINE)}")
    final, eval_root = spec.model_folders(run_dir)
    if not final.is_dir():
        raise UserError(f"{run_dir}: no {final.relative_to(run_dir)}/ folder (a from_pretrained-able model); train the run first")
    metrics = _read_json_or_empty(run_dir / "metrics.json")
    manifest = _read_json_or_empty(run_dir / "manifest.json")
    config = _read_yaml(run_dir / "config.yaml")
    evals = read_eval_dir(eval_root)
    corpus_dir, corpus = _training_corpus(config, run_dir, manifest) if kind == "mt5" else (None, None)
    languages = list(spec.languages) or (corpus["languages"] if corpus else []) or sorted(
        {str(e["language"]) for e in evals if e.get("language") and len(str(e["language"])) <= 3})
    if not languages:
        raise UserError(f"{spec.repo_id}: no languages known; set `languages:` for this artefact in the release YAML")
    pipeline_tag, library = PIPELINE[kind]
    results = evals_to_eval_results(evals, kind)
    if verification:
        results.append(verification_eval_result(kind, verification["value"], verification["metric"], verification["num_examples"]))
    base_model = _base_model(spec, config)
    default_tags = ["medical", "biomedical", "clinical"] + (
        ["mt5", "t5", "span-corruption", "text2text-generation"] if kind == "mt5"
        else ["sentence-transformers", "sentence-similarity", "feature-extraction", "biolord"])
    tags = list(dict.fromkeys([*spec.tags, *default_tags, *([f"polyclinic-{version}"] if version else [])]))
    from huggingface_hub import ModelCardData

    card_data = ModelCardData(
        base_model=base_model,
        datasets=list(spec.datasets) or None,
        eval_results=results or None,
        language=languages,
        library_name=library,
        license=spec.license,
        model_name=spec.pretty_name or spec.name,
        pipeline_tag=pipeline_tag,
        tags=tags,
    )
    metadata = card_data.to_dict()
    if kind == "mt5":
        fm = _flatten(config)
        recipe_defaults = {
            "noise_density": _lookup(fm, "noise_density") or 0.15,
            "mean_noise_span_length": _lookup(fm, "mean_noise_span_length", "mean_span_length") or 3.0,
        }
    else:
        recipe_defaults = {}
    ctx = {
        "kind": kind,
        "repo_id": spec.repo_id,
        "model_name": spec.pretty_name or spec.name,
        "description": spec.description or "",
        "version": version or "",
        "metadata": metadata,
        "base_model": base_model,
        "languages": languages,
        "language_names": [LANGUAGE_NAMES.get(lang, lang) for lang in languages],
        "license": spec.license,
        "datasets": list(spec.datasets),
        "recipe": _recipe(config),
        "recipe_defaults": recipe_defaults,
        "config_yaml": relativize_local_paths(yaml.safe_dump(config, sort_keys=False, allow_unicode=True).strip(),
                                              [run_dir.parent]) if config else "",
        "compute": _compute(metrics, manifest),
        "metrics": {k: v for k, v in _flatten(metrics).items() if _numeric(v)},
        "results": _results_table(evals),
        "verification": verification,
        "corpus": corpus,
        "corpus_path": relativize_local_paths(str(corpus_dir), [run_dir.parent]) if corpus_dir else None,
        "language_notes": _language_notes(languages, corpus),
        "usage_prompt": _usage_prompt(languages),
        "usage_sentences": _usage_sentences(languages),
        "citations": CITATIONS,
        "pipeline_tag": pipeline_tag,
        "library_name": library,
        "phase": spec.phase,
        "phase_name": PHASE_NAMES.get(spec.phase or metrics.get("final_phase", ""), ""),
        "phase_effects": phase_effects(metrics) if kind == "encoder" else [],
    }
    return ctx


PHASE_NAMES = {"contrastive": "contrastive (-C)", "self_distill": "self-distillation (-S)", "average": "weight averaging",
               "distill": "multilingual distillation"}


def phase_effects(metrics: dict, metric: str = "recall@10", tolerance: float = 0.005) -> list[dict]:
    """What each phase of an encoder run changed, from the run's own before/after evaluations (``metrics.json``).

    A phase's "before" is the model it started from: the previous phase's output (the base model for the
    first), or for multilingual distillation the student before training. ``verdict`` is ``helped`` /
    ``did not help`` / ``no measurable change`` (|mean change| < ``tolerance``) over the tasks both measured."""
    evals = metrics.get("eval") or {}
    phases = metrics.get("phases") or {}
    order = [p for p in ("contrastive", "self_distill", "average", "distill") if p in evals and p in phases]
    out, previous = [], evals.get("base") or {}
    for phase in order:
        after = evals[phase] or {}
        before = phases[phase].get("student_before") if phase == "distill" else previous
        before = before or {}
        rows = [{"task": t, "before": before[t][metric], "after": after[t][metric],
                 "change": round(after[t][metric] - before[t][metric], 4)}
                for t in sorted(after) if metric in after[t] and metric in before.get(t, {})]
        if rows:
            mean = sum(r["change"] for r in rows) / len(rows)
            verdict = "no measurable change" if abs(mean) < tolerance else ("helped" if mean > 0 else "did not help")
            out.append({"phase": phase, "name": PHASE_NAMES[phase], "metric": metric, "rows": rows, "verdict": verdict,
                        "mean_change": round(mean, 4), "steps": phases[phase].get("steps")})
        if phase != "distill":
            previous = after
    return out


def _usage_sentences(languages: list[str]) -> list[str]:
    bank = {
        "en": ["myocardial infarction", "heart attack"],
        "es": ["infarto agudo de miocardio", "ataque al corazón"],
        "fr": ["infarctus du myocarde", "crise cardiaque"],
        "it": ["infarto miocardico", "attacco di cuore"],
        "pt": ["enfarte do miocárdio", "ataque cardíaco"],
    }
    out: list[str] = []
    for lang in [*languages, "en"]:
        for s in bank.get(lang, []):
            if s not in out:
                out.append(s)
    return out[:4]


def render_model_card(run_dir: str | Path, spec, *, version: str | None = None, verification: dict | None = None,
                      template: str | None = None) -> str:
    from polyclinic.cards import render_template

    if spec.kind == "classifier":  # the classifier family renders from its own run records
        from polyclinic.classification.release import render_classifier_card

        return render_classifier_card(run_dir, repo_id=spec.repo_id, license=spec.license,
                                      languages=list(spec.languages or []) or None, tags=list(spec.tags or []),
                                      base_model=spec.base_model, datasets=list(spec.datasets or []) or None,
                                      description=spec.description, version=version, verification=verification,
                                      template=template or spec.card_template or TEMPLATES["classifier"])
    ctx = model_card_context(run_dir, spec, version=version, verification=verification)
    return render_template(template or spec.card_template or TEMPLATES[spec.kind], **ctx)


# --------------------------------------------------------------------------------------------------------------------
# dataset cards
# --------------------------------------------------------------------------------------------------------------------


def dataset_card_context(folder: str | Path, spec, *, version: str | None = None, extra: dict | None = None) -> dict:
    folder = Path(folder)
    layout = dataset_layout(folder)
    if not layout:
        raise UserError(f"{folder}: no <config>/<split>-*.parquet shards found (see the dataset layout in CONTRIBUTING.md)")
    info = _read_json_or_empty(folder / "benchmark.json")
    info.update(extra or {})
    languages = list(spec.languages) or list(info.get("languages") or []) or sorted(
        {c.split("-")[-1] for c in layout if re.fullmatch(r"[a-z]{2,3}", c.split("-")[-1])})
    if not languages:
        raise UserError(f"{spec.repo_id}: no languages known; set `languages:` for this artefact in the release YAML")
    dataset_info = dataset_info_metadata(layout)
    kind = spec.kind
    default_tags = ["medical", "biomedical", "clinical"] + (
        ["benchmark", "retrieval", "beir", "mteb"] if kind == "benchmark" else ["sentence-similarity", "concept-relatedness"]
        if kind == "pairs" else ["corpus"])
    from huggingface_hub import DatasetCardData

    task_categories = {"benchmark": ["text-retrieval"], "pairs": ["sentence-similarity"], "corpus": ["text-generation"]}[kind]
    card_data = DatasetCardData(
        language=languages,
        license=spec.license,
        pretty_name=spec.pretty_name or info.get("pretty_name") or spec.name,
        task_categories=task_categories,
        tags=list(dict.fromkeys([*spec.tags, *default_tags])),
        configs=configs_metadata(layout),
        dataset_info=dataset_info,
        size_categories=[_size_category(sum(s["num_examples"] for d in dataset_info for s in d["splits"]))],
    )
    configs = []
    for d in dataset_info:
        cfg_layout = layout[d["config_name"]]
        import pyarrow.parquet as pq

        first = next(iter(cfg_layout.values()))[0]
        columns = [f"{f.name} ({f.type})" for f in pq.ParquetFile(str(first)).schema_arrow]
        configs.append({"name": d["config_name"], "splits": d["splits"], "columns": columns})
    return {
        "kind": kind,
        "repo_id": spec.repo_id,
        "pretty_name": card_data.pretty_name,
        "description": spec.description or info.get("description") or "",
        "version": version or "",
        "metadata": card_data.to_dict(),
        "languages": languages,
        "language_names": [LANGUAGE_NAMES.get(lang, lang) for lang in languages],
        "license": spec.license,
        "configs": configs,
        "info": info,
        "first_config": configs[0]["name"],
        "first_split": configs[0]["splits"][0]["name"],
        "citations": CITATIONS,
    }


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if n < limit:
            return name
    return "100M<n<1B"


def render_dataset_card(folder: str | Path, spec, *, version: str | None = None, template: str | None = None,
                        extra: dict | None = None) -> str:
    """Render a benchmark/pairs card; a corpus keeps the card the corpus builder wrote (see :func:`corpus_card`)."""
    if spec.kind == "corpus" and not (template or spec.card_template):
        return corpus_card(folder, spec, version=version)
    from polyclinic.cards import render_template

    ctx = dataset_card_context(folder, spec, version=version, extra=extra)
    return render_template(template or spec.card_template or TEMPLATES[spec.kind], **ctx)


def corpus_card(folder: str | Path, spec, *, version: str | None = None) -> str:
    """The corpus builder's ``README.md`` with its metadata completed from the folder and the release spec.

    ``configs`` and ``dataset_info`` (row counts that ``verify`` checks) are recomputed from the shards;
    ``license``, ``language`` and ``tags`` from the spec fill what the card lacks.
    """
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.is_file():
        raise UserError(f"{folder}: corpus folder has no README.md dataset card; build it with `polyclinic corpus build`")
    layout = dataset_layout(folder)
    if not layout:
        raise UserError(f"{folder}: no <lang>/<split>-*.parquet shards found (see the corpus layout in CONTRIBUTING.md)")
    try:
        card = DatasetCard(readme.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's card
        raise UserError(f"{readme}: card metadata does not parse: {exc}") from None
    data = card.data
    data.configs = configs_metadata(layout)
    data.dataset_info = dataset_info_metadata(layout)
    if spec.license and not data.get("license"):
        data.license = spec.license
    if not data.get("language"):
        data.language = list(spec.languages) or list(layout)
    if not data.get("pretty_name"):
        data.pretty_name = spec.pretty_name or spec.name
    tags = list(data.get("tags") or [])
    data.tags = list(dict.fromkeys([*tags, *spec.tags, "medical"]))
    return str(card) if str(card).endswith("\n") else str(card) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------------------------


def _sections(text: str) -> set[str]:
    return {m.group(1).strip().lower() for m in re.finditer(r"^#{1,4}\s+(.+?)\s*$", text, flags=re.M)}


def validate_card(text: str, repo_type: str, kind: str | None = None) -> list[str]:
    """Problems with a card (empty list = valid): metadata parses, required keys and sections are present."""
    from huggingface_hub import DatasetCard, ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    problems: list[str] = []
    if not text.startswith("---"):
        return ["no YAML metadata block at the top of README.md"]
    try:
        card = (ModelCard if repo_type == "model" else DatasetCard)(text)
    except Exception as exc:  # noqa: BLE001
        return [f"metadata does not parse: {exc}"]
    meta = card.data.to_dict()
    required = REQUIRED_MODEL_METADATA if repo_type == "model" else REQUIRED_DATASET_METADATA
    for key in required:
        if key not in meta or meta[key] in (None, "", [], {}):
            problems.append(f"metadata key '{key}' is missing or empty")
    lang = meta.get("language")
    for code in [lang] if isinstance(lang, str) else (lang or []):
        if not re.fullmatch(r"[a-z]{2,3}|multilingual", str(code)):
            problems.append(f"language code {code!r} is not ISO 639-1/2/3")
    if repo_type == "model" and "model-index" in meta:
        try:
            _, results = model_index_to_eval_results(meta["model-index"])
            if not results:
                problems.append("model-index holds no results")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"model-index does not parse: {exc}")
    if repo_type == "dataset" and meta.get("configs"):
        for c in meta["configs"]:
            if not c.get("config_name") or not c.get("data_files"):
                problems.append(f"config entry {c!r} needs config_name and data_files")
    sections = REQUIRED_MODEL_SECTIONS if repo_type == "model" else REQUIRED_DATASET_SECTIONS
    if kind != "corpus":
        present = _sections(card.text)
        for s in sections:
            if not any(p.startswith(s.lower()) for p in present):
                problems.append(f"section '## {s}' is missing")
        if "```python" not in card.text:
            problems.append("no ```python usage snippet")
    return problems


def card_eval_results(text: str) -> list:
    from huggingface_hub import ModelCard

    return list(ModelCard(text).data.eval_results or [])


def _result_key(r) -> tuple:
    return (r.task_type, r.task_name, r.dataset_type, r.dataset_name, r.dataset_config, r.dataset_split, r.metric_type)


def eval_roundtrip_problems(text: str, expected: list, rel_tol: float = 1e-9) -> list[str]:
    """Check that the card's ``model-index`` parses back into ``expected`` (same tasks, datasets, numbers)."""
    got = card_eval_results(text)
    problems = []
    index = {_result_key(r): r for r in got}
    for e in expected:
        r = index.get(_result_key(e))
        if r is None:
            problems.append(f"result {e.task_name}/{e.dataset_name}/{e.metric_type} missing from model-index")
        elif not math.isclose(float(r.metric_value), float(e.metric_value), rel_tol=rel_tol, abs_tol=1e-12):
            problems.append(f"result {e.metric_type} on {e.dataset_name}: card says {r.metric_value}, expected {e.metric_value}")
    if len(got) != len(expected):
        problems.append(f"model-index has {len(got)} results, expected {len(expected)}")
    return problems


def extract_python_snippets(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]
