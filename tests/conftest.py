"""Shared fixtures. ``local_hub``: a LOCAL Hub-compatible server (polyclinic.hub.server) for push/verify tests.

    def test_x(local_hub):
        repo = local_hub.new_repo_id("tiny-mt5")          # "local-user/tiny-mt5-<random>"
        local_hub.api.create_repo(repo)                    # HfApi bound to the server (in-process)
        local_hub.run_python("from huggingface_hub import snapshot_download; print(snapshot_download(%r))" % repo)

``run_python`` runs a snippet in a FRESH interpreter with ``local_hub.env`` (HF_ENDPOINT, HF_HUB_DISABLE_XET=1,
HF_TOKEN, an empty per-test HF_HOME…): huggingface_hub reads HF_ENDPOINT at import time, and downloads
must be checked against an empty cache. Never add HF_HUB_OFFLINE=1 there: it blocks loopback too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class LocalHub:
    endpoint: str
    root: Path
    env: dict[str, str]
    server: object = field(repr=False)

    @property
    def api(self):
        """An ``HfApi`` bound to this server (in-process use; Xet is disabled by the fixture)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.env["HF_TOKEN"])

    def new_repo_id(self, prefix: str = "repo") -> str:
        return f"local-user/{prefix}-{uuid.uuid4().hex[:8]}"

    def run_python(self, code: str, *, check: bool = True, timeout: float = 300, extra_env: dict | None = None):
        """Run ``code`` in a fresh ``python -c`` with ``self.env``; returns the CompletedProcess (text).
        With ``check`` a non-zero exit fails the test showing stdout and stderr."""
        env = {**os.environ, **self.env, **(extra_env or {})}
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
        env.pop("HF_DATASETS_OFFLINE", None)
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            pytest.fail(f"subprocess failed ({proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-8000:]}")
        return proc


@pytest.fixture(scope="session")
def _local_hub_server(tmp_path_factory):
    from polyclinic.hub.server import serve

    root = tmp_path_factory.mktemp("local-hub")
    server = serve(root, host="127.0.0.1", port=0)
    yield server
    server.shutdown()


@pytest.fixture
def local_hub(_local_hub_server, tmp_path, monkeypatch) -> LocalHub:
    """The session's local hub server, with a fresh empty HF_HOME for this test (see the module docstring)."""
    import huggingface_hub.constants as hf_constants

    home = tmp_path / "hf_home"
    home.mkdir()
    env = {
        "HF_ENDPOINT": _local_hub_server.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": _local_hub_server.token,  # the server's token, passed like any user would (HF_TOKEN)
        "HF_HOME": str(home),
        "HF_HUB_ETAG_TIMEOUT": "30",
        "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    # In-process HfApi(endpoint=...) calls: Xet must be off (hf_xet is installed), the token must be this one.
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", _local_hub_server.token)  # in-process pushes read it like a user's HF_TOKEN
    return LocalHub(endpoint=_local_hub_server.url, root=Path(_local_hub_server.root), env=env, server=_local_hub_server)
