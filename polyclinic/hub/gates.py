"""Release gates: checks that run on the exact files of a push *before* anything is sent.

Every gate returns findings that say what and where (file, and row/column for datasets). A refused gate
raises :class:`GateRefused` (a :class:`UserError`) unless its override flag is given:

=================  ===========================================================  ========================
gate               refuses                                                      override
=================  ===========================================================  ========================
card               card metadata missing / invalid / required sections absent   ``--allow-incomplete-card``
weights            pickle-based files (.bin .pt .pth .pkl .ckpt .joblib ...)   ``--allow-pickle``
secrets            HF tokens, AWS keys, private keys, ``api_key=...``, HF_TOKEN ``--allow-secrets``
paths              absolute paths of the build machine (cwd, home, repo, tmp)   ``--allow-local-paths``
phi                e-mails, phones, national ids, IBAN, record numbers, DOB...  ``--allow-phi``
=================  ===========================================================  ========================

Why every file: a gate that looks only at some suffixes lets the others through (``stats.json`` once carried
rejected records with names, ids and phones past a PHI gate that read only Parquet). So the secrets, paths
and PHI gates read **every** file of the push and decide what is text by its *content*, not its name: a BOM
(UTF-8/16/32) or the NUL pattern of UTF-16/32 picks the encoding (:func:`polyclinic.textfiles.detect_encoding`),
gzip/zstd/bzip2/xz files are read decompressed, UTF-8 without NUL bytes is text, and so is Latin-1 text with
no control characters. Parquet and Arrow files are read by their string columns, a safetensors file by its
metadata header. Everything else is binary: skipped, and named with the reason in the gate report
(:attr:`GateResult.skipped`), next to the files that were scanned (:attr:`GateResult.scanned`). Text is
streamed in bounded pieces, so a multi-GB file is never read whole.

The PHI detectors live in :mod:`polyclinic.phi` (shared with the corpus builder, which masks the excerpts
it keeps of rejected records). Reports show counts per kind plus a few *masked* examples, never a raw value.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Union

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger
from polyclinic.phi import scan_text_phi

log = get_logger("hub.gates")

__all__ = [
    "FileSource", "GATES", "OVERRIDE_FLAGS", "Finding", "GateResult", "GateRefused", "FileKind", "classify_file",
    "iter_text_units", "iter_parquet_strings", "current_tokens", "mask_secrets", "mask_value", "check_weights",
    "check_secrets", "check_paths", "check_phi", "local_path_prefixes", "relativize_local_paths", "run_gates", "scan_text_phi",
]

FileSource = Union[Path, bytes]
GATES = ("card", "weights", "secrets", "paths", "phi")
OVERRIDE_FLAGS = {
    "card": "--allow-incomplete-card",
    "weights": "--allow-pickle",
    "secrets": "--allow-secrets",
    "paths": "--allow-local-paths",
    "phi": "--allow-phi",
}
MAX_EXAMPLES = 3
_HEAD = 1 << 16  # bytes looked at to decide text or binary
_CHUNK = 1 << 20  # characters read at a time when streaming text
_MAX_PIECE = 1 << 20  # a longer line is scanned in pieces of this many characters ...
_OVERLAP = 512  # ... overlapping so that a value across a cut is still seen
_BINARY_SECRET_SCAN = 1_000_000  # binary files up to this size are still searched for token-shaped strings

# --------------------------------------------------------------------------------------------------------------------
# secrets: masking (used by every log line and exception of the push) and scanning
# --------------------------------------------------------------------------------------------------------------------

HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{30,}")
SECRET_PATTERNS: dict[str, re.Pattern] = {
    "huggingface-token": HF_TOKEN_RE,
    "aws-access-key-id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "aws-secret-access-key": re.compile(
        r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
    ),
    "private-key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY( BLOCK)?-----"),
    "api-key-assignment": re.compile(
        r"(?i)\b(?:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password|passwd)"
        r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-/+=.]{12,})"
    ),
}


def current_tokens() -> list[str]:
    """Token values that must never appear in a file, a log line or an exception."""
    values = []
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN"):
        v = os.environ.get(name)
        if v and len(v) >= 8:
            values.append(v)
    try:
        from huggingface_hub import get_token

        t = get_token()
        if t and len(t) >= 8 and t not in values:
            values.append(t)
    except Exception:  # noqa: BLE001 - no login is fine
        pass
    return values


def mask_secrets(text: str, extra: Iterable[str] = ()) -> str:
    """Replace token values and token-looking strings by a masked form (keeps the first 3 characters)."""
    text = str(text)
    for value in sorted({*current_tokens(), *[e for e in extra if e]}, key=len, reverse=True):
        text = text.replace(value, value[:3] + "***")
    return HF_TOKEN_RE.sub("hf_***", text)


def mask_value(value: str) -> str:
    """Masked example of a finding: keep the first and last character of each alphanumeric run."""

    def _mask(m: re.Match) -> str:
        s = m.group(0)
        return s if len(s) <= 1 else (s[0] + "*" * (len(s) - 2) + s[-1] if len(s) > 2 else s[0] + "*")

    return re.sub(r"[A-Za-z0-9ÁÉÍÓÚÑáéíóúñ]+", _mask, value)


@dataclass
class Finding:
    gate: str
    kind: str
    location: str  # "file", "file:line" or "file row N column C"
    example: str = ""  # already masked
    message: str = ""

    def __str__(self) -> str:
        ex = f" ({self.example})" if self.example else ""
        return f"{self.location}: {self.kind}{ex}{' - ' + self.message if self.message else ''}"


@dataclass
class GateResult:
    gate: str
    findings: list[Finding] = field(default_factory=list)
    overridden: bool = False
    checked: int = 0  # files looked at
    summary: dict = field(default_factory=dict)
    scanned: dict[str, str] = field(default_factory=dict)  # path -> how it was read ("utf-8 text", "parquet ...")
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it was not read (binary, unreadable)

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def status(self) -> str:
        return "passed" if self.passed else ("overridden" if self.overridden else "refused")

    def coverage(self) -> str:
        """One line: how many files were scanned and which were skipped, and why."""
        if not self.scanned and not self.skipped:
            return ""
        line = f"{len(self.scanned)} file(s) scanned"
        if self.skipped:
            line += f", {len(self.skipped)} skipped: " + "; ".join(f"{p} ({why})" for p, why in sorted(self.skipped.items()))
        return line

    def to_dict(self) -> dict:
        d = {
            "gate": self.gate,
            "status": self.status,
            "checked": self.checked,
            "count": len(self.findings),
            "summary": self.summary,
            "findings": [str(f) for f in self.findings[:20]],
        }
        if self.scanned or self.skipped:
            d["scanned_files"] = dict(sorted(self.scanned.items()))
            d["skipped_files"] = dict(sorted(self.skipped.items()))
            d["coverage"] = self.coverage()
        return d

    def __str__(self) -> str:
        extra = f" ({len(self.findings)} finding(s))" if self.findings else ""
        cov = self.coverage()
        return f"gate {self.gate}: {self.status}{extra}{'; ' + cov if cov else ''}"


class GateRefused(UserError):
    def __init__(self, repo_id: str, results: list[GateResult]):
        self.repo_id = repo_id
        self.results = results
        lines = [f"release gates refused {repo_id}; nothing was sent:"]
        for r in results:
            if r.status != "refused":
                continue
            lines.append(f"  [{r.gate}] {len(r.findings)} finding(s); override with {OVERRIDE_FLAGS[r.gate]} if intended:")
            lines += [f"    - {f}" for f in r.findings[:10]]
            if len(r.findings) > 10:
                lines.append(f"    ... and {len(r.findings) - 10} more")
            if r.summary.get("counts"):
                lines.append(f"    counts: {json.dumps(r.summary['counts'], ensure_ascii=False)}")
            if r.coverage():
                lines.append(f"    files: {r.coverage()}")
        super().__init__(mask_secrets("\n".join(lines)))


# --------------------------------------------------------------------------------------------------------------------
# helpers over a file plan {path_in_repo: local Path | bytes}
# --------------------------------------------------------------------------------------------------------------------


def _read(source: FileSource, limit: int | None = None) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:limit] if limit else source)
    with open(source, "rb") as fh:
        return fh.read(limit) if limit else fh.read()


def _size(source: FileSource) -> int:
    return len(source) if isinstance(source, (bytes, bytearray)) else Path(source).stat().st_size


@dataclass(frozen=True)
class FileKind:
    """How a gate reads one file: ``text`` (with ``encoding``), ``parquet``, ``arrow``, ``safetensors``
    (metadata header), or ``binary`` / ``unreadable`` (skipped, ``note`` says why)."""

    kind: str
    encoding: str | None = None
    compression: str | None = None
    note: str = ""

    def describe(self) -> str:
        if self.kind == "text":
            return f"{self.compression + '-compressed ' if self.compression else ''}{self.encoding} text"
        return self.note or self.kind


_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def _text_encoding(head: bytes, complete: bool) -> str | None:
    """The encoding of ``head`` when it is text, else ``None`` (binary)."""
    from polyclinic.textfiles import detect_encoding

    if not head:
        return "utf-8"
    enc, bom = detect_encoding(head)
    body = head[bom:]
    try:
        text = codecs.getincrementaldecoder(enc)("strict").decode(body, final=complete)
    except UnicodeDecodeError:
        if enc != "utf-8" or b"\x00" in body:
            return None
        enc, text = "latin-1", body.decode("latin-1")  # legacy 8-bit text (Latin-1 / cp1252)
    if "\x00" in text or (text and len(_CONTROL_RE.findall(text)) > max(2, len(text) // 200)):
        return None
    return enc


def classify_file(path: str, src: FileSource) -> FileKind:
    """Decide by content how the gates read ``path`` (see the module docstring)."""
    lower = path.lower()
    if lower.endswith(".safetensors"):
        return FileKind("safetensors", note="tensor data is binary: only the metadata header was scanned")
    try:
        raw = _read(src, 16)
    except OSError as exc:
        return FileKind("unreadable", note=f"cannot be read: {exc.strerror or exc}")
    if raw.startswith(b"PAR1") or lower.endswith(".parquet"):
        return FileKind("parquet")
    if raw.startswith(b"ARROW1") or lower.endswith(".arrow"):
        return FileKind("arrow")
    compression = None
    try:
        if isinstance(src, (bytes, bytearray)):
            head = bytes(src[:_HEAD])
            complete = len(src) <= _HEAD
        else:
            from polyclinic.textfiles import open_binary, sniff

            compression = sniff(src).compression
            with open_binary(src) as fh:
                head = fh.read(_HEAD)
                complete = len(head) < _HEAD or not fh.peek(1)
    except UserError as exc:
        return FileKind("unreadable", note=f"could not be read: {exc}")
    except OSError as exc:
        return FileKind("unreadable", note=f"could not be read: {exc.strerror or exc}")
    enc = _text_encoding(head, complete)
    if enc is None:
        why = "binary content (NUL bytes or control characters)"
        return FileKind("binary", compression=compression, note=f"{compression}-compressed {why}" if compression else why)
    return FileKind("text", encoding=enc, compression=compression)


def _pieces(stream, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a text stream read in chunks; long lines come in overlapping pieces."""
    lineno, buf = first_line, ""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        buf += chunk
        lines = buf.split("\n")
        buf = lines.pop()
        for line in lines:
            if len(line) > _MAX_PIECE:
                yield from ((lineno, line[i:i + _MAX_PIECE]) for i in range(0, len(line), _MAX_PIECE - _OVERLAP))
            else:
                yield lineno, line
            lineno += 1
        while len(buf) > _MAX_PIECE:
            yield lineno, buf[:_MAX_PIECE]
            buf = buf[_MAX_PIECE - _OVERLAP:]
    if buf:
        yield lineno, buf


def _text_lines(src: FileSource, kind: FileKind) -> Iterator[tuple[int, str]]:
    if isinstance(src, (bytes, bytearray)):
        from polyclinic.textfiles import detect_encoding

        enc, bom = detect_encoding(bytes(src[:4]))
        yield from _pieces(io.StringIO(bytes(src[bom:]).decode(kind.encoding or enc, errors="replace")))
        return
    from polyclinic.textfiles import open_text

    with open_text(src, newline="", encoding=kind.encoding if kind.encoding == "latin-1" else None) as fh:
        yield from _pieces(fh)


def _json_strings(obj, column: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        if obj:
            yield column, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_strings(v, f"{column}.{k}" if column else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_strings(v, f"{column}[{i}]")


def iter_parquet_strings(path: str, src: FileSource, batch_size: int = 4096) -> Iterator[tuple[str, str]]:
    """Yield ``("<file> row N column C", text)`` for every non-empty string cell of a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src))
    cols = [f.name for f in pf.schema_arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if not cols:
        return
    row0 = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
        yield from _batch_strings(path, batch, cols, row0)
        row0 += batch.num_rows


def _batch_strings(path: str, batch, cols: list[str], row0: int) -> Iterator[tuple[str, str]]:
    columns = {c: batch.column(c).to_pylist() for c in cols}
    for i in range(batch.num_rows):
        for c in cols:
            v = columns[c][i]
            if v:
                yield f"{path} row {row0 + i} column {c}", v


def _iter_arrow_strings(path: str, src: FileSource) -> Iterator[tuple[str, str]]:
    """String cells of an Arrow IPC file or stream (what ``datasets.save_to_disk`` writes)."""
    import pyarrow as pa

    def _open():
        source = pa.BufferReader(src) if isinstance(src, (bytes, bytearray)) else pa.memory_map(str(src))
        try:
            return pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source = pa.BufferReader(src) if isinstance(src, (bytes, bytearray)) else pa.memory_map(str(src))
            reader = pa.ipc.open_file(source)
            return (reader.get_batch(i) for i in range(reader.num_record_batches))

    row0 = 0
    for batch in _open():
        cols = [f.name for f in batch.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        yield from _batch_strings(path, batch, cols, row0)
        row0 += batch.num_rows


def _safetensors_header(src: FileSource) -> str:
    head = _read(src, 8)
    if len(head) < 8:
        return ""
    n = int.from_bytes(head, "little")
    if n <= 0 or n > 100_000_000:
        return ""
    return _read(src, 8 + n)[8:].decode("utf-8", errors="replace")


def iter_text_units(files: Mapping[str, FileSource], res: GateResult, binary_as_bytes: bool = False
                    ) -> Iterator[tuple[str, str, str]]:
    """``(path, location, text)`` for every readable piece of text of every file, recording in ``res`` which
    files were scanned (and how) and which were skipped (and why).

    Locations: ``file:line`` for text, ``file row N column C`` for Parquet/Arrow/JSONL cells,
    ``file (metadata header)`` for safetensors. ``binary_as_bytes=True`` (the secrets gate) still searches a
    binary file of at most 1 MB, decoded byte for byte, for token-shaped strings.
    """
    for path, src in sorted(files.items()):
        kind = classify_file(path, src)
        try:
            if kind.kind == "safetensors":
                res.scanned[path] = "metadata header (tensor data is binary)"
                yield path, f"{path} (metadata header)", _safetensors_header(src)
            elif kind.kind in ("parquet", "arrow"):
                res.scanned[path] = f"{kind.kind} string columns"
                it = iter_parquet_strings(path, src) if kind.kind == "parquet" else _iter_arrow_strings(path, src)
                for loc, text in it:
                    yield path, loc, text
            elif kind.kind == "text":
                res.scanned[path] = kind.describe()
                jsonl = path.lower().endswith((".jsonl", ".jsonl.gz", ".ndjson"))
                for lineno, line in _text_lines(src, kind):
                    if jsonl and line.strip() and len(line) < _MAX_PIECE:
                        try:
                            cells = list(_json_strings(json.loads(line)))
                        except ValueError:
                            cells = None
                        if cells is not None:
                            for column, text in cells:
                                yield path, f"{path} row {lineno - 1}" + (f" column {column}" if column else ""), text
                            continue
                    yield path, f"{path}:{lineno}", line
            elif binary_as_bytes and kind.kind == "binary" and not kind.compression and _size(src) <= _BINARY_SECRET_SCAN:
                res.scanned[path] = "binary, searched byte for byte"
                yield path, path, _read(src).decode("latin-1")
            else:
                res.skipped[path] = kind.describe()
        except UserError as exc:  # corrupt compressed data found mid-file
            res.scanned.pop(path, None)
            res.skipped[path] = f"could not be read to the end: {exc}"
        except Exception as exc:  # noqa: BLE001 - a damaged Parquet/Arrow file: say so, do not crash the push
            if isinstance(exc, OSError) or kind.kind in ("parquet", "arrow") or type(exc).__module__.startswith("pyarrow"):
                res.scanned.pop(path, None)
                res.skipped[path] = f"could not be read as {kind.kind}: {exc}"
            else:
                raise
    res.checked = len(res.scanned)


# --------------------------------------------------------------------------------------------------------------------
# gate: weights in safetensors only
# --------------------------------------------------------------------------------------------------------------------

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".h5", ".msgpack", ".npz")


def _looks_like_pickle(head: bytes) -> bool:
    if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        return True
    # torch.save zip archives hold a data.pkl member
    return head[:4] == b"PK\x03\x04" and b".pkl" in head[:4096]


def check_weights(files: Mapping[str, FileSource], require_safetensors: bool = False) -> GateResult:
    res = GateResult("weights", checked=len(files))
    for path, src in sorted(files.items()):
        lower = path.lower()
        if lower.endswith(PICKLE_SUFFIXES):
            res.findings.append(
                Finding("weights", "pickle-based file", path, message=f"'{Path(path).suffix}' files can run code when loaded; "
                        "save with safetensors (save_pretrained(..., safe_serialization=True))")
            )
        elif not lower.endswith((".safetensors", ".parquet", ".json", ".md", ".txt", ".model", ".yaml", ".yml")):
            if _looks_like_pickle(_read(src, 4096)):
                res.findings.append(Finding("weights", "pickle content", path, message="file content is a Python pickle"))
    if require_safetensors and not any(p.endswith(".safetensors") for p in files):
        res.findings.append(Finding("weights", "no safetensors weights", "<repo>", message="a model repo must ship *.safetensors"))
    return res


# --------------------------------------------------------------------------------------------------------------------
# gate: secrets
# --------------------------------------------------------------------------------------------------------------------


def _scan_text_for_secrets(text: str, tokens: list[str], res: GateResult, loc: str) -> None:
    for tok in tokens:
        if tok in text:
            res.findings.append(Finding("secrets", "current HF_TOKEN value", loc, example=tok[:3] + "***"))
    for kind, pat in SECRET_PATTERNS.items():
        for m in pat.finditer(text):
            value = m.group(0)
            if kind == "huggingface-token" and any(t in value for t in tokens):
                continue  # already reported as the current token
            res.findings.append(Finding("secrets", kind, loc, example=mask_value(value)[:60]))


def check_secrets(files: Mapping[str, FileSource], tokens: list[str] | None = None) -> GateResult:
    """Tokens and keys in every file (text by content, Parquet/Arrow cells, safetensors metadata, small binaries)."""
    tokens = current_tokens() if tokens is None else tokens
    res = GateResult("secrets")
    for _path, loc, text in iter_text_units(files, res, binary_as_bytes=True):
        if "\n" in text:  # a multi-line cell or header: report per line
            for i, line in enumerate(text.splitlines(), 1):
                _scan_text_for_secrets(line, tokens, res, loc if " row " in loc or "(" in loc else f"{loc}:{i}")
        else:
            _scan_text_for_secrets(text, tokens, res, loc)
    return res


# --------------------------------------------------------------------------------------------------------------------
# gate: absolute paths of the build machine
# --------------------------------------------------------------------------------------------------------------------

_HOME_RE = r"/home/[^/\s\"'`]+/|/Users/[^/\s\"'`]+/|[A-Za-z]:\\\\?Users\\\\?[^\\\s\"'`]+"


def local_path_prefixes(files: Mapping[str, FileSource] = {}) -> list[str]:  # noqa: B006 - read only
    """Folders of this machine whose absolute paths must not appear in a published file: the working directory,
    the home folder, the repository, the temp folder, and the folders the pushed files come from."""
    candidates: set[str] = set()

    def add(p: str | Path | None, min_parts: int = 2) -> None:
        if not p:
            return
        for q in {str(p), os.path.realpath(p)}:
            q = q.rstrip("/")
            if q and len(Path(q).parts) - 1 >= min_parts:
                candidates.add(q)

    try:
        add(os.getcwd())
    except OSError:
        pass
    add(Path.home(), min_parts=1)
    add(Path(__file__).resolve().parents[2])
    add(tempfile.gettempdir(), min_parts=1)
    add("/tmp", min_parts=1)
    add("/var/tmp")
    local = [os.path.dirname(os.path.abspath(s)) for s in files.values() if isinstance(s, Path)]
    if local:
        common = Path(os.path.commonpath(local))
        for p in (common, common.parent, common.parent.parent):
            add(p)
    return sorted(candidates, key=len, reverse=True)


def _paths_regex(prefixes: list[str]) -> re.Pattern:
    alts = "|".join(re.escape(p) for p in prefixes if p)
    machine = r"(?:" + alts + r")(?=[/\\\s\"'`,;:)\]}>]|$)|" if alts else ""
    return re.compile(r"(?:(?<=file://)|(?<![\w.~/\-]))(?:" + machine + _HOME_RE + r")[^\s\"'`,;)\]}>]*")


def relativize_local_paths(text: str, roots: Iterable[str | Path] = ()) -> str:
    """``text`` with every absolute path of this machine made relative to the longest known folder it lies in
    (``roots`` first, e.g. the release root, then cwd, home, repo, temp): ``/work/main/data/demo`` -> ``data/demo``,
    a folder itself -> ``.``, another user's home folder -> ``~/...``. For text that describes an artefact (cards)."""
    prefixes = sorted({*(r.rstrip("/") for r in map(str, roots) if len(Path(str(r)).parts) > 2),
                       *(os.path.realpath(r).rstrip("/") for r in map(str, roots) if len(Path(str(r)).parts) > 2),
                       *local_path_prefixes()}, key=len, reverse=True)
    pattern = _paths_regex(prefixes)

    def _rel(m: re.Match) -> str:
        value = m.group(0)
        for p in prefixes:
            if value == p or value.startswith(p + "/"):
                return value[len(p) + 1:] or "."
        home = re.match(_HOME_RE, value)
        return "~/" + value[home.end():] if home else value

    return pattern.sub(_rel, text)


def check_paths(files: Mapping[str, FileSource], prefixes: list[str] | None = None) -> GateResult:
    """Absolute paths of the build machine (see :func:`local_path_prefixes`) or of any user's home folder in a
    pushed file: published files must say paths relative to the artefact, or nothing."""
    prefixes = local_path_prefixes(files) if prefixes is None else prefixes
    pattern = _paths_regex(prefixes)
    res = GateResult("paths")
    for _path, loc, text in iter_text_units(files, res):
        if "/" not in text and "\\" not in text:
            continue
        for m in pattern.finditer(text):
            value = m.group(0)
            res.findings.append(Finding("paths", "local absolute path", loc, example=value[:80] + ("…" if len(value) > 80 else ""),
                                        message="write it relative to the artefact folder (or leave it out)"))
    res.summary = {"prefixes": prefixes} if res.findings else {}
    return res


# --------------------------------------------------------------------------------------------------------------------
# gate: personal health information
# --------------------------------------------------------------------------------------------------------------------


def check_phi(files: Mapping[str, FileSource], max_examples: int = MAX_EXAMPLES) -> GateResult:
    """Scan every piece of text of every file (cells of datasets, lines of text files); findings name the file and
    the row and column or line, with masked values."""
    res = GateResult("phi")
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    cells = 0
    for _path, loc, text in iter_text_units(files, res):
        cells += 1
        for kind, raw in scan_text_phi(text):
            counts[kind] = counts.get(kind, 0) + 1
            masked = mask_value(raw)
            if len(examples.setdefault(kind, [])) < max_examples:
                examples[kind].append(f"{loc}: {masked}")
            res.findings.append(Finding("phi", kind, loc, example=masked))
    for path, why in sorted(res.skipped.items()):  # fail closed: text we could not read was not verified
        if why.startswith(("could not", "cannot")):
            res.findings.append(Finding("phi", "unreadable file", path, message=f"not verified: {why}"))
    res.summary = {"cells_scanned": cells, "files_scanned": len(res.scanned), "files_skipped": len(res.skipped),
                   "counts": counts, "examples": examples}
    return res


# --------------------------------------------------------------------------------------------------------------------
# all gates for one repo
# --------------------------------------------------------------------------------------------------------------------


def run_gates(
    repo_id: str,
    files: Mapping[str, FileSource],
    *,
    repo_type: str,
    kind: str,
    allow: Iterable[str] = (),
    card_problems: list[str] | None = None,
    raise_on_refusal: bool = True,
) -> list[GateResult]:
    """Run every gate on ``files`` (``{path_in_repo: Path | bytes}``); raise :class:`GateRefused` unless allowed.

    Results come in the order of :data:`GATES`; secrets, paths and PHI read every file of every repo type."""
    allow = set(allow)
    unknown = allow - set(GATES)
    if unknown:
        raise UserError(f"unknown gate override(s) {sorted(unknown)}; known gates: {', '.join(GATES)}")
    results: list[GateResult] = []
    card = GateResult("card", checked=1)
    for p in card_problems or []:
        card.findings.append(Finding("card", "card problem", "README.md", message=p))
    results.append(card)
    results.append(check_weights(files, require_safetensors=repo_type == "model"))
    results.append(check_secrets(files))
    results.append(check_paths(files))
    results.append(check_phi(files))
    for r in results:
        if not r.passed and r.gate in allow:
            r.overridden = True
            log.warning("%s: gate %s overridden (%d findings) by %s", repo_id, r.gate, len(r.findings), OVERRIDE_FLAGS[r.gate])
        for path, why in sorted(r.skipped.items()):
            log.info("%s: gate %s skipped %s: %s", repo_id, r.gate, path, why)
    if raise_on_refusal and any(r.status == "refused" for r in results):
        raise GateRefused(repo_id, results)
    return results
