"""A LOCAL Hub-compatible HTTP server: unmodified ``huggingface_hub``, ``datasets``, ``transformers`` and
``sentence-transformers`` upload to and download from it through ``HF_ENDPOINT`` (with ``HF_HUB_DISABLE_XET=1``).

It is not the Hugging Face Hub: one local user, no web pages, no Xet; pull requests are refs
(``refs/pr/N``, created by ``create_pr=True``) without discussions. Files live on disk
under ``root`` (see :mod:`polyclinic.hub.storage`) and survive restarts.

Access control, the way Jupyter protects its local server: a token generated at start (or given with
``--token`` / ``POLYCLINIC_HUB_TOKEN``) and printed with the ``HF_ENDPOINT`` line is required for every write
and every read of a private repo (``Authorization: Bearer <token>``, what ``HF_TOKEN`` makes the clients
send); LFS objects are reached only through links the batch API signs for a repo the caller may read or
write; requests whose ``Host`` is not the bound address (DNS rebinding) or that carry a foreign ``Origin`` (a
web page in a browser) are refused; sockets time out so stalled clients cannot pin threads.

Routes (what the clients call; anything else is logged at WARNING and answered 404)::

    GET  /api/whoami-v2                                    POST /api/repos/create | /api/repos/delete
    POST /api/validate-yaml                                PUT  /api/{type}s/{id}/settings
    GET  /api/{type}s/{id}[/revision/{rev}]                GET  /api/{type}s/{id}/tree/{rev}[/{path}]
    POST /api/{type}s/{id}/paths-info/{rev}                GET  /api/{type}s/{id}/refs | /commits/{rev}
    POST /api/{type}s/{id}/preupload/{rev}                 POST /api/{type}s/{id}/commit/{rev}
    POST|DELETE /api/{type}s/{id}/branch/{name}            POST /api/{type}s/{id}/tag/{rev}, DELETE .../tag/{tag}
    POST /[datasets/]{id}.git/info/lfs/objects/batch       PUT|GET /lfs-objects/{oid}[/{size}]
    HEAD|GET /[datasets/]{id}/resolve/{rev}/{path}         (Range supported)

Python: ``serve(root, host, port) -> HubServer`` (``.url``, ``.shutdown()``, a context manager).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from polyclinic.errors import UserError
from polyclinic.hub.storage import (
    LOCAL_USER,
    HubError,
    Storage,
    choose_upload_mode,
    lfs_pointer,
    validate_path,
    validate_repo_id,
)
from polyclinic.logging_utils import get_logger

log = get_logger("polyclinic.hub.server")

DEFAULT_MAX_JSON_BYTES = 100 * 1024 * 1024  # JSON / NDJSON bodies (a commit carries regular files base64-encoded)
DEFAULT_MAX_LFS_BYTES = 5 * 1024**3  # one LFS object PUT
DEFAULT_MAX_COMMIT_BYTES = 50 * 1024**3  # one commit's NDJSON (regular files base64-encoded), spooled to disk
_TYPE_PREFIX = {"datasets": "dataset", "spaces": "space", "models": "model"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    storage: Storage
    url: str
    max_json_bytes: int
    max_commit_bytes: int
    max_lfs_bytes: int
    unknown_routes: list[str]
    token: str
    secret: bytes
    allowed_hosts: set[str]
    socket_timeout: float


class _Server6(_Server):
    address_family = socket.AF_INET6


class _BodyTooLarge(HubError):
    def __init__(self, limit: int):
        super().__init__(413, f"Request body too large (limit {limit} bytes)")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polyclinic-local-hub/1"
    server: _Server
    timeout = 120  # seconds of silence on a socket before the connection is dropped (stalled clients)

    def setup(self) -> None:
        self.timeout = getattr(self.server, "socket_timeout", None) or self.timeout
        super().setup()

    # --------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_consumed = False
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw_segs = split.path.split("/")[1:]
        try:
            if any("\0" in unquote(s) for s in raw_segs):
                raise HubError(400, "NUL byte in URL")
            segs = [unquote(s) for s in raw_segs]
            self._check_host_and_origin()
            self._route(method, raw_segs, segs)
        except HubError as exc:
            self._error(exc)
        except (TypeError, KeyError, AttributeError, ValueError, UnicodeError, RecursionError) as exc:
            # a payload of the wrong shape (a list where an object belongs, a number for a sha...): the
            # client's mistake, so 400 with a short reason (the traceback stays in the DEBUG log)
            log.debug("local hub: malformed %s %s", method, self.path, exc_info=True)
            self._error(HubError(400, f"Malformed request: {type(exc).__name__}: {str(exc)[:200]}"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a server answers, it does not die
            log.exception("local hub: %s %s failed", method, self.path)
            self._error(HubError(500, f"Internal error: {type(exc).__name__}: {exc}"))
        finally:
            if not self._body_consumed and self._has_body():
                self.close_connection = True  # an unread body would corrupt the next request on this connection

    def _has_body(self) -> bool:
        try:
            return self._content_length() > 0 or "chunked" in (self.headers.get("Transfer-Encoding") or "")
        except HubError:
            return True

    def _content_length(self) -> int:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            raise HubError(400, "Invalid Content-Length")
        return n

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, exc: HubError) -> None:
        headers = dict(exc.headers)
        if exc.code:
            headers["X-Error-Code"] = exc.code
        headers["X-Error-Message"] = exc.message.encode("ascii", "replace").decode()[:500]
        if exc.status == 413 or exc.status >= 500 or (not self._body_consumed and self._has_body()):
            self.close_connection = True
        # 404s are mostly clients probing optional files; real failures surface in the client anyway
        level = log.debug if exc.status == 404 else log.info
        level("local hub: %s %s -> %d %s", self.command, self.path[:200], exc.status, exc.message[:200])
        try:
            self._json({"error": exc.message}, exc.status, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _iter_body(self, limit: int) -> Iterator[bytes]:
        """Yield the request body (Content-Length or chunked), raising 413 past ``limit`` bytes."""
        self._body_consumed = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            total = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    raise HubError(400, "Invalid chunked body") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                total += size
                if total > limit:
                    self.close_connection = True
                    raise _BodyTooLarge(limit)
                yield from self._read_exactly(size, "Truncated chunked body")
                self.rfile.readline(65537)
        else:
            length = self._content_length()
            if length > limit:
                self.close_connection = True
                raise _BodyTooLarge(limit)
            yield from self._read_exactly(length, "Truncated body")

    def _read_exactly(self, size: int, truncated: str) -> Iterator[bytes]:
        """Yield exactly ``size`` bytes of the request in pieces of at most 1 MiB (400 if the client stops early)."""
        remaining = size
        while remaining:
            b = self.rfile.read(min(remaining, 1 << 20))
            if not b:
                raise HubError(400, truncated)
            remaining -= len(b)
            yield b

    def _body(self) -> bytes:
        return b"".join(self._iter_body(self.server.max_json_bytes))

    def _json_body(self) -> Any:
        raw = self._body()
        if not raw.strip():
            return {}
        try:
            obj = json.loads(raw)
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None
        if not isinstance(obj, dict):
            raise HubError(400, f"JSON body must be an object, got {type(obj).__name__}")
        return obj

    @property
    def storage(self) -> Storage:
        return self.server.storage

    def _base(self) -> str:
        host = self.headers.get("Host") or ""
        return f"http://{host}" if re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,255}", host) else self.server.url

    def _check_host_and_origin(self) -> None:
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.allowed_hosts:
            self.close_connection = True
            raise HubError(403, f"Host {host[:100]!r} is not the address this local hub is bound to (DNS rebinding "
                                f"protection); use {self.server.url}")
        origin = (self.headers.get("Origin") or "").strip().lower()
        if origin and origin not in {f"http://{h}" for h in self.server.allowed_hosts}:
            self.close_connection = True
            raise HubError(403, f"Cross-origin request from {origin[:100]!r} refused by the local hub")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.server.token.encode())

    def _require_token(self, what: str = "this request") -> None:
        if not self._authorized():
            raise HubError(401, f"Invalid credentials: {what} needs the local hub's token (printed when it started; "
                                "set HF_TOKEN to it)", "Unauthorized")

    def _check_access(self, repo_type: str, repo_id: str, write: bool = False) -> dict:
        """The repo's metadata if the caller may read it (``write``: may change it). A private repo answers
        "not found" without the token, as the Hub does."""
        if write:
            self._require_token(f"writing to {repo_id}")
            return self.storage.require_repo(repo_type, repo_id)
        meta = self.storage.require_repo(repo_type, repo_id)
        if meta.get("private") and not self._authorized():
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return meta

    def _sign(self, *parts: str) -> str:
        return hmac.new(self.server.secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def _signed_query(self, action: str, oid: str, repo_type: str, repo_id: str) -> str:
        exp = str(int(time.time()) + 86400)
        from urllib.parse import quote

        return (f"repo={quote(f'{repo_type}:{repo_id}', safe='')}&exp={exp}"
                f"&sig={self._sign(action, oid, repo_type, repo_id, exp)}")

    # --------------------------------------------------------------- routing
    def _route(self, method: str, raw: list[str], segs: list[str]) -> None:
        if segs and segs[0] == "api":
            return self._route_api(method, raw, segs[1:])
        if len(segs) >= 2 and segs[0] == "lfs-objects":
            return self._lfs_object(method, segs[1:])
        repo_type = "model"
        rest, rest_raw = segs, raw
        if rest and rest[0] in ("datasets", "spaces") and len(rest) >= 3:
            repo_type, rest, rest_raw = _TYPE_PREFIX[rest[0]], rest[1:], rest_raw[1:]
        if len(rest) == 6 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}")
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{rest[0]}/{rest[1]}"
            path = "/".join(unquote(s) for s in rest_raw[4:])
            return self._resolve(repo_type, repo_id, rest[3], path)
        if len(rest) >= 4 and rest[1] == "resolve" and method in ("GET", "HEAD"):  # canonical ids (no namespace)
            raise HubError(404, f"Repository not found: {rest[0]} (the local hub has no namespace-less repos)", "RepoNotFound")
        self._unknown(method)

    def _unknown(self, method: str) -> None:
        self.server.unknown_routes.append(f"{method} {urlsplit(self.path).path}")
        log.warning("local hub: unknown route %s %s (answered 404; the local server does not implement it)", method, self.path)
        raise HubError(404, f"Unknown route for the local hub: {method} {urlsplit(self.path).path}")

    def _route_api(self, method: str, raw: list[str], s: list[str]) -> None:
        if s == ["whoami-v2"] and method == "GET":
            self._require_token("whoami")
            return self._json(_WHOAMI)
        if method == "GET" and (s == ["settings", "repositories"] or
                                (len(s) == 4 and s[0] == "organizations" and s[2:] == ["settings", "repositories"])):
            return self._user_repos(s[1] if len(s) == 4 else LOCAL_USER)
        if s == ["repos", "move"] and method == "POST":
            raise HubError(501, "move_repo is not supported by the local hub (create the repo under its new name "
                                "and push again)")
        if s == ["agent-harnesses"] and method == "GET":  # huggingface_hub's agent detection registry
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if s == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if s == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if s == ["validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(s) == 1 and s[0] in ("models", "datasets") and method == "GET":
            return self._list_repos(_TYPE_PREFIX[s[0]])
        if len(s) == 2 and s[0] in _TYPE_PREFIX and method == "GET":
            raise HubError(404, f"Repository not found: {s[1]} (the local hub has no namespace-less repos)", "RepoNotFound")
        if len(s) >= 3 and s[0] in _TYPE_PREFIX:
            repo_type = _TYPE_PREFIX[s[0]]
            repo_id = validate_repo_id(f"{s[1]}/{s[2]}")
            tail = s[3:]
            if not tail and method == "GET":
                return self._repo_info(repo_type, repo_id, "main")
            if not tail:
                return self._unknown(method)
            op, args = tail[0], tail[1:]
            if op in ("xet-write-token", "xet-read-token"):
                raise HubError(501, "The local hub does not speak Xet: set HF_HUB_DISABLE_XET=1 (polyclinic sets it "
                                    "for its own pushes; other clients need it in the environment)")
            if op in ("duplicate", "super-squash", "lfs-files", "discussions", "resource-groups"):
                raise HubError(501, f"{op} is not supported by the local hub")
            if op == "auth-check" and method == "GET":
                self._check_access(repo_type, repo_id, write=bool(args and args[0] == "write"))
                return self._json({})
            handler = _API_ROUTES.get((method, op))
            if handler is not None and (args or op in ("refs", "settings")):
                return handler(self, repo_type, repo_id, args, raw[5:])  # raw: api, types, ns, name, op, args...
        self._unknown(method)

    # --------------------------------------------------------------- account and repos
    def _create_repo(self) -> None:
        self._require_token("creating a repo")
        body = self._json_body()
        name, org = body.get("name"), body.get("organization") or LOCAL_USER
        if not isinstance(name, str) or not name.strip() or not isinstance(org, str):
            raise HubError(400, "'name' (and 'organization', when given) must be non-empty strings")
        if body.get("gated") not in (None, False):
            raise HubError(400, "gated repos are not supported by the local hub")
        repo_type = body.get("type") or "model"
        if repo_type == "space":
            raise HubError(400, "Spaces are not supported by the local hub")
        if repo_type not in ("model", "dataset"):
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = validate_repo_id(f"{org}/{name}")
        private = body.get("private")
        if private is None:
            private = body.get("visibility") == "private"
        url = f"{self._base()}/{_URL_PREFIX[repo_type]}{repo_id}"
        if not self.storage.create_repo(repo_type, repo_id, bool(private)):
            return self._json({"error": "You already created this repo", "url": url}, 409)
        log.info("local hub: created %s repo %s (private=%s)", repo_type, repo_id, bool(private))
        self._json({"url": url, "name": repo_id, "id": repo_id}, 200)

    def _delete_repo(self) -> None:
        self._require_token("deleting a repo")
        body = self._json_body()
        if not isinstance(body.get("name"), str) or not isinstance(body.get("organization") or LOCAL_USER, str):
            raise HubError(400, "'name' (and 'organization', when given) must be strings")
        repo_id = validate_repo_id(f"{body.get('organization') or LOCAL_USER}/{body.get('name')}")
        self.storage.delete_repo(body.get("type") or "model", repo_id)
        self._json({})

    def _validate_yaml(self) -> None:
        body = self._json_body()
        content = body.get("content") or ""
        errors = []
        m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if m:
            import yaml

            try:
                meta = yaml.safe_load(m.group(1))
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "YAML metadata must be a mapping"})
            except yaml.YAMLError as exc:
                errors.append({"message": f"Invalid YAML metadata: {exc}"})
        self._json({"errors": errors, "warnings": []}, 400 if errors else 200)

    def _list_repos(self, repo_type: str) -> None:
        author, search = self.query.get("author"), (self.query.get("search") or "").lower()
        try:
            limit = int(self.query.get("limit") or 1000)
        except ValueError:
            raise HubError(400, f"limit must be an integer, got {self.query.get('limit')!r}") from None
        wanted_tags = [t for t in (self.query.get("filter") or "").split(",") if t]
        sort = self.query.get("sort")
        if sort not in (None, "", "lastModified", "last_modified", "createdAt", "created_at", "id"):
            raise HubError(400, f"sort={sort!r} is not supported by the local hub (lastModified, createdAt or id)")
        out = []
        for repo_id, meta in self.storage.list_repos(repo_type):
            if author and repo_id.split("/")[0] != author:
                continue
            if search and search not in repo_id.lower():
                continue
            if meta.get("private") and not self._authorized():
                continue
            sha, tree = self.storage.tree(repo_type, repo_id, "main")
            card = self._card_data(repo_type, repo_id, tree) or {}
            tags = [str(t) for t in card.get("tags") or [] if isinstance(t, (str, int, float))]
            tags += [str(card[k]) for k in ("library_name", "pipeline_tag", "license") if isinstance(card.get(k), str)]
            if wanted_tags and not all(t in tags for t in wanted_tags):
                continue
            out.append({"_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24], "id": repo_id,
                        "private": bool(meta.get("private")), "sha": sha, "createdAt": meta.get("createdAt"),
                        "lastModified": self.storage.commit(repo_type, repo_id, sha)["date"], "tags": tags,
                        "downloads": 0, "likes": 0})
        if str(self.query.get("gated", "")).lower() == "true":
            out = []  # the local hub has no gated repos
        if sort:
            key = {"lastModified": "lastModified", "last_modified": "lastModified", "createdAt": "createdAt",
                   "created_at": "createdAt", "id": "id"}[sort]
            out.sort(key=lambda r: str(r.get(key) or ""), reverse=str(self.query.get("direction", "-1")) == "-1")
        self._json(out[:max(limit, 0)])

    def _user_repos(self, namespace: str) -> None:
        """``list_user_repos`` / ``hf repos ls``: every repo of a namespace with its storage (the token's owner
        sees its private repos)."""
        self._require_token("listing your repositories")
        out = []
        for repo_type in ("model", "dataset"):
            for repo_id, meta in self.storage.list_repos(repo_type):
                if repo_id.split("/")[0] != namespace:
                    continue
                sha, tree = self.storage.tree(repo_type, repo_id, "main")
                out.append({"id": repo_id, "type": repo_type, "updatedAt": self.storage.commit(repo_type, repo_id, sha)["date"],
                            "visibility": "private" if meta.get("private") else "public",
                            "storage": sum(e["size"] for e in tree.values())})
        total = sum(r["storage"] for r in out) or 1
        for r in out:
            r["storagePercent"] = 100.0 * r["storage"] / total
        self._json(out)

    def _settings(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        body = self._json_body()
        self._check_access(repo_type, repo_id, write=True)
        if body.get("gated") not in (None, False):
            raise HubError(400, "gated repos are not supported by the local hub")
        if "private" in body or "visibility" in body:
            self.storage.set_private(repo_type, repo_id, bool(body.get("private", body.get("visibility") == "private")))
        self._json({})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        meta = self._check_access(repo_type, repo_id)
        sha, tree = self.storage.tree(repo_type, repo_id, revision)
        commit = self.storage.commit(repo_type, repo_id, sha)
        blobs = str(self.query.get("blobs", "")).lower() in ("1", "true")
        siblings = []
        for path, e in sorted(tree.items()):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=e["size"], blobId=e["oid"])
                if e["lfs"]:
                    sib["lfs"] = {"size": e["size"], "sha256": e["sha256"], "pointerSize": len(lfs_pointer(e["sha256"], e["size"]))}
            siblings.append(sib)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "lastModified": commit["date"],
            "createdAt": meta.get("createdAt"),
            "private": bool(meta.get("private")),
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        card = self._card_data(repo_type, repo_id, tree)
        if card is not None:
            info["cardData"] = card
            tags = card.get("tags")
            if isinstance(tags, list):
                info["tags"] = [str(t) for t in tags]
            if repo_type == "model":
                for key in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(key), str):
                        info[key] = card[key]
        if repo_type == "model":
            info["modelId"] = repo_id
        self._json(info)

    def _card_data(self, repo_type: str, repo_id: str, tree: dict) -> dict | None:
        e = tree.get("README.md")
        if e is None or e["size"] > 5_000_000:
            return None
        try:
            import yaml

            text = self.storage.object_path(e["sha256"]).read_text("utf-8")
            m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
            meta = yaml.safe_load(m.group(1)) if m else None
            return meta if isinstance(meta, dict) else None
        except Exception:  # noqa: BLE001 - card data is optional
            return None

    def _revision(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        self._repo_info(repo_type, repo_id, args[0])

    # --------------------------------------------------------------- listing
    def _entries(self, tree: dict, prefix: str, recursive: bool) -> list[dict]:
        """Files and folders below ``prefix`` ('' = root): direct children, or everything when recursive."""
        base = prefix + "/" if prefix else ""
        files: list[dict] = []
        folders: dict[str, list[str]] = {}
        for path, e in tree.items():
            if not path.startswith(base):
                continue
            rel = path[len(base):]
            parts = rel.split("/")
            for i in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.setdefault(base + "/".join(parts[:i]), []).append(path)
            if recursive or len(parts) == 1:
                files.append(self._file_entry(path, e))
        out = [
            {"type": "directory", "oid": _folder_oid(tree, f), "size": 0, "path": f} for f in sorted(folders)
        ]
        return out + sorted(files, key=lambda d: d["path"])

    @staticmethod
    def _file_entry(path: str, e: dict) -> dict:
        d: dict[str, Any] = {"type": "file", "oid": e["oid"], "size": e["size"], "path": path}
        if e["lfs"]:
            d["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": len(lfs_pointer(e["sha256"], e["size"]))}
        return d

    def _with_last_commit(self, repo_type: str, repo_id: str, sha: str, entries: list[dict]) -> None:
        history = self.storage.history(repo_type, repo_id, sha)
        for ent in entries:
            last = history[0]
            for newer, older in zip(history, history[1:] + [None]):
                cur = _subtree_sig(newer["tree"], ent["path"])
                prev = _subtree_sig(older["tree"], ent["path"]) if older else None
                if cur != prev:
                    last = newer
                    break
            ent["lastCommit"] = {"id": last["id"], "title": last["title"], "date": last["date"]}

    def _tree(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        self._check_access(repo_type, repo_id)
        rev = args[0]
        path = "/".join(unquote(s) for s in raw[1:]).strip("/")
        if path:
            validate_path(path)
        sha, tree = self.storage.tree(repo_type, repo_id, rev)
        if path and not any(p.startswith(path + "/") for p in tree):
            raise HubError(404, f"Folder not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        recursive = str(self.query.get("recursive", "")).lower() in ("1", "true")
        entries = self._entries(tree, path, recursive)
        if str(self.query.get("expand", "")).lower() in ("1", "true"):
            self._with_last_commit(repo_type, repo_id, sha, entries)
        self._json(entries, headers={"X-Repo-Commit": sha})

    def _paths_info(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        raw_body = self._body()
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            body = json.loads(raw_body or b"{}")
            paths, expand = body.get("paths") or [], body.get("expand")
        else:
            form = parse_qs(raw_body.decode("utf-8"), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand") or [""])[-1]
        if isinstance(paths, str):
            paths = [paths]
        self._check_access(repo_type, repo_id)
        sha, tree = self.storage.tree(repo_type, repo_id, args[0])
        out = []
        for p in paths:
            p = str(p).strip("/")
            if p in tree:
                out.append(self._file_entry(p, tree[p]))
            elif p and any(k.startswith(p + "/") for k in tree):
                out.append({"type": "directory", "oid": _folder_oid(tree, p), "size": 0, "path": p})
        if str(expand).lower() in ("1", "true"):
            self._with_last_commit(repo_type, repo_id, sha, out)
        self._json(out, headers={"X-Repo-Commit": sha})

    def _refs(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        self._check_access(repo_type, repo_id)
        refs = self.storage.refs(repo_type, repo_id)
        self._json(
            {
                "branches": [
                    {"name": n, "ref": f"refs/heads/{n}", "targetCommit": t} for n, t in sorted(refs["branches"].items())
                ],
                "tags": [
                    {"name": n, "ref": f"refs/tags/{n}", "targetCommit": t["target"]} for n, t in sorted(refs["tags"].items())
                ],
                "converts": [],
                "pullRequests": [
                    {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": t}
                    for n, t in sorted(refs.get("prs", {}).items(), key=lambda kv: int(kv[0]))
                ] if str(self.query.get("include_prs", "")).lower() in ("1", "true") else None,
            }
        )

    def _commits(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        self._check_access(repo_type, repo_id)
        history = self.storage.history(repo_type, repo_id, args[0])
        self._json(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": a} for a in c["authors"]],
                    "parents": c["parents"],
                }
                for c in history
            ]
        )

    # --------------------------------------------------------------- refs
    def _branch(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        name = "/".join(args)
        self._check_access(repo_type, repo_id, write=True)
        if self.command == "DELETE":
            self._body()
            self.storage.delete_branch(repo_type, repo_id, name)
            return self._json({})
        body = self._json_body()
        if body.get("emptyBranch"):
            raise HubError(400, "emptyBranch is not supported by the local hub")
        sha = self.storage.create_branch(repo_type, repo_id, name, body.get("startingPoint"))
        self._json({"name": name, "targetCommit": sha})

    def _tag(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        self._check_access(repo_type, repo_id, write=True)
        if self.command == "DELETE":
            self._body()
            self.storage.delete_tag(repo_type, repo_id, "/".join(args))
            return self._json({})
        body = self._json_body()
        tag = body.get("tag")
        if not isinstance(tag, str):
            raise HubError(400, "Missing 'tag' in body")
        sha = self.storage.create_tag(repo_type, repo_id, tag, "/".join(args), body.get("message"))
        self._json({"name": tag, "targetCommit": sha})

    # --------------------------------------------------------------- uploads
    def _preupload(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        body = self._json_body()
        self._check_access(repo_type, repo_id, write=True)
        _, tree = self.storage.tree(repo_type, repo_id, args[0])
        out = []
        for f in body.get("files") or []:
            path = validate_path(f.get("path", ""))
            try:
                sample = base64.b64decode(f.get("sample") or "")
            except ValueError:
                sample = b""
            mode = choose_upload_mode(path, int(f.get("size") or 0), sample)
            d: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            existing = tree.get(path)
            if existing is not None:
                d["oid"] = existing["sha256"] if existing["lfs"] else existing["oid"]
            out.append(d)
        self._json({"files": out, "commitOid": self.storage.resolve(repo_type, repo_id, args[0])})

    def _commit(self, repo_type: str, repo_id: str, args: list[str], raw: list[str]) -> None:
        branch = args[0]
        self._check_access(repo_type, repo_id, write=True)  # before reading a body of up to max_commit_bytes
        create_pr = str(self.query.get("create_pr", "")).lower() in ("1", "true")
        header, ops = self._read_commit_payload()
        if header is None:
            raise HubError(400, "Commit payload has no header line")
        summary = str(header.get("summary") or "").strip()
        if not summary:
            raise HubError(400, "Commit summary is empty")
        parent = header.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
            raise HubError(400, f"parentCommit must be a 40-character commit sha, got {parent!r}")
        sha = self.storage.create_commit(
            repo_type, repo_id, branch, ops, summary, str(header.get("description") or ""), parent, create_pr=create_pr
        )
        log.info("local hub: commit %s on %s %s@%s (%d operations)", sha[:10], repo_type, repo_id, branch, len(ops))
        pr = self.storage.pull_request_of(repo_type, repo_id, sha)
        self._json(
            {
                "commitUrl": f"{self._base()}/{_URL_PREFIX[repo_type]}{repo_id}/commit/{sha}",
                "commitOid": sha,
                "success": True,
                "pullRequestUrl": f"{self._base()}/{_URL_PREFIX[repo_type]}{repo_id}/discussions/{pr}" if pr else None,
            }
        )

    def _read_commit_payload(self) -> tuple[dict | None, list[dict]]:
        """The NDJSON commit body, streamed to a temporary file (a commit of regular files may be far larger than
        memory or the JSON cap); each regular file is decoded and stored as its line is read, so only one
        file's bytes are held at a time."""
        import tempfile

        header: dict | None = None
        ops: list[dict] = []
        with tempfile.TemporaryFile(dir=self.storage.root / "tmp", prefix=f"{os.getpid()}-commit-") as spool:
            for chunk in self._iter_body(self.server.max_commit_bytes):
                spool.write(chunk)
            spool.seek(0)
            for n, line in enumerate(spool, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise HubError(400, f"Invalid NDJSON on line {n}") from None
                if not isinstance(item, dict) or not isinstance(item.get("value", {}), dict):
                    raise HubError(400, f"Invalid NDJSON item on line {n}")
                key = item.get("key")
                if key == "header":
                    header = item.get("value") or {}
                    continue
                if key not in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                    raise HubError(400, f"Unknown commit operation {key!r} on line {n}")
                value = item.get("value") or {}
                if key == "file":
                    path = validate_path(value.get("path", ""))
                    entry = self.storage.store_regular_file(path, value)
                    item = {"key": "storedFile", "value": {"path": path, "entry": entry}}
                ops.append(item)
        return header, ops

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        validate_repo_id(repo_id)
        body = self._json_body()
        operation = body.get("operation", "upload")
        self._check_access(repo_type, repo_id, write=operation != "download")
        if not isinstance(body.get("objects") or [], list):
            raise HubError(400, "'objects' must be a list")
        in_repo = self._repo_oids(repo_type, repo_id) if operation == "download" else set()
        objects = []
        for obj in body.get("objects") or []:
            if not isinstance(obj, dict):
                raise HubError(400, "every LFS object must be an object with oid and size")
            oid, size = str(obj.get("oid", "")), obj.get("size")
            entry: dict[str, Any] = {"oid": oid, "size": size if isinstance(size, int) else -1}
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                entry["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif operation == "upload":
                if size > self.server.max_lfs_bytes:
                    entry["error"] = {"code": 413, "message": f"Object larger than the local hub limit ({self.server.max_lfs_bytes} bytes)"}
                elif not self.storage.has_object(oid, size):
                    entry["authenticated"] = True
                    q = self._signed_query("upload", f"{oid}/{size}", repo_type, repo_id)
                    entry["actions"] = {"upload": {"href": f"{self._base()}/lfs-objects/{oid}/{size}?{q}",
                                                   "expires_in": 86400}}
            elif operation == "download":
                if oid in in_repo and self.storage.has_object(oid, size):
                    entry["authenticated"] = True
                    q = self._signed_query("download", oid, repo_type, repo_id)
                    entry["actions"] = {"download": {"href": f"{self._base()}/lfs-objects/{oid}?{q}",
                                                     "expires_in": 86400}}
                else:
                    entry["error"] = {"code": 404, "message": "Object does not exist"}
            else:
                raise HubError(400, f"Unknown LFS operation {operation!r}")
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
                   ctype="application/vnd.git-lfs+json")

    def _repo_oids(self, repo_type: str, repo_id: str) -> set[str]:
        """sha256 of every file on a branch or tag of the repo (what a reader of the repo may fetch)."""
        refs = self.storage.refs(repo_type, repo_id)
        heads = set(refs["branches"].values()) | {t["target"] for t in refs["tags"].values()}
        return {e["sha256"] for sha in heads for e in self.storage.commit(repo_type, repo_id, sha)["tree"].values()}

    def _check_signature(self, action: str, oid: str) -> None:
        """LFS object links are valid only as signed by the batch API, for a repo that still exists."""
        repo, exp, sig = self.query.get("repo", ""), self.query.get("exp", ""), self.query.get("sig", "")
        repo_type, _, repo_id = repo.partition(":")
        good = hmac.compare_digest(sig.encode(), self._sign(action, oid, repo_type, repo_id, exp).encode())
        if not good or not exp.isdigit() or int(exp) < time.time():
            raise HubError(403, "LFS object links come from the batch API of a repo you may access (missing, "
                                "invalid or expired signature)")
        if self.storage.repo_meta(repo_type, repo_id) is None:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")

    def _lfs_object(self, method: str, args: list[str]) -> None:
        oid = args[0]
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, f"Invalid oid {oid!r}")
        self._check_signature("upload" if method == "PUT" else "download", oid if len(args) == 1 else f"{oid}/{args[1]}")
        if method == "PUT" and len(args) == 2:
            try:
                size = int(args[1])
            except ValueError:
                raise HubError(400, "Invalid size") from None
            if size > self.server.max_lfs_bytes:
                self.close_connection = True
                raise _BodyTooLarge(self.server.max_lfs_bytes)
            declared = self.headers.get("Content-Length")
            if declared is not None and self._content_length() != size:
                self.close_connection = True
                raise HubError(400, f"Size mismatch: Content-Length {declared}, expected {size}")
            stored = self.storage.put_stream(self._iter_body(min(size, self.server.max_lfs_bytes)), oid, size)
            log.debug("local hub: LFS object %s (%d bytes) %s", oid[:12], size, "stored" if stored else "already present")
            return self._send(200, b"", {"ETag": f'"{oid}"'})
        if method in ("GET", "HEAD") and len(args) == 1:
            if not self.storage.has_object(oid):
                raise HubError(404, "Object not found", "EntryNotFound")
            return self._send_file(self.storage.object_path(oid), {"ETag": f'"{oid}"'})
        self._unknown(method)

    # --------------------------------------------------------------- downloads
    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        validate_repo_id(repo_id)
        self._check_access(repo_type, repo_id)
        sha, tree = self.storage.tree(repo_type, repo_id, revision)
        validate_path(path)
        e = tree.get(path)
        if e is None:
            # clients probe many optional files (tokenizer extras, dataset scripts): routine, so DEBUG
            log.debug("local hub: %s %s@%s has no %s (EntryNotFound)", repo_type, repo_id, revision, path)
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if e["lfs"]:
            headers.update({"ETag": f'"{e["sha256"]}"', "X-Linked-Etag": f'"{e["sha256"]}"', "X-Linked-Size": str(e["size"])})
        else:
            headers["ETag"] = f'"{e["oid"]}"'
        self._send_file(self.storage.object_path(e["sha256"]), headers)

    def _send_file(self, file: Path, headers: dict[str, str]) -> None:
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (not m.group(1) and not m.group(2)):
                raise HubError(416, f"Unsupported Range {rng!r}", headers={"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(size - int(m.group(2)), 0)
            if start >= size or start > end:
                if size == 0 and start == 0:
                    start, end = 0, -1
                else:
                    raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            else:
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD" or length <= 0:
            return
        with open(file, "rb") as fh:
            self.wfile.flush()
            sent = 0
            while sent < length:
                n = self.connection.sendfile(fh, offset=start + sent, count=length - sent)
                if not n:
                    break
                sent += n


_API_ROUTES = {
    ("GET", "revision"): Handler._revision,
    ("GET", "tree"): Handler._tree,
    ("POST", "paths-info"): Handler._paths_info,
    ("GET", "refs"): Handler._refs,
    ("GET", "commits"): Handler._commits,
    ("POST", "preupload"): Handler._preupload,
    ("POST", "commit"): Handler._commit,
    ("POST", "branch"): Handler._branch,
    ("DELETE", "branch"): Handler._branch,
    ("POST", "tag"): Handler._tag,
    ("DELETE", "tag"): Handler._tag,
    ("PUT", "settings"): Handler._settings,
}

_WHOAMI = {
    "type": "user",
    "id": "000000000000000000000001",
    "name": LOCAL_USER,
    "fullname": "Local Hub user (polyclinic hub serve)",
    "email": None,
    "emailVerified": False,
    "isPro": False,
    "orgs": [],
    "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
}


def _folder_oid(tree: dict, folder: str) -> str:
    h = hashlib.sha1(b"tree\0")
    for p in sorted(k for k in tree if k.startswith(folder + "/")):
        h.update(f"{p}\0{tree[p]['oid']}\n".encode())
    return h.hexdigest()


def _subtree_sig(tree: dict, path: str) -> str | None:
    if path in tree:
        return tree[path]["oid"]
    if any(k.startswith(path + "/") for k in tree):
        return _folder_oid(tree, path)
    return None


# ------------------------------------------------------------------------------------------------ public API
class HubServer:
    """A running local hub. ``url`` is what ``HF_ENDPOINT`` should be; ``shutdown()`` stops it."""

    def __init__(self, httpd: _Server, root: Path, thread: threading.Thread | None):
        self._httpd = httpd
        self._thread = thread
        self.root = root
        self.host, self.port = httpd.server_address[:2]
        self.url = httpd.url
        self.storage = httpd.storage
        self.unknown_routes: list[str] = httpd.unknown_routes  # "METHOD /path" of every unimplemented call
        self.token: str = httpd.token  # required for writes and private reads (Authorization: Bearer)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point the Hugging Face clients at this server (with its token)."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": self.token}

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve(
    root: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_non_loopback: bool = False,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_lfs_bytes: int = DEFAULT_MAX_LFS_BYTES,
    max_commit_bytes: int = DEFAULT_MAX_COMMIT_BYTES,
    background: bool = True,
    token: str | None = None,
    socket_timeout: float = 120.0,
) -> HubServer:
    """Start the local hub on ``host:port`` (0 = a free port) serving ``root``.

    ``background=True`` serves from a daemon thread and returns at once; otherwise call
    ``.serve_forever()`` on the returned handle. Binding a non-loopback address needs ``allow_non_loopback``.
    """
    if not _is_loopback(host) and not allow_non_loopback:
        raise UserError(
            f"refusing to bind the local hub to {host!r}: it serves plain HTTP (the token travels unencrypted) and "
            "public repos need no token. Use 127.0.0.1 (default), or pass --allow-non-loopback if you really want "
            "other machines to reach it."
        )
    root = Path(root)
    storage = Storage(root)
    try:
        httpd = (_Server6 if ":" in host else _Server)((host, port), Handler)
    except OSError as exc:
        raise UserError(f"cannot bind the local hub to {host}:{port}: {exc}") from exc
    httpd.storage = storage
    httpd.max_json_bytes = int(max_json_bytes)
    httpd.max_lfs_bytes = int(max_lfs_bytes)
    httpd.max_commit_bytes = int(max_commit_bytes)
    httpd.unknown_routes = []
    bound_host, bound_port = httpd.server_address[:2]
    shown = bound_host if ":" not in str(bound_host) else f"[{bound_host}]"
    httpd.url = f"http://{shown}:{bound_port}"
    token = token or os.environ.get("POLYCLINIC_HUB_TOKEN") or f"local-hub-{secrets.token_urlsafe(24)}"
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UserError("the local hub token must be at least 16 characters without spaces")
    httpd.token, httpd.secret = token, secrets.token_bytes(32)
    httpd.socket_timeout = float(socket_timeout)
    names = {str(shown).lower(), str(host).lower()} | ({"127.0.0.1", "localhost", "[::1]"} if _is_loopback(host) else set())
    httpd.allowed_hosts = {f"{n}:{bound_port}" for n in names}
    log.info("local Hub-compatible server (NOT the Hugging Face Hub) at %s, repositories under %s", httpd.url, storage.root)
    thread = None
    if background:
        thread = threading.Thread(target=httpd.serve_forever, name=f"local-hub-{bound_port}", daemon=True)
        thread.start()
    return HubServer(httpd, storage.root, thread)
