"""Release helpers for classifier runs: the card (from the run's own records) and the downstream check.

:func:`render_classifier_card` reads ``metrics.json``, ``student_eval.json``, the teacher's evaluation and
``comparison.json`` (when ``polyclinic classifier report`` ran) and renders ``model_cards/text_classifier.md.j2``
with ``pipeline_tag: text-classification``, the label set, per-class F1 of the student in ``model-index``, the
verified-subset size and the teacher with its prompt version (an offline teacher is named as such).

:func:`verify_classifier` loads a folder or Hub repo with ``transformers.pipeline("text-classification")``
and checks that it reproduces the fixed slice saved at training time (``verification_slice.json``: labels
equal, top scores within a tolerance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polyclinic.errors import UserError
from polyclinic.io import read_json


def _load_run(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "student_eval.json").is_file():
        raise UserError(f"{run_dir} is not a finished classifier run (polyclinic classifier train first)")
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    return {"metrics": read_json(run_dir / "metrics.json"), "student": read_json(run_dir / "student_eval.json"),
            "config": cfg, "comparison": read_json(run_dir / "comparison.json") if (run_dir / "comparison.json").is_file() else None}


def card_metadata(run: dict, *, repo_id: str, license: str, languages: list[str], tags: list[str] | None = None,
                  base_model: str | None = None, datasets: list[str] | None = None) -> dict:
    m, s = run["metrics"], run["student"]
    name = repo_id.split("/")[-1]
    metrics = [{"type": "f1", "name": f"F1 {label}", "value": round(v["f1"], 4)} for label, v in s["per_class"].items()]
    metrics += [{"type": "f1", "name": "macro F1", "value": round(s["macro_f1"], 4)},
                {"type": "accuracy", "name": "accuracy", "value": round(s["accuracy"], 4)},
                {"type": "cohen_kappa", "name": "Cohen's kappa", "value": round(s["cohen_kappa"], 4)}]
    meta: dict[str, Any] = {
        "license": license, "language": languages or ["multilingual"], "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": list(dict.fromkeys(["text-classification", "medical", "clinical", "distillation", *(tags or [])])),
    }
    if base_model:
        meta["base_model"] = base_model
    if datasets:
        meta["datasets"] = datasets
    meta["model-index"] = [{"name": name, "results": [{
        "task": {"type": "text-classification", "name": "Text Classification"},
        "dataset": {"name": f"verified subset ({s['num_examples']} documents)", "type": "verified-subset",
                    "split": "verified"},
        "metrics": metrics}]}]
    return meta


def render_classifier_card(run_dir: str | Path, *, repo_id: str, license: str = "apache-2.0",
                           languages: list[str] | None = None, tags: list[str] | None = None,
                           base_model: str | None = None, datasets: list[str] | None = None,
                           description: str | None = None, version: str | None = None,
                           template: str = "model_cards/text_classifier.md.j2") -> str:
    from polyclinic.cards.render import render_template
    from polyclinic.teacher.verified import teacher_eval

    run_dir = Path(run_dir)
    run = _load_run(run_dir)
    m, s = run["metrics"], run["student"]
    t_eval = teacher_eval(run["config"]["teacher_dir"])
    teacher = m.get("teacher", {})
    langs = languages or sorted(k for k in s.get("by_language", {}) if k != "und")
    comp = run["comparison"]

    def f(v):
        return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    rows = [{"name": f"F1 {l}", "teacher": f(t_eval["per_class"].get(l, {}).get("f1")), "student": f(s["per_class"][l]["f1"])}
            for l in m["labels"]]
    rows += [{"name": "macro F1", "teacher": f(t_eval["macro_f1"]), "student": f(s["macro_f1"])},
             {"name": "Cohen's kappa", "teacher": f(t_eval["cohen_kappa"]), "student": f(s["cohen_kappa"])}]
    if comp:
        from polyclinic.classification.report import _fmt

        for key, name, kind in [("parameters", "parameters", ""), ("disk_bytes", "disk size", "bytes"),
                                ("peak_rss_bytes", "peak memory (RSS)", "bytes"),
                                ("latency_ms_per_document", "latency ms/document", ""),
                                ("throughput_documents_per_s", "documents/s", "")]:
            rows.append({"name": name, "teacher": _fmt(comp["teacher"].get(key), kind),
                         "student": _fmt(comp["student"].get(key), kind)})
    machine = f"{comp['machine']['cpus']} CPUs, {comp['machine']['platform']}" if comp else "not measured: run polyclinic classifier report"
    slice_path = run_dir / "final" / "verification_slice.json"
    example = json.loads(slice_path.read_text(encoding="utf-8"))["texts"][0] if slice_path.is_file() else "…"
    return render_template(
        template, metadata=card_metadata(run, repo_id=repo_id, license=license, languages=langs, tags=tags,
                                         base_model=base_model, datasets=datasets),
        model_name=repo_id.split("/")[-1], description=description, labels=m["labels"], multi_label=m["multi_label"],
        base_model=base_model, verified_size=s["num_examples"], teacher_name=teacher.get("name", "unknown"),
        teacher_offline=bool(teacher.get("offline") or teacher.get("kind") == "zero_shot"),
        teacher_prompt_version=teacher.get("prompt_version") or "not recorded", train_examples=m["train_examples"],
        languages=langs, license=license, version=version, rows=rows, machine=machine, repo_id=repo_id,
        example=example.replace('"', '\\"'))


def verify_classifier(repo_or_path: str | Path, tolerance: float = 1e-3, revision: str | None = None) -> dict:
    """Load with ``pipeline("text-classification", model=...)`` and re-run the saved verification slice."""
    from transformers import pipeline

    target = str(repo_or_path)
    if Path(target).is_dir():
        slice_file = Path(target) / "verification_slice.json"
    else:
        from huggingface_hub import hf_hub_download

        slice_file = Path(hf_hub_download(target, "verification_slice.json", revision=revision))
    if not slice_file.is_file():
        raise UserError(f"{target} has no verification_slice.json (not a polyclinic classifier)")
    ref = json.loads(slice_file.read_text(encoding="utf-8"))
    kwargs = {"revision": revision} if revision and not Path(target).is_dir() else {}
    clf = pipeline("text-classification", model=target, device=-1, **kwargs)
    if ref.get("multi_label"):
        outs = clf(ref["texts"], top_k=None, function_to_apply="sigmoid")
        got = [[o["label"] for o in out if o["score"] >= 0.5] or [max(out, key=lambda o: o["score"])["label"]] for out in outs]
        scores = [max(o["score"] for o in out) for out in outs]
    else:
        outs = clf(ref["texts"])
        got = [o["label"] for o in outs]
        scores = [o["score"] for o in outs]
    same = sum(1 for a, b in zip(got, ref["labels"]) if a == b)
    max_diff = max((abs(a - b) for a, b in zip(scores, ref["scores"])), default=0.0)
    return {"ok": same == len(ref["labels"]) and max_diff <= tolerance, "labels_matching": same,
            "num_texts": len(ref["texts"]), "max_score_diff": max_diff, "labels": sorted(clf.model.config.id2label.values())}
