"""One logging setup for every CLI and training script: timestamps, stage names, rank-aware."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname).1s [%(name)s] %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Always writes to the *current* ``sys.stderr``: a handler bound to the stderr of its first call writes to a
    closed stream once that was swapped (pytest's capsys, ``contextlib.redirect_stderr``) and prints
    "--- Logging error --- Traceback" instead of the message."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str | int | None = None) -> None:
    level = level or os.environ.get("POLYCLINIC_LOG_LEVEL", "INFO")
    rank = os.environ.get("RANK")
    fmt = _FORMAT if rank in (None, "0") else f"%(asctime)s %(levelname).1s [rank{rank}:%(name)s] %(message)s"
    root = logging.getLogger()
    if not any(getattr(h, "_polyclinic", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
        handler._polyclinic = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "filelock", "httpx", "httpcore", "fsspec", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("polyclinic") else f"polyclinic.{name}")
