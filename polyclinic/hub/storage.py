"""On-disk storage for the local Hub-compatible server (``polyclinic hub serve``).

Layout under ``root``::

    objects/<aa>/<bb>/<sha256>        every file's bytes, content-addressed (LFS and regular alike)
    tmp/                              partial uploads (never visible until hashed and renamed)
    repos/<type>s/<ns>/<name>/
        repo.json                     {"id", "type", "private", "createdAt"}
        refs.json                     {"branches": {name: sha}, "tags": {name: {"target", "message"}}}
        commits/<sha>.json            immutable: parents, message, date, tree_chunks [sha256 of tree chunks]
        .lock                         fcntl lock taken while refs change

A commit is written (atomically) before the ref that points to it, so a crash mid-commit leaves the
previous revision intact (at worst an unreferenced commit file). The commit id is the sha1 of the
canonical JSON of tree + parents + message + date, like git's (a different hash, same idea).
Trees are stored by content, incrementally: the sorted entries are cut into chunks at content-defined
boundaries (a path whose hash ends in six zero bits closes a chunk), each chunk a JSON object in
``objects/``; a commit that changes one file of a 2,000-file repo writes one new chunk of about 32
entries instead of the whole tree. (Commits written before this layout keep an inline ``tree`` and still
read.) Partial uploads carry the writer's pid; on start those of dead processes are removed at once.
A tree entry is ``{"size", "sha256", "oid", "lfs"}`` where ``oid`` is git's blob sha1 of the content
(regular files) or of the LFS pointer (LFS files), as the real Hub reports them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from polyclinic.io import atomic_write_text, pid_alive

REPO_TYPES = ("model", "dataset", "space")
LOCAL_USER = "local-user"
_REPO_PART = re.compile(r"^[A-Za-z0-9_.\-]{1,96}$")
_REF_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{5,40}$")
DEFAULT_GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
"""
# Files with these suffixes, binary-looking samples, or more than LFS_THRESHOLD bytes go through LFS.
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".ckpt", ".gz", ".h5", ".model", ".msgpack", ".npy", ".npz", ".onnx",
    ".parquet", ".pkl", ".pickle", ".pt", ".pth", ".safetensors", ".tar", ".tflite", ".zip", ".zst",
)
LFS_THRESHOLD = 10 * 1024 * 1024


class HubError(Exception):
    """An error with an HTTP status and (optionally) the Hub's ``X-Error-Code``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def repo_not_found(repo: str) -> HubError:
    return HubError(404, f"Repository not found: {repo}", "RepoNotFound")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


# --------------------------------------------------------------------------------------------- validation
def validate_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.match(p) for p in parts):
        raise HubError(400, f"Invalid repo id {repo_id!r}: expected namespace/name with [A-Za-z0-9_.-]")
    for p in parts:
        if p in (".", "..") or ".." in p or "--" in p or p[0] in ".-" or p[-1] in ".-":
            raise HubError(400, f"Invalid repo id {repo_id!r}: '--' and '..' are forbidden, parts cannot start or end with '-' or '.'")
    return repo_id


def validate_path(path: str) -> str:
    """A file path inside a repo: relative, forward slashes, no '.', '..', empty segments, NUL or '.git'."""
    if not isinstance(path, str) or not path or len(path) > 1000:
        raise HubError(400, "Invalid path in repo: empty or too long")
    if "\\" in path or "\0" in path or path.startswith("/") or any(ord(c) < 32 for c in path):
        raise HubError(400, f"Invalid path in repo {path!r}: absolute, backslash or control character")
    segs = path.split("/")
    if any(s in ("", ".", "..") for s in segs) or segs[0] == ".git":
        raise HubError(400, f"Invalid path in repo {path!r}: '.', '..', '.git' and empty segments are forbidden")
    return path


def validate_ref_name(name: str) -> str:
    if (
        not _REF_NAME.match(name or "")
        or ".." in name
        or "//" in name
        or name.startswith(("/", "-", "."))
        or name.endswith(("/", ".lock"))
        or _SHA1.match(name)
        or name.startswith("refs/")
    ):
        raise HubError(400, f"Invalid branch or tag name {name!r}")
    return name


# --------------------------------------------------------------------------------------------- storage
class Storage:
    """Repositories, refs, commits and content-addressed objects in one folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        for sub in ("objects", "tmp", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._clean_stale_tmp()
        self._locks: dict[str, threading.RLock] = {}
        self._chunk_cache: dict[str, dict] = {}
        self._locks_guard = threading.Lock()

    def _clean_stale_tmp(self, max_age_s: float = 3600.0) -> None:
        """Drop partial uploads that were never published: at once when the process that wrote them is gone
        (``<pid>-`` prefix), else after ``max_age_s`` (files of unknown origin)."""
        import shutil
        import time

        cutoff = time.time() - max_age_s
        for p in (self.root / "tmp").iterdir():
            with contextlib.suppress(OSError):
                pid = p.name.split("-", 1)[0]
                dead = pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))
                if dead or p.lstat().st_mtime < cutoff:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    # ---------------------------------------------------------------- objects
    def object_path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise HubError(400, f"Invalid sha256 oid {sha256!r}")
        return self.root / "objects" / sha256[:2] / sha256[2:4] / sha256

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        try:
            st = self.object_path(sha256).stat()
        except (FileNotFoundError, HubError):
            return False
        return size is None or st.st_size == size

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_object(sha, len(data)):
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=f"{os.getpid()}-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self._publish(tmp, sha)
        return sha

    def put_stream(self, reader: Iterator[bytes], expected_sha256: str, expected_size: int) -> bool:
        """Store a streamed upload after checking its sha256 and size. Returns False when it was already stored."""
        target = self.object_path(expected_sha256)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=f"{os.getpid()}-{expected_sha256[:12]}.")
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in reader:
                    h.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
            if size != expected_size:
                raise HubError(400, f"Size mismatch: received {size} bytes, expected {expected_size}")
            if h.hexdigest() != expected_sha256:
                raise HubError(400, f"Checksum mismatch: received sha256 {h.hexdigest()}, expected {expected_sha256}")
            if target.exists():
                os.unlink(tmp)
                return False
            self._publish(tmp, expected_sha256)
            return True
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _publish(self, tmp: str, sha: str) -> None:
        target = self.object_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    # ---------------------------------------------------------------- repos
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        validate_repo_id(repo_id)
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        return self.root / "repos" / f"{repo_type}s" / repo_id

    @contextlib.contextmanager
    def _locked(self, rdir: Path, create: bool = False) -> Iterator[None]:
        key = str(rdir)
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.RLock())
        with lock:
            if create:
                rdir.mkdir(parents=True, exist_ok=True)
            elif not (rdir / "repo.json").exists():
                raise repo_not_found(str(rdir.relative_to(self.root / "repos")))
            with open(rdir / ".lock", "a+") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def repo_meta(self, repo_type: str, repo_id: str) -> dict | None:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None

    def require_repo(self, repo_type: str, repo_id: str) -> dict:
        meta = self.repo_meta(repo_type, repo_id)
        if meta is None:
            raise repo_not_found(f"{repo_type}s/{repo_id}")
        return meta

    def create_repo(self, repo_type: str, repo_id: str, private: bool = False) -> bool:
        """Create a repo with an initial commit holding ``.gitattributes``. False when it already exists."""
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir, create=True):
            if (rdir / "repo.json").exists():
                return False
            sha = self._write_commit(
                rdir,
                tree={".gitattributes": self._entry_for_bytes(DEFAULT_GITATTRIBUTES, lfs=False)},
                parents=[],
                title="initial commit",
                message="",
                authors=["system"],
            )
            _write_json(rdir / "refs.json", {"branches": {"main": sha}, "tags": {}})
            meta = {"id": repo_id, "type": repo_type, "private": bool(private), "createdAt": now_iso()}
            _write_json(rdir / "repo.json", meta)  # last: the repo exists only once complete
            return True

    def list_repos(self, repo_type: str) -> Iterator[tuple[str, dict]]:
        base = self.root / "repos" / f"{repo_type}s"
        for meta_path in sorted(base.glob("*/*/repo.json")):
            try:
                meta = json.loads(meta_path.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            yield meta["id"], meta

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        import shutil

        rdir = self.repo_dir(repo_type, repo_id)
        self.require_repo(repo_type, repo_id)
        trash = self.root / "tmp" / f"deleted-{os.getpid()}-{threading.get_ident()}-{rdir.name}"
        with self._locked(rdir):
            os.replace(rdir, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def set_private(self, repo_type: str, repo_id: str, private: bool) -> None:
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir):
            meta = self.require_repo(repo_type, repo_id)
            meta["private"] = bool(private)
            _write_json(rdir / "repo.json", meta)

    # ---------------------------------------------------------------- refs and commits
    def refs(self, repo_type: str, repo_id: str) -> dict:
        self.require_repo(repo_type, repo_id)
        return json.loads((self.repo_dir(repo_type, repo_id) / "refs.json").read_text("utf-8"))

    def commit(self, repo_type: str, repo_id: str, sha: str) -> dict:
        path = self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise HubError(404, f"Revision not found: {sha}", "RevisionNotFound") from None
        if "tree_chunks" in data:
            tree: dict[str, dict] = {}
            for chunk in data.pop("tree_chunks"):
                tree.update(self._tree_chunk(chunk))
            data["tree"] = tree
        return data

    def _tree_chunk(self, sha: str) -> dict:
        cached = self._chunk_cache.get(sha)
        if cached is None:
            cached = json.loads(self.object_path(sha).read_text("utf-8"))
            if len(self._chunk_cache) > 4096:
                self._chunk_cache.clear()
            self._chunk_cache[sha] = cached
        return cached

    def _store_tree(self, tree: dict) -> list[str]:
        """Content-defined chunks of the sorted tree, each stored once as an object (see the module docstring)."""
        chunks, current = [], {}
        for path in sorted(tree):
            current[path] = tree[path]
            if hashlib.sha1(path.encode()).digest()[-1] & 0x3F == 0:
                chunks.append(current)
                current = {}
        if current or not chunks:
            chunks.append(current)
        return [self.put_bytes(json.dumps(c, sort_keys=True, separators=(",", ":")).encode()) for c in chunks]

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """Branch, tag, ``refs/heads/x``, ``refs/tags/x``, ``refs/pr/N``, a full or unique short sha -> commit sha."""
        refs = self.refs(repo_type, repo_id)
        rev = revision
        if rev.startswith("refs/pr/"):
            if rev[len("refs/pr/"):] in refs.get("prs", {}):
                return refs["prs"][rev[len("refs/pr/"):]]
        elif rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/"):]
            if rev in refs["branches"]:
                return refs["branches"][rev]
        elif rev.startswith("refs/tags/"):
            rev = rev[len("refs/tags/"):]
            if rev in refs["tags"]:
                return refs["tags"][rev]["target"]
        else:
            if rev in refs["branches"]:
                return refs["branches"][rev]
            if rev in refs["tags"]:
                return refs["tags"][rev]["target"]
            if _SHA1.match(rev) and (self.repo_dir(repo_type, repo_id) / "commits" / f"{rev}.json").exists():
                return rev
            if re.fullmatch(r"[0-9a-f]{7,39}", rev):  # a short sha, as git and the Hub accept
                found = [p.stem for p in (self.repo_dir(repo_type, repo_id) / "commits").glob(f"{rev}*.json")]
                if len(found) == 1:
                    return found[0]
                if len(found) > 1:
                    raise HubError(400, f"Ambiguous short revision {revision!r} ({len(found)} commits match)",
                                   "RevisionNotFound")
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def tree(self, repo_type: str, repo_id: str, revision: str) -> tuple[str, dict[str, dict]]:
        sha = self.resolve(repo_type, repo_id, revision)
        return sha, self.commit(repo_type, repo_id, sha)["tree"]

    def history(self, repo_type: str, repo_id: str, revision: str) -> list[dict]:
        sha: str | None = self.resolve(repo_type, repo_id, revision)
        out = []
        while sha:
            c = self.commit(repo_type, repo_id, sha)
            out.append(c)
            sha = c["parents"][0] if c["parents"] else None
        return out

    def create_commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: list[dict],
        title: str,
        message: str = "",
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> str:
        """Apply ``operations`` (``{"key": "file"|"lfsFile"|"deletedFile"|"deletedFolder", "value": {...}}``) on
        top of ``branch`` and move the branch. Raises :class:`HubError` (412 on a stale ``parent_commit``)."""
        rdir = self.repo_dir(repo_type, repo_id)
        self.require_repo(repo_type, repo_id)
        # Store regular files' bytes before taking the lock (content-addressed, harmless if unused).
        prepared: list[tuple[str, str, dict | None]] = []
        for op in operations:
            key, value = op.get("key"), op.get("value") or {}
            path = validate_path(str(value.get("path", "")).rstrip("/") if key == "deletedFolder" else value.get("path", ""))
            if key == "file":
                prepared.append((key, path, self.store_regular_file(path, value)))
            elif key == "lfsFile":
                oid = str(value.get("oid", ""))
                if value.get("algo", "sha256") != "sha256" or not _SHA256.match(oid):
                    raise HubError(400, f"Invalid LFS oid for {path}: {oid!r}")
                if not self.has_object(oid):
                    raise HubError(
                        422, f"LFS object {oid} for {path} was never uploaded (upload it through the LFS batch API first)"
                    )
                size = self.object_path(oid).stat().st_size
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HubError(422, f"LFS object {oid} for {path} has size {size}, commit says {value['size']}")
                ptr = lfs_pointer(oid, size)
                prepared.append((key, path, {"size": size, "sha256": oid, "oid": git_blob_sha1(ptr), "lfs": True}))
            elif key == "storedFile":
                entry = value["entry"]
                if not self.has_object(entry["sha256"], entry["size"]):
                    raise HubError(500, f"stored file for {path} disappeared")
                prepared.append(("file", path, entry))
            elif key in ("deletedFile", "deletedFolder"):
                prepared.append((key, path, None))
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")

        with self._locked(rdir):
            refs = self.refs(repo_type, repo_id)
            prs = refs.setdefault("prs", {})
            pr_number = None
            if branch.startswith("refs/pr/") and branch[len("refs/pr/"):] in prs:  # a commit to an open PR
                pr_number = branch[len("refs/pr/"):]
                head = prs[pr_number]
            elif create_pr:  # a new pull request refs/pr/N on top of the revision
                head = self.resolve(repo_type, repo_id, branch)
                pr_number = str(max((int(k) for k in prs), default=0) + 1)
            elif branch not in refs["branches"]:
                if branch in refs["tags"] or _SHA1.match(branch):
                    raise HubError(400, f"Cannot commit to {branch!r}: not a branch")
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            else:
                head = refs["branches"][branch]
            if parent_commit and not head.startswith(parent_commit.lower()):
                raise HubError(
                    412, f"A commit has happened since {parent_commit} (head of {branch} is {head}). Refresh and retry."
                )
            tree = dict(self.commit(repo_type, repo_id, head)["tree"])
            for key, path, entry in prepared:
                if key in ("file", "lfsFile"):
                    if any(p.startswith(path + "/") for p in tree):
                        raise HubError(400, f"Cannot add file {path}: a folder with that name exists")
                    parents = path.split("/")
                    for i in range(1, len(parents)):
                        if "/".join(parents[:i]) in tree:
                            raise HubError(400, f"Cannot add {path}: {'/'.join(parents[:i])} is a file")
                    tree[path] = entry
                elif key == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                else:
                    doomed = [p for p in tree if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
            sha = self._write_commit(rdir, tree=tree, parents=[head], title=title, message=message)
            if pr_number is not None:
                prs[pr_number] = sha
            else:
                refs["branches"][branch] = sha
            _write_json(rdir / "refs.json", refs)
            return sha

    def pull_request_of(self, repo_type: str, repo_id: str, sha: str) -> int | None:
        prs = self.refs(repo_type, repo_id).get("prs", {})
        found = [int(n) for n, target in prs.items() if target == sha]
        return max(found) if found else None

    def create_branch(self, repo_type: str, repo_id: str, name: str, starting_point: str | None = None) -> str:
        validate_ref_name(name)
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir):
            refs = self.refs(repo_type, repo_id)
            if name in refs["branches"]:
                raise HubError(409, f"Branch {name!r} already exists")
            sha = self.resolve(repo_type, repo_id, starting_point or "main")
            refs["branches"][name] = sha
            _write_json(rdir / "refs.json", refs)
            return sha

    def delete_branch(self, repo_type: str, repo_id: str, name: str) -> None:
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir):
            refs = self.refs(repo_type, repo_id)
            if name == "main":
                raise HubError(403, "Cannot delete the main branch")
            if name not in refs["branches"]:
                raise HubError(404, f"Branch {name!r} not found", "RevisionNotFound")
            del refs["branches"][name]
            _write_json(rdir / "refs.json", refs)

    def create_tag(self, repo_type: str, repo_id: str, tag: str, revision: str, message: str | None = None) -> str:
        validate_ref_name(tag)
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir):
            refs = self.refs(repo_type, repo_id)
            if tag in refs["tags"]:
                raise HubError(409, f"Tag {tag!r} already exists")
            sha = self.resolve(repo_type, repo_id, revision)
            refs["tags"][tag] = {"target": sha, "message": message or ""}
            _write_json(rdir / "refs.json", refs)
            return sha

    def delete_tag(self, repo_type: str, repo_id: str, tag: str) -> None:
        rdir = self.repo_dir(repo_type, repo_id)
        with self._locked(rdir):
            refs = self.refs(repo_type, repo_id)
            if tag not in refs["tags"]:
                raise HubError(404, f"Tag {tag!r} not found", "RevisionNotFound")
            del refs["tags"][tag]
            _write_json(rdir / "refs.json", refs)

    # ---------------------------------------------------------------- helpers
    def _entry_for_bytes(self, data: bytes, lfs: bool) -> dict:
        sha = self.put_bytes(data)
        return {"size": len(data), "sha256": sha, "oid": git_blob_sha1(data), "lfs": lfs}

    def store_regular_file(self, path: str, value: dict) -> dict:
        """Decode a commit's regular ``file`` operation (base64 ``content``), store its bytes, return the tree
        entry. The server calls it while streaming a commit (one file in memory at a time) and passes the
        entry on as a ``storedFile`` operation, which clients cannot send."""
        import base64
        import binascii

        if value.get("encoding", "base64") != "base64":
            raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
        try:
            data = base64.b64decode(value.get("content", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise HubError(400, f"Invalid base64 content for {path}") from None
        return self._entry_for_bytes(data, lfs=False)

    def _write_commit(
        self, rdir: Path, tree: dict, parents: list[str], title: str, message: str, authors: list[str] | None = None
    ) -> str:
        body: dict[str, Any] = {
            "parents": parents,
            "title": title,
            "message": message,
            "date": now_iso(),
            "authors": authors or [LOCAL_USER],
            "tree_chunks": self._store_tree(tree),
        }
        sha = hashlib.sha1(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        _write_json(rdir / "commits" / f"{sha}.json", {"id": sha, **body})
        return sha


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def choose_upload_mode(path: str, size: int, sample: bytes) -> str:
    """'lfs' for weights/data suffixes, binary-looking samples and large files; 'regular' otherwise."""
    if size == 0:
        return "regular"
    if path.lower().endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD or b"\0" in sample:
        return "lfs"
    return "regular"


def read_stream(fh: BinaryIO, chunk: int = 1 << 20) -> Iterator[bytes]:
    while True:
        b = fh.read(chunk)
        if not b:
            return
        yield b
