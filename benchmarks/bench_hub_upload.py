"""Upload / download throughput of the LOCAL Hub-compatible server (``polyclinic hub serve``).

Builds a model folder of random safetensors shards (default 500 MB in total, ``--mb`` to shrink), starts
the server as a separate process (so client and server do not share a GIL), then with the real
``huggingface_hub`` client:

* ``upload_folder`` into a new repo (sha256 on the client, preupload, LFS batch, PUTs, commit);
* the same ``upload_folder`` again (a resumed/idempotent push: every object is already stored);
* ``snapshot_download`` into an empty cache.

Reference, same process: copying the folder on the local disk (``shutil.copytree``), i.e. what the
transfers would cost without HTTP. Prints MB/s and the ratio to the reference; writes
``benchmarks/results/hub_upload.json``.

    python benchmarks/bench_hub_upload.py [--mb 500] [--shard-mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "hub_upload.json"


def write_safetensors_like(path: Path, nbytes: int) -> None:
    """A valid safetensors file holding one U8 tensor of random bytes (incompressible, like real weights)."""
    header = json.dumps({"weight": {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        left = nbytes
        while left:
            n = min(left, 8 << 20)
            fh.write(os.urandom(n))
            left -= n


TOKEN = "bench-local-hub-token-0123456789"


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyclinic", "hub", "serve", "--root", str(root), "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "POLYCLINIC_LOG_LEVEL": "WARNING"},
    )
    for _ in range(10):
        line = proc.stdout.readline()
        if "HF_ENDPOINT=" in line:
            return proc, line.split("HF_ENDPOINT=", 1)[1].strip()
    proc.kill()
    raise RuntimeError("the local hub did not print its endpoint")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=500.0, help="total size of the model folder (MB)")
    parser.add_argument("--shard-mb", type=float, default=100.0, help="size of one safetensors shard (MB)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    import huggingface_hub.constants as hf_constants

    hf_constants.HF_HUB_DISABLE_XET = True  # the local hub speaks LFS, not Xet
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    total = int(args.mb * 1e6)
    shard = max(1, int(args.shard_mb * 1e6))
    n_shards = max(1, -(-total // shard))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-hub-"))
    work.mkdir(parents=True, exist_ok=True)
    folder = work / "model"
    folder.mkdir(exist_ok=True)
    left = total
    for i in range(n_shards):
        n = min(shard, left)
        write_safetensors_like(folder / f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors", n)
        left -= n
    (folder / "config.json").write_text(json.dumps({"model_type": "mt5", "note": "benchmark blobs"}))
    size = sum(f.stat().st_size for f in folder.iterdir())
    mb = size / 1e6
    print(f"model folder: {n_shards} shards, {mb:.1f} MB in {folder}")

    t0 = time.perf_counter()
    shutil.copytree(folder, work / "copy")
    ref_s = time.perf_counter() - t0
    shutil.rmtree(work / "copy")

    proc, url = start_server(work / "hub")
    try:
        api = HfApi(endpoint=url, token=TOKEN)
        repo = "local-user/bench-model"
        api.create_repo(repo, exist_ok=True)
        t0 = time.perf_counter()
        first = api.upload_folder(repo_id=repo, folder_path=folder, commit_message="benchmark upload")
        up_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = api.upload_folder(repo_id=repo, folder_path=folder, commit_message="benchmark re-upload")
        again_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        path = snapshot_download(repo, endpoint=url, cache_dir=work / "cache", token=TOKEN)
        down_s = time.perf_counter() - t0
        ok = all((Path(path) / f.name).stat().st_size == f.stat().st_size for f in folder.iterdir())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    result = {
        "benchmark": "hub_upload",
        "size_mb": round(mb, 1),
        "shards": n_shards,
        "reference_local_copy_mb_s": round(mb / ref_s, 1),
        "upload_mb_s": round(mb / up_s, 1),
        "upload_seconds": round(up_s, 2),
        "reupload_seconds_no_change": round(again_s, 2),
        "reupload_created_commit": second.oid != first.oid,
        "download_mb_s": round(mb / down_s, 1),
        "download_seconds": round(down_s, 2),
        "upload_vs_local_copy": round(ref_s / up_s, 3),
        "download_vs_local_copy": round(ref_s / down_s, 3),
        "download_complete": ok,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "note": "loopback, server in a separate process; upload includes the client's sha256 of every shard",
    }
    print(f"reference (local copy): {result['reference_local_copy_mb_s']:8.1f} MB/s")
    print(f"upload_folder         : {result['upload_mb_s']:8.1f} MB/s  ({result['upload_vs_local_copy']:.2f}x local copy)")
    print(f"re-upload, no change  : {again_s:8.2f} s   (new commit: {result['reupload_created_commit']})")
    print(f"snapshot_download     : {result['download_mb_s']:8.1f} MB/s  ({result['download_vs_local_copy']:.2f}x local copy)")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if ok and not result["reupload_created_commit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
