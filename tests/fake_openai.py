"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for tests (started by the tests).

    with FakeOpenAI(lambda body: "answer text") as srv:
        srv.url            # http://127.0.0.1:PORT/v1
        srv.requests       # every request body (and its Authorization header) received

``respond(body)`` returns the answer text, or a ``(status, text)`` tuple for an HTTP error. Options mimic
real servers: ``json_schema=False`` answers HTTP 400 to ``response_format: json_schema`` (like servers
without structured outputs), ``logprobs=True`` returns per-token log-probabilities (tokens of at most 3
characters, each with ``token_logprob``) when the request asks for them, ``fail_first=N`` answers 503 to
the first N requests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeOpenAI:
    def __init__(self, respond: Callable[[dict], str | tuple[int, str]], *, json_schema: bool = True,
                 logprobs: bool = True, token_logprob: float = -0.1, fail_first: int = 0):
        self.respond = respond
        self.json_schema = json_schema
        self.logprobs = logprobs
        self.token_logprob = token_logprob
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self._srv: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    n = len(fake.requests)
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": "not found"})
                if n <= fake.fail_first:
                    return self._send(503, {"error": "overloaded"})
                rf = body.get("response_format") or {}
                if rf.get("type") == "json_schema" and not fake.json_schema:
                    return self._send(400, {"error": "response_format json_schema is not supported"})
                out = fake.respond(body)
                if isinstance(out, tuple):
                    return self._send(out[0], {"error": out[1]})
                choice = {"index": 0, "message": {"role": "assistant", "content": out}, "finish_reason": "stop"}
                if body.get("logprobs") and fake.logprobs:
                    toks = [out[i:i + 3] for i in range(0, len(out), 3)]
                    choice["logprobs"] = {"content": [
                        {"token": t, "logprob": fake.token_logprob,
                         "top_logprobs": [{"token": t, "logprob": fake.token_logprob}]} for t in toks]}
                self._send(200, {"id": f"cmpl-{n}", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [choice]})

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler

    def start(self) -> "FakeOpenAI":
        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (bind, read the port, close)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"
