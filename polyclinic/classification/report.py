"""Teacher vs student, side by side, measured on this machine (``polyclinic classifier report RUN``).

Each model is measured in a FRESH subprocess (``python -m polyclinic.classification.report --measure``) so
peak memory is that model's alone: parameters, disk size of its files, peak resident memory (``ru_maxrss``)
and the resident memory before loading it, latency per document (batch of 1, median over the texts) and
throughput (documents per second, batches of 64), on the verified texts. An LLM teacher behind an endpoint
cannot be measured here: its parameters/disk/memory are reported as unknown and its latency is the
measured mean request time of the labelling run.

Outputs: ``<run>/comparison.json`` and ``<run>/REPORT.md``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from polyclinic.errors import UserError
from polyclinic.io import atomic_write_text, read_json, write_json


def folder_bytes(path: str | Path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _rss_bytes() -> int:
    """Peak resident memory of this process. On Linux ``VmHWM`` (per address space, so reset by ``exec``):
    ``ru_maxrss`` survives ``fork``+``exec`` and would report the parent's peak when the parent is larger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb * (1 if sys.platform == "darwin" else 1024))


def _measure(kind: str, path: str, texts: list[str], teacher_dir: str | None) -> dict:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    before = _rss_bytes()
    if kind == "student":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        params = sum(p.numel() for p in model.parameters())

        def run(batch):
            with torch.no_grad():
                enc = tok(batch, truncation=True, max_length=128, padding=True, return_tensors="pt")
                return model(**enc).logits.argmax(-1)
        disk = folder_bytes(path)
    else:
        from polyclinic.config import load_config
        from polyclinic.teacher.config import TeacherConfig
        from polyclinic.teacher.labeler import ZeroShotTeacher

        cfg = load_config(TeacherConfig, Path(teacher_dir) / "config.yaml")
        teacher = ZeroShotTeacher(cfg)
        params = sum(p.numel() for p in teacher.model.parameters()) + int(teacher.prototypes.size)
        disk = folder_bytes(teacher.path)
        run = teacher.predict
    run(texts[:2])  # warm-up
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        run([t])
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, len(texts), 64):
        run(texts[i:i + 64])
    thr = len(texts) / max(time.perf_counter() - t0, 1e-9)
    return {"parameters": int(params), "disk_bytes": int(disk), "rss_before_load_bytes": before,
            "peak_rss_bytes": _rss_bytes(), "latency_ms_per_document": round(statistics.median(lat) * 1000, 3),
            "throughput_documents_per_s": round(thr, 2), "num_texts": len(texts), "device": "cpu",
            "threads": torch.get_num_threads()}


def measure_in_subprocess(kind: str, path: str, texts: list[str], teacher_dir: str | None = None,
                          timeout: float = 600) -> dict:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(texts, fh)
        tf = fh.name
    try:
        cmd = [sys.executable, "-m", "polyclinic.classification.report", "--measure", kind, path, tf]
        if teacher_dir:
            cmd.append(teacher_dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    finally:
        os.unlink(tf)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(run_dir: str | Path, max_texts: int = 200) -> dict:
    """Measure teacher and student of ``run_dir`` on the verified texts and write the comparison."""
    from polyclinic.teacher.verified import teacher_eval

    run = Path(run_dir)
    if not (run / "metrics.json").is_file():
        raise UserError(f"{run} is not a finished classifier run (polyclinic classifier train first)")
    metrics = read_json(run / "metrics.json")
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    tdir = cfg["teacher_dir"]
    student_eval = read_json(run / "student_eval.json")
    t_eval = teacher_eval(tdir)
    texts = [json.loads(l)["id"] for l in Path(tdir, "verified.jsonl").read_text(encoding="utf-8").splitlines() if l]
    docs = {json.loads(l)["id"]: json.loads(l)["text"] for l in Path(tdir, "documents.jsonl").read_text(encoding="utf-8").splitlines() if l}
    texts = [docs[i] for i in texts if i in docs][:max_texts]
    teacher = metrics.get("teacher", {})
    student_m = measure_in_subprocess("student", str(run / "final"), texts)
    if teacher.get("kind") == "zero_shot":
        teacher_m = measure_in_subprocess("zero_shot", teacher.get("model_path", ""), texts, tdir)
    else:
        stats = read_json(Path(tdir) / "stats.json")
        lat = stats.get("latency_s_per_document")
        teacher_m = {"parameters": None, "disk_bytes": None, "peak_rss_bytes": None,
                     "latency_ms_per_document": round(lat * 1000, 3) if lat else None,
                     "throughput_documents_per_s": None, "note": "remote endpoint: mean request time while labelling"}
    labels = metrics["labels"]
    out = {
        "teacher": {"name": teacher.get("name"), "kind": teacher.get("kind"), "prompt_version": teacher.get("prompt_version"),
                    "macro_f1": t_eval["macro_f1"], "accuracy": t_eval["accuracy"], "cohen_kappa": t_eval["cohen_kappa"],
                    "per_class_f1": {k: v["f1"] for k, v in t_eval["per_class"].items()}, "num_examples": t_eval["num_examples"],
                    **teacher_m},
        "student": {"name": metrics.get("name"), "base_model": metrics.get("base_model"),
                    "macro_f1": student_eval["macro_f1"], "accuracy": student_eval["accuracy"],
                    "cohen_kappa": student_eval["cohen_kappa"],
                    "per_class_f1": {k: v["f1"] for k, v in student_eval["per_class"].items()},
                    "num_examples": student_eval["num_examples"], **student_m},
        "labels": labels, "verified_size": t_eval.get("verified_size", t_eval["num_examples"]),
        "machine": {"platform": sys.platform, "cpus": os.cpu_count()},
        "student_inputs_hash": metrics.get("inputs_hash"),  # which trained student this comparison measured
    }
    ratios = {}
    for key in ("parameters", "disk_bytes", "peak_rss_bytes", "latency_ms_per_document"):
        a, b = out["teacher"].get(key), out["student"].get(key)
        if a and b:
            ratios[f"teacher_over_student_{key}"] = round(a / b, 3)
    out["ratios"] = ratios
    write_json(run / "comparison.json", out)
    atomic_write_text(run / "REPORT.md", format_comparison(out))
    return out


def _fmt(v, kind: str = "") -> str:
    if v is None:
        return "n/a"
    if kind == "bytes":
        return f"{v / 2**20:.1f} MiB"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int) and v > 10000:
        return f"{v / 1e6:.2f} M"
    return str(v)


def format_comparison(c: dict) -> str:
    t, s = c["teacher"], c["student"]
    lines = ["# Teacher vs student", "", f"Verified subset: {c['verified_size']} documents. Teacher: {t['name']} "
             f"(prompt version {t['prompt_version']}). Measured on this machine ({c['machine']['cpus']} CPUs).", "",
             "| | teacher | student |", "| --- | --- | --- |"]
    for label in c["labels"]:
        lines.append(f"| F1 {label} | {_fmt(t['per_class_f1'].get(label))} | {_fmt(s['per_class_f1'].get(label))} |")
    for key, name, kind in [("macro_f1", "macro F1", ""), ("accuracy", "accuracy", ""), ("cohen_kappa", "Cohen's kappa", ""),
                            ("parameters", "parameters", ""), ("disk_bytes", "disk size", "bytes"),
                            ("peak_rss_bytes", "peak memory (RSS)", "bytes"),
                            ("latency_ms_per_document", "latency ms/document (batch 1)", ""),
                            ("throughput_documents_per_s", "throughput documents/s (batch 64)", "")]:
        lines.append(f"| {name} | {_fmt(t.get(key), kind)} | {_fmt(s.get(key), kind)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the measuring subprocess
    if len(sys.argv) >= 5 and sys.argv[1] == "--measure":
        kind, path, tf = sys.argv[2], sys.argv[3], sys.argv[4]
        tdir = sys.argv[5] if len(sys.argv) > 5 else None
        texts = json.loads(Path(tf).read_text(encoding="utf-8"))
        print(json.dumps(_measure(kind, path, texts, tdir)))
    else:
        raise SystemExit("usage: python -m polyclinic.classification.report --measure KIND PATH TEXTS.json [TEACHER_DIR]")
