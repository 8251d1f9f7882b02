"""The one way the kit opens users' text files (corpus JSONL/text, pairs TSV/CSV, concept tables, STS files).

Why one module: users hand the kit files saved by Excel, Windows editors, ``zstd``, ``gzip`` … Reading each of
them with ``open(path, encoding="utf-8")`` lost the first record to a UTF-8 BOM, turned a UTF-16 file into
"every line is invalid UTF-8" (a release with zero documents and exit 0) and read a ``.zst`` file as raw bytes.
Here, once:

- **compression** is recognised by its magic bytes (whatever the file is called): gzip, zstd (``zstandard``),
  bzip2, xz. A truncated or corrupt stream raises :class:`TextFileError` naming the file, never a bare
  ``EOFError``/``ZstdError`` (and never a silently short read: zstd frames are checked for their end).
- **encoding**: a BOM selects UTF-8, UTF-16 LE/BE or UTF-32 LE/BE and is dropped; without a BOM, UTF-16/32
  is recognised from the NUL-byte pattern of a first ASCII character (the RFC 4627 rule); otherwise UTF-8.
- **undecodable bytes** never raise mid-file. Each bad byte ``b`` is decoded as the lone surrogate
  ``U+DC00+b`` (a character strict decoding can never produce), so a tolerant reader can count the exact
  line as bad and go on (:func:`undecodable`), and a strict reader raises a :class:`TextFileError` with
  ``file:line``, the encoding and the byte (:func:`iter_lines` with ``strict=True``, :func:`read_text`).

Lines are split on ``\\n`` only (``newline="\\n"``, nothing translated), like iterating a binary file; pass
``newline=""`` for the ``csv`` module.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from polyclinic.errors import UserError

__all__ = [
    "COMPRESSED_SUFFIXES", "TextFileError", "Sniffed", "detect_encoding", "sniff", "open_binary", "open_text",
    "iter_lines", "read_text", "undecodable", "has_surrogates",
]

COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2", ".xz")
_ERRORS = "polyclinic-mark"
_MARK_RE = re.compile("[\udc00-\udcff]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_BZ2_MAGIC = re.compile(rb"BZh[1-9]1AY&SY")
_CHUNK = 1 << 16


class TextFileError(UserError):
    """A user file that cannot be read as text: corrupt compression, bytes that are not valid in its encoding."""


def _mark(exc: UnicodeError):
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start:exc.end]), exc.end


try:
    codecs.lookup_error(_ERRORS)
except LookupError:
    codecs.register_error(_ERRORS, _mark)


def undecodable(line: str) -> str | None:
    """``None`` for a cleanly decoded line; else a description of its first undecodable byte(s)."""
    if line.isascii():
        return None
    m = _MARK_RE.search(line)
    if m is None:
        return None
    run = re.match("[\udc00-\udcff]+", line[m.start():]).group(0)
    shown = " ".join(f"0x{ord(c) - 0xDC00:02x}" for c in run[:8]) + (" …" if len(run) > 8 else "")
    return f"byte(s) {shown} at column {m.start() + 1}"


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds surrogate code points (undecodable bytes, or ``\\ud800`` escapes from JSON):
    such text cannot be written as UTF-8 (Parquet, JSON, the Hub) and must be rejected by the reader."""
    return not text.isascii() and _SURROGATE_RE.search(text) is not None


def detect_encoding(head: bytes) -> tuple[str, int]:
    """``(codec, bom_length)`` from the first bytes of a (decompressed) file."""
    if head.startswith(codecs.BOM_UTF32_LE):
        return "utf-32-le", 4
    if head.startswith(codecs.BOM_UTF32_BE):
        return "utf-32-be", 4
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    if len(head) >= 4:
        a, b, c, d = head[:4]
        if a == b == c == 0 and d:
            return "utf-32-be", 0
        if a and b == c == d == 0:
            return "utf-32-le", 0
        if a == 0 and b and c == 0 and d:
            return "utf-16-be", 0
        if a and b == 0 and c and d == 0:
            return "utf-16-le", 0
    elif len(head) == 2:
        if head[0] == 0 and head[1]:
            return "utf-16-be", 0
        if head[0] and head[1] == 0:
            return "utf-16-le", 0
    return "utf-8", 0


def _compression(raw_head: bytes) -> str | None:
    if raw_head.startswith(b"\x1f\x8b"):
        return "gzip"
    if raw_head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if _BZ2_MAGIC.match(raw_head):
        return "bzip2"
    if raw_head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


class _ZstdReader(io.RawIOBase):
    """zstd frames one after another; a stream that ends inside a frame is an error (zstandard's own
    ``stream_reader`` returns a silently short read for a truncated file)."""

    def __init__(self, fh: BinaryIO):
        import zstandard

        self._fh, self._dctx = fh, zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending:
            chunk = self._fh.read(_CHUNK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the zstd stream ends inside a frame (truncated file?)")
                return 0
            while chunk:
                self._in_frame = True
                self._pending += self._obj.decompress(chunk)
                if self._obj.eof:
                    self._in_frame = False
                    chunk = self._obj.unused_data
                    self._obj = self._dctx.decompressobj()
                else:
                    chunk = b""
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Guarded(io.RawIOBase):
    """Decompressed bytes of a file minus ``skip`` leading bytes (the BOM); read errors become TextFileError."""

    def __init__(self, inner: BinaryIO, path: Path, kind: str | None):
        self._inner, self._path, self._kind = inner, path, kind
        self._head = b""

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        try:
            return self._inner.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise TextFileError(f"{self._path}: corrupt or truncated {self._kind or 'file'} data "
                                f"({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # zstandard.ZstdError and friends
            if type(exc).__module__.startswith("zstandard"):
                raise TextFileError(f"{self._path}: corrupt zstd data ({exc})") from None
            raise

    def peek_head(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head

    def skip(self, n: int) -> None:
        self._head = self._head[n:]

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


@dataclass(frozen=True)
class Sniffed:
    compression: str | None  # gzip | zstd | bzip2 | xz | None
    encoding: str  # a Python codec name without BOM handling (utf-8, utf-16-le, …)
    bom: bool


def _open(path: Path) -> tuple[_Guarded, Sniffed]:
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise UserError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        kind = _compression(fh.read(16))
        fh.seek(0)
        if kind == "gzip":
            inner: BinaryIO = gzip.GzipFile(fileobj=fh, mode="rb")
        elif kind == "zstd":
            try:
                inner = _ZstdReader(fh)
            except ImportError:
                raise UserError(f"{path} is zstd-compressed: install `zstandard` "
                                f"(pip install -c constraints.local.txt zstandard) or decompress it") from None
        elif kind == "bzip2":
            inner = bz2.BZ2File(fh, "rb")
        elif kind == "xz":
            inner = lzma.LZMAFile(fh, "rb")
        else:
            inner = fh
        g = _Guarded(inner, path, kind)
        enc, bom = detect_encoding(g.peek_head(4))
        g.skip(bom)
    except BaseException:
        fh.close()
        raise
    return g, Sniffed(kind, enc, bool(bom))


def sniff(path: str | Path) -> Sniffed:
    """Compression and encoding of ``path`` (reads a few bytes)."""
    g, info = _open(Path(path))
    g.close()
    return info


def open_binary(path: str | Path) -> BinaryIO:
    """The decompressed bytes of ``path`` (BOM kept; see :func:`sniff` for the encoding)."""
    path = Path(path)
    g, info = _open(path)
    if info.bom:  # give the BOM back: callers of the binary view decide themselves
        g._head = {"utf-8": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
                   "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[info.encoding] + g._head
    return io.BufferedReader(g, buffer_size=_CHUNK)


def open_text(path: str | Path, newline: str | None = "\n", encoding: str | None = None) -> io.TextIOWrapper:
    """A text stream of ``path``: decompressed, BOM dropped, encoding detected (or ``encoding``), undecodable
    bytes as lone surrogates (check lines with :func:`undecodable`)."""
    path = Path(path)
    g, info = _open(path)
    enc = encoding or info.encoding
    try:
        codecs.lookup(enc)
    except LookupError:
        g.close()
        raise UserError(f"{path}: unknown encoding {enc!r}") from None
    stream = io.TextIOWrapper(io.BufferedReader(g, buffer_size=_CHUNK), encoding=enc, errors=_ERRORS, newline=newline)
    stream.sniffed = info  # type: ignore[attr-defined]
    return stream


def _bad_line_message(path: Path, lineno: int, enc: str, detail: str) -> str:
    return (f"{path}:{lineno}: not valid {enc.upper()} text ({detail}); save the file as UTF-8 "
            f"(UTF-16/32 files need a BOM or an ASCII first character)")


def iter_lines(path: str | Path, strict: bool = False, newline: str | None = "\n") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file, line endings kept.

    ``strict=False``: undecodable bytes stay in the line as marks (:func:`undecodable` says where);
    ``strict=True``: the first such line raises :class:`TextFileError` with ``file:line``.
    Corrupt compressed data raises :class:`TextFileError` in both modes.
    """
    path = Path(path)
    with open_text(path, newline=newline) as fh:
        enc = fh.sniffed.encoding  # type: ignore[attr-defined]
        for lineno, line in enumerate(fh, 1):
            if strict:
                detail = undecodable(line)
                if detail:
                    raise TextFileError(_bad_line_message(path, lineno, enc, detail))
            yield lineno, line


def read_text(path: str | Path, newline: str | None = "\n") -> str:
    """The whole text of ``path`` (strict: undecodable bytes raise :class:`TextFileError` with ``file:line``)."""
    return "".join(line for _, line in iter_lines(path, strict=True, newline=newline))
