"""Fail fast, with a message naming it, when a Hub endpoint does not answer.

Why: huggingface_hub retries a dead endpoint for many seconds and then raises a long traceback; a user who
mistyped ``endpoint=`` or forgot to start ``polyclinic hub serve`` should learn that within two seconds.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from polyclinic.errors import UserError

DEFAULT_ENDPOINT = "https://huggingface.co"


def resolve_endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def check_endpoint(endpoint: str | None, timeout: float = 2.0) -> str:
    """Fail fast (``timeout`` seconds at most per address) with a message naming the endpoint when nothing
    answers there, instead of huggingface_hub's retries and a traceback. Returns the endpoint used."""
    url = resolve_endpoint(endpoint)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"Hub endpoint {url!r} is not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UserError(f"Hub endpoint {url!r} has an invalid port") from None
    proxy = os.environ.get("HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY") or os.environ.get(
        "https_proxy" if parts.scheme == "https" else "http_proxy")
    if proxy and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return url  # reached through a proxy: the proxy decides, do not second-guess it
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise UserError(f"cannot reach Hub endpoint {url}: host {parts.hostname!r} not found ({exc.strerror}); "
                        "check endpoint= / HF_ENDPOINT and the network") from None
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UserError(f"cannot reach Hub endpoint {url}: {reason}; is the server running? "
                        "(check endpoint= / HF_ENDPOINT)") from None
    return url
