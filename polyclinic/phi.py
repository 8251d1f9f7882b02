"""Personal health information (PHI): the one set of detectors, validators and the masking function.

Why one module: two places must agree on what PHI looks like. The release gates
(:mod:`polyclinic.hub.gates`) refuse a push whose files contain it, and the corpus builder
(:mod:`polyclinic.data.stats`) must never write it into ``stats.json`` (which is pushed with the dataset)
when it keeps an excerpt of a rejected record. A pattern added here protects both.

Why validators: the kit's own text is full of numbers (ICD-10 codes ``C34.1``, HPO ids ``HP:0001250``,
doses, years, populations). National identifiers carry a check character or checksum, so a number is
only reported when its checksum holds (Spanish DNI/NIE letter, French NIR key, Italian codice fiscale
check letter, Portuguese NIF mod-11, Polish PESEL, IBAN mod-97); a random 8-digit number followed by
the wrong letter is not an ID. Phones are matched by their national layouts (E.164 ``+NN …``, Spanish
``612345678`` / ``612 345 678`` / ``91 234 56 78``, French ``01 23 45 67 89``, Italian ``347 123 4567``,
US ``(555) 123-4567``) or after a "phone" keyword in any of the kit's languages; never inside a longer
number, a decimal, a code or an id.

- :func:`find_phi` returns non-overlapping :class:`PhiMatch` spans (earliest first, longest wins);
- :func:`scan_text_phi` yields ``(kind, value)`` (what the gates count and report, masked);
- :func:`mask_phi` replaces every span by a placeholder (``[EMAIL]``, ``[PHONE]``, ``[ID-ES-DNI]`` …).
  By default it also masks personal *names* (capitalised words after "Paciente:", "Sr.", "name:" …, and
  runs of two or more capitalised words). Names are masking-only: guessing them is too noisy to refuse a
  release on, but over-masking a debugging excerpt costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["PhiMatch", "Detector", "DETECTORS", "NAME_DETECTORS", "PLACEHOLDERS", "find_phi", "scan_text_phi",
           "mask_phi", "valid_dni", "valid_nie", "valid_nir", "valid_codice_fiscale", "valid_nif_pt", "valid_pesel",
           "valid_iban"]


@dataclass(frozen=True)
class PhiMatch:
    kind: str
    start: int  # span that is masked (the value, without its keyword)
    end: int
    value: str
    match_start: int  # span of the whole match (keyword included), used to resolve overlaps
    match_end: int


@dataclass(frozen=True)
class Detector:
    kind: str
    placeholder: str
    pattern: re.Pattern
    validate: Callable[[str], bool] | None = None  # called with the value (group ``v`` if any, else the match)
    trim_words: bool = False  # on a failed check, retry without trailing space-separated chunks (IBAN groups)


# ------------------------------------------------------------------------------------------------ validators
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _alnum(s: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", s).upper()


def valid_dni(value: str) -> bool:
    """Spanish DNI: 8 digits (dots, spaces, hyphen allowed) and the letter ``TRWAGMYFPDXBNJZSQVHLCKE[n % 23]``."""
    s = _alnum(value)
    return len(s) == 9 and s[:8].isdigit() and _DNI_LETTERS[int(s[:8]) % 23] == s[8]


def valid_nie(value: str) -> bool:
    """Spanish NIE: X/Y/Z (= 0/1/2) + 7 digits + the DNI check letter of the resulting number."""
    s = _alnum(value)
    if len(s) != 9 or s[0] not in "XYZ" or not s[1:8].isdigit():
        return False
    return _DNI_LETTERS[int(str("XYZ".index(s[0])) + s[1:8]) % 23] == s[8]


def valid_nir(value: str) -> bool:
    """French NIR (numéro de sécurité sociale): 13 characters + 2-digit key = 97 - (n mod 97); Corsica's
    department 2A/2B counts as 19/18."""
    s = _alnum(value)
    if len(s) != 15:
        return False
    body, key = s[:13], s[13:]
    body = body[:5] + body[5:7].replace("2A", "19").replace("2B", "18") + body[7:]
    if not body.isdigit() or not key.isdigit():
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(key)


_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                   [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8,
                    12, 14, 16, 10, 22, 25, 24, 23]))


def valid_codice_fiscale(value: str) -> bool:
    """Italian codice fiscale: 15 characters + check letter (odd/even position tables, sum mod 26)."""
    s = _alnum(value)
    if len(s) != 16:
        return False
    total = 0
    for i, c in enumerate(s[:15]):
        if i % 2 == 0:  # 1st, 3rd, ... (odd positions counting from 1)
            total += _CF_ODD[c]
        else:
            total += int(c) if c.isdigit() else ord(c) - 65
    return chr(65 + total % 26) == s[15]


def valid_nif_pt(value: str) -> bool:
    """Portuguese NIF: 9 digits, the last = 11 - (sum of d_i * (9 - i) mod 11), 0 when that is 10 or 11."""
    s = re.sub(r"\D", "", value)
    if len(s) != 9:
        return False
    r = sum(int(d) * (9 - i) for i, d in enumerate(s[:8])) % 11
    return (0 if r < 2 else 11 - r) == int(s[8])


def valid_pesel(value: str) -> bool:
    """Polish PESEL: YYMMDD (month + 20/40/60/80 by century) + 4 digits + checksum (weights 1,3,7,9)."""
    s = re.sub(r"\D", "", value)
    if len(s) != 11:
        return False
    month, day = int(s[2:4]) % 20, int(s[4:6])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(d) * w for d, w in zip(s[:10], (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)))
    return (10 - total % 10) % 10 == int(s[10])


_IBAN_LENGTHS = {"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
                 "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
                 "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
                 "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "BR": 29, "MX": 18}


def valid_iban(value: str) -> bool:
    """IBAN of any country: the country's length when known (15-34 otherwise) and mod-97 == 1."""
    s = _alnum(value)
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    if _IBAN_LENGTHS.get(s[:2], len(s)) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _digits_between(lo: int, hi: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return lo <= sum(c.isdigit() for c in value) <= hi

    return check


# ------------------------------------------------------------------------------------------------ detectors
# A number is never taken from inside a longer number, a decimal, a code (C34.1), an id (HP:0001250) or a word.
_NB = r"(?<![\w/+\-.,:])(?<!\d )"
_NA = r"(?![\w/+\-]|[.,:]\d)"

_PHONE_LAYOUTS = "|".join([
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}",  # E.164, any country
    r"\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}",  # US (555) 123-4567
    r"\d{3}[.-]\d{3}[.-]\d{4}",  # US 555-123-4567
    r"[5-9]\d{2}[ .]\d{3}[ .]\d{3}",  # ES/PT/PL 612 345 678
    r"[6-9]\d{2}[ .]\d{2}[ .]\d{2}[ .]\d{2}",  # ES 912 34 56 78
    r"[89]\d[ .]\d{3}[ .]\d{2}[ .]\d{2}",  # ES landline 91 234 56 78
    r"[67]\d{8}",  # ES mobile without spaces
    r"0[1-9](?:[ .-]\d{2}){4}|0[1-9]\d{8}",  # FR 01 23 45 67 89 / 0123456789
    r"3\d{2}[ .]\d{3}[ .]?\d{3,4}|3\d{9}",  # IT mobile 347 123 4567
    r"0\d{1,3}[ .]\d{3,4}[ .]\d{3,4}",  # IT landline 06 1234 5678
])
_PHONE_WORDS = (r"tel|tlf|tfno|telf|tel[eé]fono|t[eé]l[eé]phone|telefone|telefono|telefon|phone|mobile|m[oó]vil"
                r"|cell|cellulare|portable|telem[oó]vel|fax|tel\.\s*kom|kom|numer\s+telefonu")
_CAP = r"[A-ZÁÉÍÓÚÑÇÀÈÌÒÙÂÊÎÔÛÄËÏÖÜŁŚŻŹĆŃ][a-záéíóúñçàèìòùâêîôûäëïöüłśżźćńęąõãőő'’-]+"
_PARTICLE = r"(?:de|del|la|las|los|da|do|dos|das|di|van|von|y|e|i)"
_MONTHS = r"[^\W\d_]{3,12}\.?"

DETECTORS: tuple[Detector, ...] = (
    Detector("email", "[EMAIL]",
             re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")),
    Detector("medical-record-number", "[MRN]", re.compile(
        r"(?i)\b(?:MRN|NHC|NHS\s+(?:no|number)|medical\s+record\s+(?:number|no\.?|#)|patient\s+(?:id|number)"
        r"|historia\s+cl[ií]nica|n[º°o]\.?\s+(?:de\s+)?historia|dossier\s+m[ée]dical|cartella\s+clinica"
        r"|numer\s+historii\s+choroby|processo\s+cl[ií]nico)"
        r"\s*(?:n[º°o.]*)?\s*[:#]?\s*(?P<v>[A-Z0-9][A-Z0-9/-]{3,})"), lambda v: bool(re.search(r"\d", v))),
    Detector("date-of-birth", "[DOB]", re.compile(
        r"(?i)\b(?:DOB|D\.O\.B\.|date\s+of\s+birth|born\s+(?:on\s+)?|birth\s*date|fecha\s+de\s+nacimiento|f\.\s*nac\.?"
        r"|nacid[oa]\s+el|n[ée]e?\s+le|date\s+de\s+naissance|data\s+di\s+nascita|nat[oa]\s+il|data\s+de\s+nascimento"
        r"|nascid[oa]\s+(?:em|a)|data\s+de\s+naixement|nascut\s+el|nascuda\s+el|data\s+urodzenia|urodzon[ya]|ur\.|geboren\s+am"
        r"|geburtsdatum)"
        r"\s*[:\-]?\s*(?P<v>\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}"
        rf"|\d{{1,2}}\s+(?:de\s+)?{_MONTHS}\s+(?:de\s+)?\d{{4}})")),
    Detector("iban", "[IBAN]", re.compile(
        r"\b(?P<v>[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?)\b"), valid_iban, trim_words=True),
    Detector("national-id-fr-nir", "[ID-FR-NIR]", re.compile(
        _NB + r"[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _NA), valid_nir),
    Detector("national-id-it-cf", "[ID-IT-CF]", re.compile(
        r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b"),
        valid_codice_fiscale),
    Detector("national-id-pl-pesel", "[ID-PL-PESEL]", re.compile(_NB + r"\d{11}" + _NA), valid_pesel),
    Detector("national-id-es-dni", "[ID-ES-DNI]", re.compile(
        r"(?<![\w.,/-])(?:\d{8}|\d{1,2}\.\d{3}\.\d{3})(?:-?[A-Za-z]|\s[A-Z])\b"), valid_dni),
    Detector("national-id-es-nie", "[ID-ES-NIE]", re.compile(
        r"\b[XYZxyz][ -]?\d{7}[ -]?[A-Za-z]\b"), valid_nie),
    Detector("national-id-pt-nif", "[ID-PT-NIF]", re.compile(
        r"(?:(?i:\b(?:NIF|NIPC|contribuinte)\b)\s*(?:n\.?[º°o]\.?\s*)?[:.]?\s*(?:PT)?\s*(?P<v>[1235689]\d{8})"
        + _NA + r"|" + _NB + r"(?:PT\s?)?(?P<w>[123]\d{8})" + _NA + ")"), valid_nif_pt),
    Detector("national-id-us-ssn", "[ID-US-SSN]", re.compile(
        r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    Detector("phone", "[PHONE]", re.compile(
        rf"(?i:\b(?:{_PHONE_WORDS})\b\.?)\s*(?:n\.?[º°o]\.?\s*)?[:.]?\s*(?P<v>\+?\d[\d ().-]{{5,}}\d)" + _NA),
        _digits_between(7, 15)),
    Detector("phone", "[PHONE]", re.compile(_NB + "(?:" + _PHONE_LAYOUTS + ")" + _NA), _digits_between(8, 15)),
    Detector("phone", "[PHONE]", re.compile(  # 0034 612 345 678: international prefix + country + national number
        _NB + r"00[1-9]\d{0,2}[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,4}" + _NA), _digits_between(11, 17)),
    Detector("street-address", "[ADDRESS]", re.compile(
        r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St\.|Avenue|Ave\.|Road|Rd\.|Boulevard|Blvd\.|Lane|Ln\.|Drive|Court|Ct\.)"
        r"|(?i:\b(?:calle|c/|avenida|avda\.|plaza|paseo|carrer|rue|via|rua|ulica|ul\.)\s+)"
        r"(?:de\s+(?:la\s+|los\s+|las\s+)?|del\s+)?[A-ZÁÉÍÓÚÑ][\wáéíóúñ]+(?:\s+[\wáéíóúñ]+){0,3},?\s*(?:n\.?[º°o]\.?\s*)?\d{1,4}\b")),
)

NAME_DETECTORS: tuple[Detector, ...] = (
    Detector("person-name", "[NAME]", re.compile(
        r"(?i:\b(?:paciente|patient[ea]?|pacjent(?:ka)?|paziente|nombre(?:\s+y\s+apellidos)?|apellidos?|name|nom|pr[ée]nom"
        r"|nome|cognome|imi[eę]|nazwisko|sr|sra|srta|dr|dra|don|doña|mr|mrs|ms|miss|mme|mlle|sig|sig\.ra|pan|pani|sen\.?hora?)"
        r"\b\.?)[:\s]\s*(?P<v>" + _CAP + r"(?:[\s-]+(?:" + _PARTICLE + r"\s+)?" + _CAP + r"){0,3})")),
    Detector("person-name", "[NAME]", re.compile(
        r"(?<![\w])" + _CAP + r"(?:\s+(?:" + _PARTICLE + r"\s+)?" + _CAP + r")+")),
)

PLACEHOLDERS = {d.kind: d.placeholder for d in DETECTORS + NAME_DETECTORS}


def _iter_matches(text: str, detectors: tuple[Detector, ...]) -> Iterator[tuple[int, PhiMatch]]:
    for prio, det in enumerate(detectors):
        for m in det.pattern.finditer(text):
            group = next((g for g in ("v", "w") if g in det.pattern.groupindex and m.group(g) is not None), None)
            start, end = (m.start(group), m.end(group)) if group else (m.start(), m.end())
            value = full = text[start:end]
            ok = det.validate is None or det.validate(value)
            while not ok and det.trim_words and " " in value:
                value = value.rsplit(" ", 1)[0]
                ok = det.validate(value)  # type: ignore[misc]
            if ok:
                trimmed = len(full) - len(value)
                yield prio, PhiMatch(det.kind, start, end - trimmed, value, m.start(), m.end() - trimmed)


def find_phi(text: str, names: bool = False) -> list[PhiMatch]:
    """Non-overlapping PHI spans of ``text``, in order (earliest match first; on a tie the longer one, then the
    detector listed first). ``names=True`` adds the masking-only person-name detectors."""
    if not text:
        return []
    detectors = DETECTORS + NAME_DETECTORS if names else DETECTORS
    candidates = sorted(_iter_matches(text, detectors), key=lambda pm: (pm[1].match_start, -pm[1].match_end, pm[0]))
    out: list[PhiMatch] = []
    end = -1
    for _, m in candidates:
        if m.match_start >= end:
            out.append(m)
            end = m.match_end
    return out


def scan_text_phi(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, value)`` for each PHI span of ``text`` (what the release gate reports)."""
    for m in find_phi(text):
        yield m.kind, m.value


def mask_phi(text: str, names: bool = True) -> str:
    """``text`` with every PHI span replaced by its placeholder (``[EMAIL]``, ``[PHONE]``, ``[ID-ES-DNI]`` …).

    ``names=True`` (the default) also masks personal names; see the module docstring."""
    if not text:
        return text
    parts: list[str] = []
    pos = 0
    for m in find_phi(text, names=names):
        parts.append(text[pos:m.start])
        parts.append(PLACEHOLDERS[m.kind])
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)
