"""Corpus build throughput and memory: does peak RSS stay flat when the input grows 10x?

Generates a synthetic JSONL corpus (English + Spanish documents made of shuffled *real* terminology
sentences from the packaged ICD-10-CM, WHO ICD-10, CIE-10 and HPO sources, so the text is text-like and
not trivially deduplicated), builds it with `polyclinic.data.corpus.build_corpus` in a child process at
1x (= --mb / 10) and 10x (= --mb) input size, samples the child's RSS with psutil, and prints MB/s, peak
RSS, peak_RSS / input_size and the 10x / 1x peak-RSS ratio (the reference run is the 1x build).

    python benchmarks/bench_corpus_build.py --mb 200          # default: 20 MB and 200 MB
    python benchmarks/bench_corpus_build.py --mb 40 --no-near # without MinHash LSH (only 8-byte digests grow)

Results go to benchmarks/results/corpus_build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sentences() -> dict[str, list[str]]:
    from polyclinic.data.packaged import iter_packaged

    out: dict[str, list[str]] = {"en": [], "es": []}
    for source, lang in (("icd10cm", "en"), ("who_icd10", "en"), ("hpo", "en"), ("cie10_es", "es")):
        for _, text in iter_packaged(source):
            out[lang] += [s.strip() + "." for s in re.split(r"(?<=\.) ", text) if len(s) > 20]
    return out


def generate(path: Path, mb: float, seed: int = 0, sentences: dict[str, list[str]] | None = None) -> int:
    """Write ~``mb`` MB of JSONL documents (30-120 sentences each, 70% en / 30% es); returns bytes written."""
    rng = random.Random(seed)
    sentences = sentences or _sentences()
    target = int(mb * 1e6)
    written = 0
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            lang = "en" if rng.random() < 0.7 else "es"
            pool = sentences[lang]
            text = " ".join(rng.choice(pool) for _ in range(rng.randint(30, 120)))
            line = json.dumps({"id": f"d{n}", "text": text, "lang": lang}, ensure_ascii=False) + "\n"
            fh.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return written


def _child(cfg_path: str) -> None:
    """Runs in the child process: build and print the report as JSON on the last line."""
    import logging

    import psutil

    logging.basicConfig(level=logging.ERROR)
    from polyclinic.config import load_config
    from polyclinic.data import corpus as corpus_mod
    from polyclinic.data.config import CorpusConfig

    # The streaming pipeline's own peak: sample RSS until the outputs phase starts (write_manifest imports
    # torch/transformers/... to record their versions, which dwarfs the pipeline's memory).
    me = psutil.Process()
    peak = {"pipeline": 0, "start": me.memory_info().rss}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["pipeline"] = max(peak["pipeline"], me.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    original = corpus_mod._write_outputs

    def outputs(*a, **k):
        done.set()
        th.join()
        return original(*a, **k)

    corpus_mod._write_outputs = outputs
    cfg = load_config(CorpusConfig, cfg_path)
    rep = corpus_mod.build_corpus(cfg)
    st = rep["stats"]
    print(json.dumps({"pipeline_peak_rss_mb": round(peak["pipeline"] / 1e6, 1), "rss_before_build_mb": round(peak["start"] / 1e6, 1),
                      "seconds": rep["seconds"], "input_bytes": rep["input_bytes"], "read": st["read"], "kept": st["kept"],
                      "rejected": st["rejected"], "near_dedup_index_resets": st["near_dedup_index_resets"],
                      "dedup_memory_bytes": st["dedup_memory_bytes"]}))


def run_build(jsonl: Path, out: Path, near: bool, workdir: Path) -> dict:
    import psutil
    import yaml

    cfg = {
        "name": "bench", "output_dir": str(out), "languages": ["en", "es"], "progress": False,
        "sources": [{"type": "jsonl", "path": str(jsonl), "lang_field": "lang", "id_field": "id"}],
        "dedup": {"near": {"enabled": near}}, "split": {"validation_fraction": 0.01},
    }
    cfg_path = workdir / f"{out.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--_child", str(cfg_path)], stdout=subprocess.PIPE, text=True,
                            cwd=str(ROOT))
    ps = psutil.Process(proc.pid)
    peak = {"rss": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak["rss"] = max(peak["rss"], ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, _ = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build failed (exit {proc.returncode})")
    rep = json.loads(stdout.strip().splitlines()[-1])
    rep.update(wall_seconds=round(wall, 2), peak_rss_mb=round(peak["rss"] / 1e6, 1))
    mb = rep["input_bytes"] / 1e6
    rep["input_mb"] = round(mb, 1)
    rep["mb_per_second"] = round(mb / rep["seconds"], 2)
    rep["peak_rss_over_input"] = round(peak["rss"] / rep["input_bytes"], 3)
    rep["pipeline_peak_rss_over_input"] = round(rep["pipeline_peak_rss_mb"] * 1e6 / rep["input_bytes"], 3)
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="the 10x input size in MB (the 1x run uses mb/10)")
    ap.add_argument("--no-near", action="store_true", help="disable MinHash LSH near-dedup")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpus_build.json"))
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _child(args._child)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        sentences = _sentences()
        results = {}
        for label, mb in (("1x", args.mb / 10), ("10x", args.mb)):
            src = work / f"input_{label}.jsonl"
            generate(src, mb, seed=1, sentences=sentences)
            rep = run_build(src, work / f"corpus_{label}", near=not args.no_near, workdir=work)
            results[label] = rep
            print(f"{label:>4}: input {rep['input_mb']:8.1f} MB  {rep['read']:>8,} docs  build {rep['seconds']:7.1f} s  "
                  f"{rep['mb_per_second']:6.2f} MB/s  peak RSS: pipeline {rep['pipeline_peak_rss_mb']:6.1f} MB "
                  f"(/input {rep['pipeline_peak_rss_over_input']:.3f}), whole process {rep['peak_rss_mb']:6.1f} MB "
                  f"(/input {rep['peak_rss_over_input']:.3f})", flush=True)
            src.unlink()
        r1, r10 = results["1x"], results["10x"]
        summary = {
            "near_dedup": not args.no_near,
            "runs": results,
            "ratio_peak_rss_10x_over_1x": round(r10["peak_rss_mb"] / r1["peak_rss_mb"], 3),
            "ratio_pipeline_peak_rss_10x_over_1x": round(r10["pipeline_peak_rss_mb"] / r1["pipeline_peak_rss_mb"], 3),
            "ratio_input_10x_over_1x": round(r10["input_mb"] / r1["input_mb"], 2),
            "ratio_throughput_10x_over_1x": round(r10["mb_per_second"] / r1["mb_per_second"], 3),
            "extra_pipeline_rss_per_extra_doc_bytes": round(
                (r10["pipeline_peak_rss_mb"] - r1["pipeline_peak_rss_mb"]) * 1e6 / max(1, r10["read"] - r1["read"]), 1),
            "note": "whole-process peak includes write_manifest's imports of torch/transformers/sentence-transformers/"
                    "deepspeed (to record versions); the pipeline peak is sampled until the outputs phase starts",
            "cpu_count": os.cpu_count(),
        }
        print(f"peak RSS 10x/1x: pipeline {summary['ratio_pipeline_peak_rss_10x_over_1x']}, whole process "
              f"{summary['ratio_peak_rss_10x_over_1x']} for {summary['ratio_input_10x_over_1x']}x the input; "
              f"throughput 10x/1x = {summary['ratio_throughput_10x_over_1x']}; "
              f"extra pipeline RSS per extra document = {summary['extra_pipeline_rss_per_extra_doc_bytes']} bytes")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"results: {args.out}")
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
