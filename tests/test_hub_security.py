"""The local hub's access control and error answers: a token for writes and private reads, signed LFS links,
Host/Origin checks, socket timeouts, 4xx (never 500) for malformed payloads, clear "not supported" answers."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import pytest

from test_hub_server import _commit_payload, _raw


def _private_repo(local_hub, name="priv"):
    repo = local_hub.new_repo_id(name)
    local_hub.api.create_repo(repo, private=True)
    local_hub.api.upload_file(path_or_fileobj=b"secret", path_in_repo="a.txt", repo_id=repo)
    return repo


def test_writes_need_the_token(local_hub):
    ep = local_hub.endpoint
    body = json.dumps({"name": "x-no-token", "organization": "local-user"}).encode()
    assert _raw(ep, "POST", "/api/repos/create", body, token=False)[0] == 401
    assert _raw(ep, "POST", "/api/repos/create", body, token="wrong-token-123456")[0] == 401
    assert _raw(ep, "GET", "/api/whoami-v2", token=False)[0] == 401
    repo = local_hub.new_repo_id("w")
    local_hub.api.create_repo(repo)
    op = {"key": "file", "value": {"path": "a.txt", "content": "aGk=", "encoding": "base64"}}
    assert _raw(ep, "POST", f"/api/models/{repo}/commit/main", _commit_payload("x", op), token=False)[0] == 401
    org, name = repo.split("/")
    delete = json.dumps({"name": name, "organization": org}).encode()
    assert _raw(ep, "DELETE", "/api/repos/delete", delete, token=False)[0] == 401
    assert local_hub.api.repo_exists(repo)
    assert _raw(ep, "DELETE", "/api/repos/delete", delete)[0] == 200  # with the token
    assert not local_hub.api.repo_exists(repo)


def test_private_repos_are_invisible_without_the_token(local_hub):
    ep = local_hub.endpoint
    repo = _private_repo(local_hub)
    for token in (False, "Bearer-of-another-token"):
        assert _raw(ep, "GET", f"/api/models/{repo}", token=token)[0] == 404
        assert _raw(ep, "GET", f"/{repo}/resolve/main/a.txt", token=token)[0] == 404
        status, _, body = _raw(ep, "GET", "/api/models?author=local-user", token=token)
        assert status == 200 and repo not in {r["id"] for r in json.loads(body)}
    status, _, body = _raw(ep, "GET", f"/{repo}/resolve/main/a.txt")
    assert (status, body) == (200, b"secret")


def test_lfs_objects_only_through_signed_links_of_a_readable_repo(local_hub):
    ep = local_hub.endpoint
    repo = local_hub.new_repo_id("lfs-acl")
    local_hub.api.create_repo(repo, private=True)
    data = os.urandom(20_000)
    local_hub.api.upload_file(path_or_fileobj=data, path_in_repo="w.safetensors", repo_id=repo)
    oid = hashlib.sha256(data).hexdigest()
    assert _raw(ep, "GET", f"/lfs-objects/{oid}", token=False)[0] == 403  # by hash alone: refused
    assert _raw(ep, "PUT", f"/lfs-objects/{'b' * 64}/3", b"abc", token=False)[0] == 403
    batch = json.dumps({"operation": "download", "objects": [{"oid": oid, "size": len(data)}]}).encode()
    assert _raw(ep, "POST", f"/{repo}.git/info/lfs/objects/batch", batch, token=False)[0] == 404  # private
    public = local_hub.new_repo_id("other")
    local_hub.api.create_repo(public)
    _, _, body = _raw(ep, "POST", f"/{public}.git/info/lfs/objects/batch", batch, token=False)
    assert "actions" not in json.loads(body)["objects"][0]  # not an object of that repo
    _, _, body = _raw(ep, "POST", f"/{repo}.git/info/lfs/objects/batch", batch)
    href = json.loads(body)["objects"][0]["actions"]["download"]["href"].split(ep, 1)[1]
    status, _, got = _raw(ep, "GET", href, token=False)
    assert status == 200 and got == data
    assert _raw(ep, "GET", href.replace("sig=", "sig=0"), token=False)[0] == 403  # tampered
    local_hub.api.delete_repo(repo)
    assert _raw(ep, "GET", href, token=False)[0] == 404  # the repo is gone: so is its link


def test_foreign_host_and_origin_are_refused(local_hub):
    ep = local_hub.endpoint
    port = ep.rsplit(":", 1)[1]
    assert _raw(ep, "GET", "/api/models", headers={"Host": f"attacker.example:{port}"})[0] == 403
    body = json.dumps({"name": "from-browser", "organization": "local-user"}).encode()
    status, _, _ = _raw(ep, "POST", "/api/repos/create", body,
                        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert status == 403 and not local_hub.api.repo_exists("local-user/from-browser")
    assert _raw(ep, "GET", "/api/models", headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert _raw(ep, "GET", "/api/models", headers={"Host": f"localhost:{port}"})[0] == 200


def test_stalled_clients_are_dropped(tmp_path):
    from polyclinic.hub.server import serve

    with serve(tmp_path / "hub", socket_timeout=0.5) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1")  # never finishes the request
            t0 = time.perf_counter()
            assert sock.recv(100) == b""  # closed by the server
            assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/repos/create", b"[1, 2]"),
    ("POST", "/api/repos/create", b'{"name": null}'),
    ("POST", "/api/repos/create", b'{"name": "ok", "organization": 7}'),
    ("GET", "/api/models?limit=abc", None),
    ("POST", "/api/models/{repo}/paths-info/main", b"[]"),
    ("POST", "/{repo}.git/info/lfs/objects/batch", b'{"operation": "upload", "objects": 5}'),
    ("POST", "/{repo}.git/info/lfs/objects/batch", b'{"operation": "upload", "objects": [7]}'),
    ("POST", "/api/models/{repo}/tag/main", b'["v1"]'),
    ("POST", "/api/models/{repo}/branch/dev", b'{"startingPoint": 5}'),
    ("POST", "/api/models/{repo}/commit/main", b'{"key": "header", "value": {"summary": "s", "parentCommit": 12345}}\n'),
    ("POST", "/api/models/{repo}/commit/main", b'{"key": "header", "value": {"summary": "s"}}\n{"key": "file", "value": 3}\n'),
    ("POST", "/api/models/{repo}/preupload/main", b'{"files": [{"path": 1}]}'),
    ("PUT", "/api/models/{repo}/settings", b'"private"'),
])
def test_malformed_payloads_answer_4xx(local_hub, method, path, body):
    repo = "local-user/malformed-target"
    local_hub.api.create_repo(repo, exist_ok=True)
    status, headers, text = _raw(local_hub.endpoint, method, path.format(repo=repo), body,
                                 {"Content-Type": "application/json"})
    assert 400 <= status < 500, (status, text)
    assert "Traceback" not in text.decode()
    assert not local_hub.api.repo_exists("local-user/None")


def test_unsupported_features_say_so_and_supported_ones_work(local_hub):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api, ep = local_hub.api, local_hub.endpoint
    repo = local_hub.new_repo_id("feat")
    api.create_repo(repo)
    info = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo)
    with pytest.raises(HfHubHTTPError, match="not supported by the local hub"):
        api.move_repo(repo, repo + "-moved")
    with pytest.raises(HfHubHTTPError, match="not supported by the local hub"):
        api.super_squash_history(repo)
    with pytest.raises(HfHubHTTPError, match="gated"):
        api.update_repo_settings(repo, gated="auto")
    status, headers, _ = _raw(ep, "GET", f"/api/models/{repo}/xet-write-token/main")
    assert status == 501 and "HF_HUB_DISABLE_XET=1" in headers["X-Error-Message"]
    api.auth_check(repo)
    api.auth_check(repo, write=True)
    assert _raw(ep, "GET", f"/api/models/{repo}/auth-check/write", token=False)[0] == 401
    short = info.oid[:7]  # short shas resolve, as on the Hub
    path = hf_hub_download(repo, "a.txt", revision=short, endpoint=ep, cache_dir=str(local_hub.root.parent / "cache-short"))
    assert open(path, "rb").read() == b"v1"
    # list_models(filter=, sort=) are applied, not ignored
    tagged = local_hub.new_repo_id("tagged")
    api.create_repo(tagged)
    api.upload_file(path_or_fileobj=b"---\ntags: [polyclinic-special]\n---\n# x\n", path_in_repo="README.md",
                    repo_id=tagged)
    assert [m.id for m in api.list_models(filter="polyclinic-special")] == [tagged]
    ids = [m.id for m in api.list_models(author="local-user", sort="lastModified")]
    assert ids.index(tagged) < ids.index(repo)  # newest first
    with pytest.raises(HfHubHTTPError, match="sort"):
        list(api.list_models(sort="likes"))
    assert list(api.list_models(author="local-user", gated=True)) == []  # no gated repos here
    assert tagged in {m.id for m in api.list_models(author="local-user", gated=False)}


def test_trees_are_stored_incrementally_and_dead_partial_uploads_are_cleaned(tmp_path):
    import base64
    import subprocess
    import sys

    from polyclinic.hub.storage import Storage

    st = Storage(tmp_path / "hub")
    st.create_repo("model", "local-user/big")

    def op(path, text):
        return {"key": "file", "value": {"path": path, "content": base64.b64encode(text.encode()).decode()}}

    st.create_commit("model", "local-user/big", "main", [op(f"d{i % 20}/f{i}.txt", f"v0 {i}") for i in range(2000)], "init")

    def meta_bytes():
        return sum(p.stat().st_size for p in (tmp_path / "hub").rglob("*") if p.is_file())

    before = meta_bytes()
    for k in range(50):
        st.create_commit("model", "local-user/big", "main", [op(f"d{k % 20}/f{k}.txt", f"v1 {k}")], f"edit {k}")
    grown = meta_bytes() - before
    full_tree = len(json.dumps(st.tree("model", "local-user/big", "main")[1]))
    assert grown < 0.1 * 50 * full_tree, (grown, full_tree)  # far below one whole tree per commit
    _, tree = st.tree("model", "local-user/big", "main")
    assert len(tree) == 2001 and st.object_path(tree["d3/f3.txt"]["sha256"]).read_text() == "v1 3"
    assert len(st.history("model", "local-user/big", "main")) == 52

    # a partial upload of a process that died is removed when the next server starts
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / "hub" / "tmp" / f"{dead.stdout.strip()}-abc.partial"
    leftover.write_bytes(b"x" * 1000)
    mine = tmp_path / "hub" / "tmp" / f"{os.getpid()}-in-flight"
    mine.write_bytes(b"y")
    Storage(tmp_path / "hub")
    assert not leftover.exists() and mine.exists()


def test_commits_of_regular_files_are_streamed_past_the_json_cap(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    folder = tmp_path / "data"
    folder.mkdir()
    rows = "".join(json.dumps({"id": i, "text": f"paciente {i} con fiebre"}) + "\n" for i in range(20_000))
    for k in range(3):  # regular (non-LFS) files, together far above the 1 MB JSON cap of this server
        (folder / f"part-{k}.jsonl").write_text(rows)
    with serve_hub(tmp_path / "hub", max_json_bytes=1_000_000) as server:
        api = HfApi(endpoint=server.url, token=server.token)
        api.create_repo("local-user/big-commit", repo_type="dataset")
        api.upload_folder(repo_id="local-user/big-commit", repo_type="dataset", folder_path=folder)
        files = {f.path: f for f in api.list_repo_tree("local-user/big-commit", repo_type="dataset")}
        assert files["part-2.jsonl"].lfs is None and files["part-2.jsonl"].size == len(rows.encode())
        got = hf_hub_download("local-user/big-commit", "part-1.jsonl", repo_type="dataset", endpoint=server.url,
                              token=server.token, cache_dir=str(tmp_path / "cache"))
        assert open(got).read() == rows
        assert not list((tmp_path / "hub" / "tmp").iterdir())  # the spooled body is gone


def serve_hub(root, **kw):
    from polyclinic.hub.server import serve

    return serve(root, **kw)


def test_pull_requests_are_refs(local_hub):
    from huggingface_hub import hf_hub_download

    api, ep = local_hub.api, local_hub.endpoint
    repo = local_hub.new_repo_id("pr")
    api.create_repo(repo)
    main = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo)
    pr = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo, create_pr=True)
    assert pr.pr_num == 1 and pr.pr_revision == "refs/pr/1"
    api.upload_file(path_or_fileobj=b"new", path_in_repo="b.txt", repo_id=repo, revision="refs/pr/1")
    assert api.model_info(repo).sha == main.oid  # main untouched
    cache = str(local_hub.root.parent / "cache-pr")
    got = hf_hub_download(repo, "a.txt", revision="refs/pr/1", endpoint=ep, cache_dir=cache)
    assert open(got, "rb").read() == b"v2"
    assert {f.path for f in api.list_repo_tree(repo, revision="refs/pr/1")} >= {"a.txt", "b.txt"}
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]
    assert api.upload_file(path_or_fileobj=b"v3", path_in_repo="a.txt", repo_id=repo, create_pr=True).pr_num == 2


def test_hf_cli_repos_ls_lists_the_users_repos(local_hub):
    repo = local_hub.new_repo_id("cli-ls")
    local_hub.api.create_repo(repo, private=True)
    proc = local_hub.run_python("from huggingface_hub.cli.hf import main; import sys; sys.argv = ['hf', 'repos', 'ls', "
                                "'--limit', '0']; main()", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert repo in proc.stdout
