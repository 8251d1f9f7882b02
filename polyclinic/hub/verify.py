"""Verify a pushed artefact the way a downstream user meets it: a fresh process with an empty ``HF_HOME``.

* mT5 (``kind=mt5``): ``AutoTokenizer`` + ``AutoModelForSeq2SeqLM.from_pretrained(repo)``, one ``generate`` on a
  sentinel prompt, then the *verification slice* (span-corruption loss on fixed sentences with fixed masks)
  compared with the number in the card's ``model-index``.
* encoders (``kind=encoder``): ``SentenceTransformer(repo)``, ``encode`` + ``similarity``, then the slice
  (mean cosine similarity of fixed synonym pairs) compared with the card.
* classifiers (``kind=classifier``): ``pipeline("text-classification", model=repo)`` on the texts saved at
  training (labels and scores must match), then the slice (mean top-class probability) compared with the card.
* datasets (``corpus``/``benchmark``/``pairs``): ``load_dataset(repo, config, split=...)`` for every config and
  split of the card's ``dataset_info``; row counts must match the card.

The parent (:func:`verify_repo`, :func:`verify_release`) never imports the ML libraries: each artefact runs in
``python -m polyclinic.hub.verify --child ...`` with ``HF_ENDPOINT``/``HF_HOME`` set, and writes a JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from polyclinic.errors import UserError
from polyclinic.hub.gates import current_tokens, mask_secrets
from polyclinic.hub.release import MODEL_KINDS
from polyclinic.logging_utils import get_logger

log = get_logger("hub.verify")

SLICE_TEXTS = (
    "El paciente presenta dolor torácico opresivo irradiado al brazo izquierdo desde hace dos horas.",
    "Se diagnostica diabetes mellitus tipo 2 y se inicia tratamiento con metformina.",
    "The patient was admitted with community acquired pneumonia and treated with antibiotics.",
    "Chronic kidney disease stage 3 was noted in the discharge summary of the patient.",
    "Le patient présente une insuffisance cardiaque chronique avec dyspnée d'effort.",
    "Il paziente riferisce cefalea persistente e nausea da tre giorni.",
)
SLICE_PAIRS = (
    ("myocardial infarction", "heart attack"),
    ("infarto agudo de miocardio", "myocardial infarction"),
    ("diabetes mellitus tipo 2", "type 2 diabetes"),
    ("hipertensión arterial", "high blood pressure"),
    ("insuffisance cardiaque", "heart failure"),
    ("polmonite", "pneumonia"),
)
SENTINEL_PROMPT = "El paciente presenta <extra_id_0> torácico de inicio súbito."
_SCRUB_ENV = (
    "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "SENTENCE_TRANSFORMERS_HOME",
    "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_XET_CACHE", "HF_ASSETS_CACHE", "HF_TOKEN_PATH",
)


# --------------------------------------------------------------------------------------------------------------------
# verification slices (computed at card time on the local folder, recomputed after download)
# --------------------------------------------------------------------------------------------------------------------


def mt5_slice(model, tokenizer) -> dict:
    """Mean span-corruption loss on :data:`SLICE_TEXTS` with two fixed masked spans per sentence."""
    import torch

    from polyclinic.tokenization import sentinel_ids

    sentinels = sentinel_ids(tokenizer, 2)
    eos = tokenizer.eos_token_id
    losses = []
    model.eval()
    for text in SLICE_TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        n = len(ids)
        if n < 8:
            continue
        k = max(1, round(n * 0.15 / 2))
        spans = [(n // 4, n // 4 + k), (2 * n // 3, min(n - 1, 2 * n // 3 + k))]
        inputs, labels, pos = [], [], 0
        for j, (a, b) in enumerate(spans):
            inputs += ids[pos:a] + [sentinels[j]]
            labels += [sentinels[j]] + ids[a:b]
            pos = b
        inputs += ids[pos:] + [eos]
        labels += [eos]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([inputs]), labels=torch.tensor([labels]))
        losses.append(float(out.loss))
    if not losses:
        raise UserError("verification slice: the tokenizer produced too few tokens for every slice sentence")
    return {"metric": "loss", "value": sum(losses) / len(losses), "num_examples": len(losses)}


def encoder_slice(model) -> dict:
    """Mean cosine similarity of the fixed synonym pairs :data:`SLICE_PAIRS`."""
    left = model.encode([a for a, _ in SLICE_PAIRS], normalize_embeddings=True, convert_to_numpy=True)
    right = model.encode([b for _, b in SLICE_PAIRS], normalize_embeddings=True, convert_to_numpy=True)
    sims = (left * right).sum(axis=1)
    return {"metric": "cosine_similarity", "value": float(sims.mean()), "num_examples": len(SLICE_PAIRS)}


def local_verification(kind: str, model_dir: str | Path) -> dict:
    """The slice on a local model folder (what the card records before the push).

    The value is rounded to 6 significant digits: recomputing it on the same weights differs in the last
    float bits (reduction order), and the card must not change (forcing a new commit) when the model did not.
    """
    if kind == "mt5":
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        result = mt5_slice(AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)), AutoTokenizer.from_pretrained(str(model_dir)))
    elif kind == "encoder":
        from sentence_transformers import SentenceTransformer

        result = encoder_slice(SentenceTransformer(str(model_dir), device="cpu"))
    elif kind == "classifier":
        from polyclinic.classification.release import classifier_slice

        result = classifier_slice(model_dir)
    else:
        raise UserError(f"no verification slice for kind {kind!r}")
    result["value"] = float(f"{result['value']:.6g}")
    return result


# --------------------------------------------------------------------------------------------------------------------
# the child process
# --------------------------------------------------------------------------------------------------------------------


def _card_expectation(card_text: str) -> dict | None:
    from polyclinic.hub.cards import VERIFICATION_DATASET, card_eval_results

    for r in card_eval_results(card_text):
        if r.dataset_type == VERIFICATION_DATASET:
            return {"metric": r.metric_type, "value": float(r.metric_value)}
    return None


def _download_card(repo_id: str, repo_type: str, revision: str | None) -> str:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id, "README.md", repo_type=repo_type, revision=revision)
    return Path(path).read_text(encoding="utf-8")


def _detect_kind(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi()
    try:
        info = api.model_info(repo_id, revision=revision)
        if (info.pipeline_tag or "") == "text-classification":
            return "classifier"
        return "encoder" if (info.library_name or "") == "sentence-transformers" else "mt5"
    except RepositoryNotFoundError:
        api.dataset_info(repo_id, revision=revision)
        return "dataset"


def _child(repo_id: str, kind: str, revision: str | None, tolerance: float) -> dict:
    t0 = time.perf_counter()
    if kind == "auto":
        kind = _detect_kind(repo_id, revision)
    checks: list[dict] = []
    out: dict = {"repo_id": repo_id, "kind": kind, "revision": revision, "checks": checks}

    def check(name: str, ok: bool, detail: str = "", **extra) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail, **extra})

    if kind in MODEL_KINDS:
        expected = _card_expectation(_download_card(repo_id, "model", revision))
        if kind == "mt5":
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(repo_id, revision=revision)
            model = AutoModelForSeq2SeqLM.from_pretrained(repo_id, revision=revision)
            check("from_pretrained", True, f"{type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters, vocab {len(tok)}")
            enc = tok(SENTINEL_PROMPT, return_tensors="pt")
            gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
            text = tok.decode(gen[0], skip_special_tokens=False)
            check("generate", gen.shape[-1] > 1, f"{SENTINEL_PROMPT!r} -> {text!r}")
            got = mt5_slice(model, tok)
        elif kind == "encoder":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(repo_id, revision=revision, device="cpu")
            emb = model.encode(["myocardial infarction", "infarto de miocardio", "fractura de fémur"])
            sim = model.similarity(emb, emb)
            check("encode", emb.shape[0] == 3 and emb.shape[1] > 0, f"dim {emb.shape[1]}")
            import math

            check("similarity", all(math.isfinite(float(v)) for v in sim.flatten()) and abs(float(sim[0, 0]) - 1) < 1e-3,
                  f"sim(MI, infarto)={float(sim[0, 1]):.3f} sim(MI, fractura)={float(sim[0, 2]):.3f}")
            got = encoder_slice(model)
        else:
            from polyclinic.classification.release import verify_classifier

            res = verify_classifier(repo_id, tolerance, revision)
            check("pipeline text-classification", res["ok"], f"{res['labels_matching']}/{res['num_texts']} labels as "
                  f"saved at training, max |score diff| {res['max_score_diff']:.2e} <= {tolerance}; labels {res['labels']}")
            got = {"metric": "mean_top_score", "value": res["mean_top_score"]}
        if expected is None:
            check("slice vs card", False, "the card has no verification-slice result in model-index")
        else:
            diff = abs(got["value"] - expected["value"])
            check("slice vs card", diff <= tolerance and got["metric"] == expected["metric"],
                  f"{got['metric']}: downloaded {got['value']:.6f} vs card {expected['value']:.6f} (|diff| {diff:.2e} <= {tolerance})",
                  measured=got["value"], card=expected["value"])
    elif kind in ("dataset", "corpus", "benchmark", "pairs"):
        from datasets import load_dataset
        from huggingface_hub import DatasetCard

        card = DatasetCard(_download_card(repo_id, "dataset", revision))
        infos = card.data.get("dataset_info") or []
        infos = [infos] if isinstance(infos, dict) else infos
        if not infos:
            check("card row counts", False, "the card has no dataset_info with split sizes")
        for info in infos:
            config = info.get("config_name") or "default"
            for split in info.get("splits") or []:
                ds = load_dataset(repo_id, config, split=split["name"], revision=revision)
                n = len(ds)
                check(f"load_dataset {config}/{split['name']}", n == split.get("num_examples"),
                      f"{n} rows vs card {split.get('num_examples')}; columns {ds.column_names}", rows=n)
    else:
        raise UserError(f"unknown kind {kind!r}")
    prefix = "models" if kind in MODEL_KINDS else "datasets"
    blobs = Path(os.environ["HF_HOME"]) / "hub" / f"{prefix}--{repo_id.replace('/', '--')}" / "blobs"
    out["downloaded_files"] = sum(1 for p in blobs.iterdir() if p.is_file()) if blobs.is_dir() else 0
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["ok"] = all(c["ok"] for c in checks) and bool(checks)
    return out


# --------------------------------------------------------------------------------------------------------------------
# the parent side
# --------------------------------------------------------------------------------------------------------------------


def fresh_env(endpoint: str | None, hf_home: str | Path, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env["HF_HOME"] = str(hf_home)
    if endpoint:
        env["HF_ENDPOINT"] = endpoint.rstrip("/")
        if "huggingface.co" not in endpoint:
            env["HF_HUB_DISABLE_XET"] = "1"
    if token:
        env["HF_TOKEN"] = token
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def verify_repos(targets: list[dict], *, endpoint: str | None = None, tolerance: float = 1e-3,
                 timeout: float = 1800) -> list[dict]:
    """Verify ``[{repo_id, kind, revision}]`` in ONE fresh subprocess with an empty ``HF_HOME``.

    One process for a whole release keeps the (slow) ML imports to one; the cache starts empty all the same.
    """
    token = next(iter(current_tokens()), None)
    with tempfile.TemporaryDirectory(prefix="polyclinic-verify-") as tmp:
        result_file = Path(tmp) / "result.json"
        targets_file = Path(tmp) / "targets.json"
        targets_file.write_text(json.dumps(targets))
        env = fresh_env(endpoint, Path(tmp) / "hf_home", token)
        cmd = [sys.executable, "-m", "polyclinic.hub.verify", "--targets", str(targets_file),
               "--tolerance", str(tolerance), "--result", str(result_file)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            failure = f"verification process failed (exit {proc.returncode}):\n{mask_secrets((proc.stderr or '')[-3000:])}"
        except subprocess.TimeoutExpired:
            failure = f"verification process timed out after {timeout}s"
        reports = json.loads(result_file.read_text()) if result_file.is_file() else []
        done = {r["repo_id"] for r in reports}
        for t in targets:
            if t["repo_id"] not in done:
                reports.append({**t, "ok": False, "checks": [], "error": failure})
        wall = round(time.perf_counter() - t0, 2)
        for r in reports:
            r["process_seconds"] = wall
        return reports


def verify_repo(repo_id: str, kind: str = "auto", *, endpoint: str | None = None, revision: str | None = None,
                tolerance: float = 1e-3, timeout: float = 900) -> dict:
    """Verify one repo in a fresh subprocess with an empty ``HF_HOME``; returns its JSON report."""
    (report,) = verify_repos([{"repo_id": repo_id, "kind": kind, "revision": revision}], endpoint=endpoint,
                             tolerance=tolerance, timeout=timeout)
    return report


def verify_release(cfg, *, revision: str | None = None, only: list[str] | None = None) -> dict:
    """Verify every artefact of a release at its version tag (default) from fresh processes."""
    from polyclinic.hub.push import resolve_endpoint
    from polyclinic.hub.release import MODEL_KINDS

    endpoint = resolve_endpoint(cfg)
    skipped, targets = [], []
    for spec in cfg.artefacts:
        if only and spec.repo_id not in only:
            continue
        if spec.optional and not cfg.artefact_path(spec).exists():
            skipped.append({"repo_id": spec.repo_id, "kind": spec.kind, "ok": True, "skipped": "optional artefact missing", "checks": []})
            continue
        kind = spec.kind if spec.kind in MODEL_KINDS else "dataset"
        targets.append({"repo_id": spec.repo_id, "kind": kind, "revision": revision or cfg.version})
    log.info("verifying %d repo(s) at %s in a fresh process with an empty HF_HOME", len(targets), revision or cfg.version)
    reports = verify_repos(targets, endpoint=endpoint, tolerance=cfg.verify_tolerance) if targets else []
    order = {t["repo_id"]: i for i, t in enumerate(targets)}
    reports = sorted(reports, key=lambda r: order.get(r["repo_id"], 0)) + skipped
    return {"endpoint": endpoint, "version": revision or cfg.version, "ok": all(r["ok"] for r in reports), "repos": reports}


def format_report(report: dict) -> str:
    repos = report.get("repos") or [report]
    lines = [f"{'repo':<40} {'kind':<8} {'check':<28} {'ok':<4} detail"]
    for r in repos:
        if r.get("error"):
            lines.append(f"{r['repo_id']:<40} {r['kind']:<8} {'(process)':<28} {'NO':<4} {r['error'].splitlines()[0]}")
            lines += [f"{'':<82}{ln}" for ln in r["error"].splitlines()[1:][-8:]]
        if r.get("skipped"):
            lines.append(f"{r['repo_id']:<40} {r['kind']:<8} {'(skipped)':<28} {'-':<4} {r['skipped']}")
        for c in r.get("checks", []):
            lines.append(f"{r['repo_id']:<40} {r['kind']:<8} {c['check'][:28]:<28} {'yes' if c['ok'] else 'NO':<4} {c['detail']}")
    ok = all(r.get("ok") for r in repos)
    lines.append(f"verification {'PASSED' if ok else 'FAILED'} ({len(repos)} repo(s))")
    return "\n".join(lines)


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m polyclinic.hub.verify")
    p.add_argument("--targets", required=True, help="JSON file: [{repo_id, kind, revision}]")
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    from polyclinic.io import write_json

    reports = []
    for t in json.loads(Path(a.targets).read_text()):
        try:
            report = _child(t["repo_id"], t.get("kind") or "auto", t.get("revision"), a.tolerance)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a report line
            report = {**t, "ok": False, "checks": [], "error": mask_secrets(f"{type(exc).__name__}: {exc}")}
        reports.append(report)
        write_json(a.result, reports)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
