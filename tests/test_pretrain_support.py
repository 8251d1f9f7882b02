"""Shared helpers for the pretraining tests: a tiny two-language parquet corpus, a tiny tokenizer, a tiny
recipe. (Collected by pytest as a module without tests; the other test_pretrain*.py files import from it.)"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "training" / "pretrain_span_corruption.py"

_WORDS = {
    "es": ["paciente", "con", "diabetes", "tipo", "dos", "presenta", "fiebre", "tos", "dolor", "torácico", "y",
           "disnea", "tratamiento", "con", "insulina", "metformina", "hipertensión", "arterial", "renal", "crónica"],
    "en": ["patient", "with", "type", "two", "diabetes", "presents", "fever", "cough", "chest", "pain", "and",
           "dyspnea", "treated", "with", "insulin", "metformin", "arterial", "hypertension", "chronic", "kidney"],
}


def make_texts(lang: str, n: int, seed: int) -> list[str]:
    rng = random.Random(f"{lang}-{seed}")
    words = _WORDS[lang]
    out = []
    for _ in range(n):
        # structured, learnable text: runs of consecutive vocabulary words
        start = rng.randrange(len(words))
        length = rng.randint(8, 20)
        out.append(" ".join(words[(start + i) % len(words)] for i in range(length)) + ".")
    return out


def write_corpus(folder: Path, langs=("es", "en"), n_train: int = 300, n_val: int = 40) -> Path:
    """A corpus folder with the layout `polyclinic corpus build` writes (parquet shards, stats.json, COMPLETE)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    shards: dict = {}
    for lang in langs:
        (folder / lang).mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("validation", n_val)):
            texts = make_texts(lang, n, seed=0 if split == "train" else 1)
            table = pa.table({
                "id": [f"{lang}-{split}-{i}" for i in range(n)],
                "text": texts,
                "lang": [lang] * n,
                "source": ["synthetic"] * n,
            })
            name = "train-00000-of-00001.parquet" if split == "train" else "validation-00000-of-00001.parquet"
            pq.write_table(table, folder / lang / name)
            shards.setdefault(lang, {})[split] = [f"{lang}/{name}"]
    (folder / "stats.json").write_text(json.dumps({"shards": shards}))
    (folder / "COMPLETE").write_text("ok\n")
    return folder


def write_tokenizer(folder: Path) -> Path:
    from polyclinic.tokenization import train_tokenizer

    texts = make_texts("es", 200, 0) + make_texts("en", 200, 0)
    train_tokenizer(texts, folder, vocab_size=60)
    return folder


TINY_ARCH = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 2, "d_kv": 16,
             "relative_attention_num_buckets": 8, "relative_attention_max_distance": 32}


def tiny_overrides(run_dir: Path, corpus: Path, tokenizer: Path, **extra) -> list[str]:
    base = {
        "run_dir": str(run_dir),
        "tokenizer": str(tokenizer),
        "data.corpus": str(corpus),
        "data.input_length": 32,
        "training.per_device_batch_size": 4,
        "training.max_steps": 6,
        "training.log_every": 1,
        "training.eval_max_rows": 8,
        "logging.trackers": "[]",
        "logging.loss_plot": "false",
        "optimizer.name": "adamw",
        "optimizer.lr": 3e-3,
        "training.cpu_threads": 1,
    }
    base.update(extra)
    out = [f"model.config={_yaml_flow(TINY_ARCH)}"]
    out += [f"{k}={v}" for k, v in base.items()]
    return out


def _yaml_flow(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain-assets")
    corpus = write_corpus(root / "corpus")
    tok = write_tokenizer(root / "tok")
    return corpus, tok


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def python() -> str:
    return sys.executable
