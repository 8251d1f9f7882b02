"""Release gates: checks that run on the exact files of a push *before* anything is sent.

Every gate returns findings that say what and where (file, and row/column for datasets). A refused gate
raises :class:`GateRefused` (a :class:`UserError`) unless its override flag is given:

=================  ===========================================================  ========================
gate               refuses                                                      override
=================  ===========================================================  ========================
card               card metadata missing / invalid / required sections absent   ``--allow-incomplete-card``
weights            pickle-based files (.bin .pt .pth .pkl .ckpt .joblib ...)   ``--allow-pickle``
secrets            HF tokens, AWS keys, private keys, ``api_key=...``, HF_TOKEN ``--allow-secrets``
phi                e-mails, phones, DNI/NIE/SSN, record numbers, DOB, addresses ``--allow-phi``
=================  ===========================================================  ========================

The PHI scan reads every string column of every Parquet/JSON(L)/CSV/text file of a dataset repo and
reports counts per kind plus a few *masked* examples, never the raw value.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Union

from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("hub.gates")

FileSource = Union[Path, bytes]
GATES = ("card", "weights", "secrets", "phi")
OVERRIDE_FLAGS = {
    "card": "--allow-incomplete-card",
    "weights": "--allow-pickle",
    "secrets": "--allow-secrets",
    "phi": "--allow-phi",
}
MAX_EXAMPLES = 3

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
    checked: int = 0  # files (or rows for phi) looked at
    summary: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def status(self) -> str:
        return "passed" if self.passed else ("overridden" if self.overridden else "refused")

    def to_dict(self) -> dict:
        return {
            "gate": self.gate,
            "status": self.status,
            "checked": self.checked,
            "count": len(self.findings),
            "summary": self.summary,
            "findings": [str(f) for f in self.findings[:20]],
        }


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
            if r.summary:
                lines.append(f"    counts: {json.dumps(r.summary.get('counts', r.summary), ensure_ascii=False)}")
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

TEXT_SUFFIXES = (".md", ".json", ".jsonl", ".yaml", ".yml", ".txt", ".csv", ".tsv", ".py", ".cfg", ".ini", ".toml", ".sh", ".env")


def _scan_text_for_secrets(path: str, text: str, tokens: list[str], res: GateResult, line_offset: int = 0,
                           where: str | None = None) -> None:
    for lineno, line in enumerate(text.splitlines(), 1):
        loc = where or f"{path}:{lineno + line_offset}"
        for tok in tokens:
            if tok in line:
                res.findings.append(Finding("secrets", "current HF_TOKEN value", loc, example=tok[:3] + "***"))
        for kind, pat in SECRET_PATTERNS.items():
            for m in pat.finditer(line):
                value = m.group(0)
                if kind == "huggingface-token" and any(t in value for t in tokens):
                    continue  # already reported as the current token
                res.findings.append(Finding("secrets", kind, loc, example=mask_value(value)[:60]))


def _safetensors_header(src: FileSource) -> str:
    head = _read(src, 8)
    if len(head) < 8:
        return ""
    n = int.from_bytes(head, "little")
    if n <= 0 or n > 100_000_000:
        return ""
    return _read(src, 8 + n)[8:].decode("utf-8", errors="replace")


def check_secrets(files: Mapping[str, FileSource], tokens: list[str] | None = None) -> GateResult:
    tokens = current_tokens() if tokens is None else tokens
    res = GateResult("secrets", checked=len(files))
    for path, src in sorted(files.items()):
        lower = path.lower()
        if lower.endswith(".safetensors"):
            _scan_text_for_secrets(path, _safetensors_header(src), tokens, res, where=f"{path} (metadata header)")
        elif lower.endswith(".parquet"):
            for loc, text in iter_parquet_strings(path, src):
                _scan_text_for_secrets(path, text, tokens, res, where=loc)
        elif lower.endswith(TEXT_SUFFIXES) or _size(src) < 1_000_000:
            data = _read(src)
            if b"\x00" in data[:8192] and not lower.endswith(TEXT_SUFFIXES):
                text = data.decode("latin-1")  # binary: still look for token-shaped strings
            else:
                text = data.decode("utf-8", errors="replace")
            _scan_text_for_secrets(path, text, tokens, res)
    return res


# --------------------------------------------------------------------------------------------------------------------
# gate: personal health information in dataset text
# --------------------------------------------------------------------------------------------------------------------

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _valid_dni(m: re.Match) -> bool:
    s = re.sub(r"[\s-]", "", m.group(0)).upper()
    return _DNI_LETTERS[int(s[:8]) % 23] == s[8]


def _valid_nie(m: re.Match) -> bool:
    s = re.sub(r"[\s-]", "", m.group(0)).upper()
    num = "XYZ".index(s[0]).__str__() + s[1:8]
    return _DNI_LETTERS[int(num) % 23] == s[8]


PHI_PATTERNS: dict[str, tuple[re.Pattern, Callable[[re.Match], bool] | None]] = {
    "email": (re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), None),
    "phone": (
        re.compile(
            r"(?<![\w/.-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,3}"
            r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
            r"|\d{3}[.-]\d{3}[.-]\d{4}"
            r"|[6789]\d{2}[ .]\d{3}[ .]\d{3}"
            r"|[6789]\d{2}[ .]\d{2}[ .]\d{2}[ .]\d{2})(?![\w/.-]*\d)"
        ),
        None,
    ),
    "national-id-es-dni": (re.compile(r"\b\d{8}[ -]?[A-Za-z]\b"), _valid_dni),
    "national-id-es-nie": (re.compile(r"\b[XYZxyz][ -]?\d{7}[ -]?[A-Za-z]\b"), _valid_nie),
    "national-id-us-ssn": (re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"), None),
    "medical-record-number": (
        re.compile(
            r"(?i)\b(?:MRN|NHC|NHS\s+(?:no|number)|medical\s+record\s+(?:number|no\.?|#)|patient\s+(?:id|number)"
            r"|historia\s+cl[ií]nica|n[º°o]\.?\s+(?:de\s+)?historia|dossier\s+m[ée]dical|cartella\s+clinica)"
            r"\s*(?:n[º°o.]*)?\s*[:#]?\s*[A-Z0-9][A-Z0-9/-]{3,}"
        ),
        lambda m: bool(re.search(r"\d", m.group(0))),
    ),
    "date-of-birth": (
        re.compile(
            r"(?i)\b(?:DOB|D\.O\.B\.|date\s+of\s+birth|born\s+(?:on\s+)?|birth\s*date|fecha\s+de\s+nacimiento|f\.\s*nac\.?"
            r"|nacid[oa]\s+el|n[ée]e?\s+le|date\s+de\s+naissance|data\s+di\s+nascita|nat[oa]\s+il|data\s+de\s+nascimento)"
            r"\s*[:\-]?\s*(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\s+(?:de\s+)?[A-Za-zéû]+\s+(?:de\s+)?\d{4})"
        ),
        None,
    ),
    "street-address": (
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St\.|Avenue|Ave\.|Road|Rd\.|Boulevard|Blvd\.|Lane|Ln\.|Drive|Court|Ct\.)"
            r"|(?i:\b(?:calle|c/|avenida|avda\.|plaza|paseo|carrer|rue|via|rua)\s+)"
            r"(?:de\s+(?:la\s+|los\s+|las\s+)?|del\s+)?[A-ZÁÉÍÓÚÑ][\wáéíóúñ]+(?:\s+[\wáéíóúñ]+){0,3},?\s*(?:n[º°o]\.?\s*)?\d{1,4}\b"
        ),
        None,
    ),
}


def scan_text_phi(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, raw match)`` for each PHI-looking span of ``text``."""
    for kind, (pat, valid) in PHI_PATTERNS.items():
        for m in pat.finditer(text):
            if valid is None or valid(m):
                yield kind, m.group(0)


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
        columns = {c: batch.column(c).to_pylist() for c in cols}
        for i in range(batch.num_rows):
            for c in cols:
                v = columns[c][i]
                if v:
                    yield f"{path} row {row0 + i} column {c}", v
        row0 += batch.num_rows


def _iter_dataset_strings(files: Mapping[str, FileSource]) -> Iterator[tuple[str, str]]:
    for path, src in sorted(files.items()):
        lower = path.lower()
        if lower.endswith(".parquet"):
            yield from iter_parquet_strings(path, src)
        elif lower.endswith(".jsonl"):
            for i, line in enumerate(_read(src).decode("utf-8", errors="replace").splitlines()):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = line
                if isinstance(obj, dict):
                    for k, v in obj.items():
                        if isinstance(v, str) and v:
                            yield f"{path} row {i} column {k}", v
                elif isinstance(obj, str):
                    yield f"{path} row {i}", obj
        elif lower.endswith((".csv", ".tsv", ".txt")):
            for i, line in enumerate(_read(src).decode("utf-8", errors="replace").splitlines()):
                if line.strip():
                    yield f"{path} line {i + 1}", line


def check_phi(files: Mapping[str, FileSource], max_examples: int = MAX_EXAMPLES) -> GateResult:
    """Scan every string cell of the dataset files; findings name file, row and column (values masked)."""
    res = GateResult("phi")
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    cells = 0
    for loc, text in _iter_dataset_strings(files):
        cells += 1
        for kind, raw in scan_text_phi(text):
            counts[kind] = counts.get(kind, 0) + 1
            masked = mask_value(raw)
            if len(examples.setdefault(kind, [])) < max_examples:
                examples[kind].append(f"{loc}: {masked}")
            res.findings.append(Finding("phi", kind, loc, example=masked))
    res.checked = cells
    res.summary = {"cells_scanned": cells, "counts": counts, "examples": examples}
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
    """Run every gate on ``files`` (``{path_in_repo: Path | bytes}``); raise :class:`GateRefused` unless allowed."""
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
    if repo_type == "dataset":
        results.append(check_phi(files))
    for r in results:
        if not r.passed and r.gate in allow:
            r.overridden = True
            log.warning("%s: gate %s overridden (%d findings) by %s", repo_id, r.gate, len(r.findings), OVERRIDE_FLAGS[r.gate])
    if raise_on_refusal and any(r.status == "refused" for r in results):
        raise GateRefused(repo_id, results)
    return results
