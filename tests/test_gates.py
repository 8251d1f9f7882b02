"""Release gates: each refuses its bad case with a message naming file (and row), passes the clean case,
and its override flag lets it through. No server needed: gates run before anything is sent."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polyclinic.errors import UserError
from polyclinic.hub.gates import (
    GateRefused,
    check_phi,
    check_secrets,
    check_weights,
    mask_secrets,
    run_gates,
    scan_text_phi,
)

FAKE_HF = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7"
CLEAN_MODEL = {"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"__metadata__":{}}', "config.json": b'{"d_model": 32}'}


def _parquet(tmp_path, rows, name="es/train-00000-of-00001.parquet"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return name, path


def test_pickle_weights_refused_with_file_name_and_flag():
    files = {**CLEAN_MODEL, "pytorch_model.bin": b"\x80\x04K\x01.", "extra/optimizer.pt": b"PK\x03\x04...data.pkl"}
    with pytest.raises(GateRefused) as exc:
        run_gates("org/m", files, repo_type="model", kind="mt5")
    msg = str(exc.value)
    assert "pytorch_model.bin" in msg and "extra/optimizer.pt" in msg and "--allow-pickle" in msg
    assert "[weights]" in msg and "nothing was sent" in msg
    results = run_gates("org/m", files, repo_type="model", kind="mt5", allow=["weights"])
    assert {r.gate: r.status for r in results}["weights"] == "overridden"
    assert check_weights(CLEAN_MODEL, require_safetensors=True).passed


def test_pickle_content_under_an_innocent_name_and_missing_safetensors():
    res = check_weights({"weights.dat": b"\x80\x05\x95" + b"x" * 20}, require_safetensors=True)
    kinds = sorted(f.kind for f in res.findings)
    assert kinds == ["no safetensors weights", "pickle content"]


@pytest.mark.parametrize(
    "content,kind",
    [
        (f"token = {FAKE_HF}\n", "huggingface-token"),
        ("aws_access_key_id=AKIAABCDEFGHIJKLMNOP\n", "aws-access-key-id"),
        ("aws_secret_access_key = " + "a" * 20 + "B/" + "c" * 18 + "\n", "aws-secret-access-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n", "private-key"),
        ('{"api_key": "sk_live_0123456789abcdef"}\n', "api-key-assignment"),
    ],
)
def test_secret_patterns_refused_naming_file_and_line(content, kind):
    files = {**CLEAN_MODEL, "notes/train.txt": ("first line\n" + content).encode()}
    res = check_secrets(files, tokens=[])
    assert [f.kind for f in res.findings] == [kind]
    assert res.findings[0].location == "notes/train.txt:2"
    assert "0123456789abcdef" not in str(res.findings[0]) and FAKE_HF not in str(res.findings[0])


def test_current_hf_token_is_found_anywhere_and_never_shown(monkeypatch):
    token = "local-secret-value-123"
    monkeypatch.setenv("HF_TOKEN", token)
    files = {**CLEAN_MODEL, "README.md": f"---\nlicense: mit\n---\nuse {token} to log in\n".encode()}
    with pytest.raises(GateRefused) as exc:
        run_gates("org/m", files, repo_type="model", kind="mt5")
    assert "README.md:4" in str(exc.value) and "current HF_TOKEN value" in str(exc.value)
    assert token not in str(exc.value)
    assert run_gates("org/m", files, repo_type="model", kind="mt5", allow=["secrets"])[2].status == "overridden"
    assert mask_secrets(f"Bearer {token} and {FAKE_HF}") == "Bearer loc*** and hf_***"


def test_secret_in_safetensors_metadata_and_parquet(tmp_path):
    import json

    header = json.dumps({"__metadata__": {"note": FAKE_HF}}).encode()
    st = len(header).to_bytes(8, "little") + header
    name, path = _parquet(tmp_path, [{"text": "ok"}, {"text": f"password = hunter2hunter2hunter2"}])
    res = check_secrets({"model.safetensors": st, name: path}, tokens=[])
    locs = sorted(f.location for f in res.findings)
    assert locs == ["es/train-00000-of-00001.parquet row 1 column text", "model.safetensors (metadata header)"]


def test_clean_files_pass_every_gate(tmp_path):
    name, path = _parquet(tmp_path, [{"id": "1", "text": "Infarto agudo de miocardio (I21.9) en 2019; presión 120/80 mmHg."},
                                     {"id": "2", "text": "Type 2 diabetes, HbA1c 7.5%, 10 mg/kg/day, 3 de enero de 2020."}])
    results = run_gates("org/d", {name: path, "README.md": b"---\nlicense: mit\n---\n"}, repo_type="dataset", kind="corpus")
    assert [r.gate for r in results] == ["card", "weights", "secrets", "paths", "phi"]
    assert [r.status for r in results] == ["passed"] * 5


def test_phi_row_with_email_refused_with_row_and_masked_example(tmp_path):
    rows = [{"id": str(i), "text": "Paciente con neumonía."} for i in range(3)]
    rows.append({"id": "3", "text": "Contacto: juan.perez@hospital.es, tel. +34 612 345 678"})
    name, path = _parquet(tmp_path, rows)
    with pytest.raises(GateRefused) as exc:
        run_gates("org/d", {name: path}, repo_type="dataset", kind="corpus")
    msg = str(exc.value)
    assert "es/train-00000-of-00001.parquet row 3 column text: email" in msg and "--allow-phi" in msg
    assert "juan.perez@hospital.es" not in msg and "j**n.p***z@h******l.e*" in msg
    assert '"email": 1' in msg and '"phone": 1' in msg  # counts
    results = run_gates("org/d", {name: path}, repo_type="dataset", kind="corpus", allow=["phi"])
    phi = results[-1]
    assert phi.status == "overridden" and phi.summary["counts"] == {"email": 1, "phone": 1}
    assert phi.summary["examples"]["email"] == ["es/train-00000-of-00001.parquet row 3 column text: j**n.p***z@h******l.e*"]


@pytest.mark.parametrize(
    "text,kind",
    [
        ("DNI 12345678Z del paciente", "national-id-es-dni"),
        ("NIE X1234567L", "national-id-es-nie"),
        ("SSN 123-45-6789 on file", "national-id-us-ssn"),
        ("MRN: 00123456", "medical-record-number"),
        ("NHC 4455667", "medical-record-number"),
        ("fecha de nacimiento: 12/03/1961", "date-of-birth"),
        ("DOB 1961-03-12", "date-of-birth"),
        ("vive en Calle de Alcalá 45, Madrid", "street-address"),
        ("lives at 221 Baker Street", "street-address"),
        ("call (555) 123-4567", "phone"),
        ("escribir a ana@example.org", "email"),
    ],
)
def test_phi_kinds(text, kind):
    assert [k for k, _ in scan_text_phi(text)] == [kind]


def test_phi_false_positive_guards():
    # invalid DNI check letter, ICD codes, doses, years, blood pressure: not PHI
    text = "12345678A; I21.9; 500 mg cada 8 h; en 2019-2020; TA 120/80; 1.234.567 habitantes; CIE-10 E11.65"
    assert list(scan_text_phi(text)) == []
    assert check_phi({}).passed


def test_unknown_override_is_a_user_error():
    with pytest.raises(UserError, match="unknown gate override"):
        run_gates("org/m", CLEAN_MODEL, repo_type="model", kind="mt5", allow=["pickles"])


def test_card_problems_refuse_and_can_be_overridden():
    with pytest.raises(GateRefused, match="--allow-incomplete-card"):
        run_gates("org/m", CLEAN_MODEL, repo_type="model", kind="mt5", card_problems=["metadata key 'license' is missing or empty"])
    results = run_gates("org/m", CLEAN_MODEL, repo_type="model", kind="mt5", card_problems=["x"], allow=["card"])
    assert results[0].status == "overridden"


def test_log_records_are_masked(monkeypatch, caplog):
    import logging

    from polyclinic.hub.push import _MASK

    token = "local-secret-value-456"
    monkeypatch.setenv("HF_TOKEN", token)
    record = logging.LogRecord("polyclinic.hub.push", logging.INFO, __file__, 1, "header Bearer %s", (token,), None)
    assert _MASK.filter(record) and record.getMessage() == "header Bearer loc***"


# ----------------------------------------------------------------------------------- every pushed file is gated
PHI_LINE = "Paciente Juan, DNI 12345678Z, tel. 612 345 678, juan.perez@example.com"


def test_phi_in_any_text_file_of_any_repo_is_refused_and_binaries_are_listed_as_skipped(tmp_path):
    """stats.json once carried rejected records past a gate that read only Parquet: every text file counts,
    whatever its name or encoding, in model repos too; binaries are skipped and named with the reason."""
    import gzip

    (tmp_path / "notes.log").write_text("ok\n" + PHI_LINE + "\n")
    (tmp_path / "NOTICE").write_bytes(b"\xef\xbb\xbf" + PHI_LINE.encode())  # UTF-8 BOM, no suffix
    (tmp_path / "utf16.txt").write_bytes("\ufeff".encode("utf-16-le") + PHI_LINE.encode("utf-16-le"))
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(json_line({"text": PHI_LINE})))
    files = {
        **CLEAN_MODEL,
        "stats.json": ('{"rejected_examples": [{"excerpt": "' + PHI_LINE + '"}]}').encode(),
        "config.yaml": ("note: " + PHI_LINE + "\n").encode(),
        "notes.log": tmp_path / "notes.log",
        "NOTICE": tmp_path / "NOTICE",
        "utf16.txt": tmp_path / "utf16.txt",
        "rows.jsonl.gz": tmp_path / "rows.jsonl.gz",
        "spiece.model": b"\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02" + PHI_LINE.encode(),  # binary protobuf
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + PHI_LINE.encode(),
    }
    with pytest.raises(GateRefused) as exc:
        run_gates("org/m", files, repo_type="model", kind="mt5")
    phi = exc.value.results[-1]
    assert phi.gate == "phi" and phi.status == "refused"
    flagged = {f.location.split(":")[0].split(" row ")[0] for f in phi.findings}
    assert flagged == {"stats.json", "config.yaml", "notes.log", "NOTICE", "utf16.txt", "rows.jsonl.gz"}
    assert {"national-id-es-dni", "phone", "email"} <= {f.kind for f in phi.findings if f.location.startswith("utf16.txt")}
    assert phi.scanned["utf16.txt"] == "utf-16-le text" and phi.scanned["rows.jsonl.gz"] == "gzip-compressed utf-8 text"
    assert phi.scanned["model.safetensors"].startswith("metadata header")
    assert set(phi.skipped) == {"spiece.model", "logo.png"} and "binary" in phi.skipped["logo.png"]
    report = phi.to_dict()
    assert set(report["scanned_files"]) == set(files) - {"spiece.model", "logo.png"}
    assert "2 skipped: logo.png (binary" in report["coverage"] and "spiece.model" in str(phi)
    assert "files:" in str(exc.value) and "12345678Z" not in str(exc.value)
    assert run_gates("org/m", files, repo_type="model", kind="mt5", allow=["phi"])[-1].status == "overridden"


def json_line(obj) -> bytes:
    import json

    return (json.dumps(obj) + "\n").encode()


def test_jsonl_cells_and_arrow_files_are_scanned_by_row_and_column(tmp_path):
    import pyarrow as pa

    table = pa.table({"id": ["a", "b"], "text": ["nada", "IBAN ES91 2100 0418 4502 0005 1332"]})
    with pa.OSFile(str(tmp_path / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    files = {"train/data-00000-of-00001.arrow": tmp_path / "data-00000-of-00001.arrow",
             "pairs.jsonl": json_line({"query": "ok", "meta": {"contact": "ana@example.org"}})}
    res = check_phi(files)
    assert sorted(str(f.location) for f in res.findings) == [
        "pairs.jsonl row 0 column meta.contact", "train/data-00000-of-00001.arrow row 1 column text"]
    assert res.summary["counts"] == {"email": 1, "iban": 1}


def test_long_lines_are_streamed_in_overlapping_pieces(tmp_path, monkeypatch):
    """A multi-GB one-line file is never read whole; a value across a piece boundary is still found."""
    from polyclinic.hub import gates

    monkeypatch.setattr(gates, "_CHUNK", 256)
    monkeypatch.setattr(gates, "_MAX_PIECE", 1000)
    monkeypatch.setattr(gates, "_OVERLAP", 100)
    text = "x " * 495 + "ana.lopez@example.org " + "y " * 2000 + "\nDNI 12345678Z\n"
    (tmp_path / "big.txt").write_text(text)
    pieces = list(gates._pieces(open(tmp_path / "big.txt", encoding="utf-8")))
    assert max(len(p) for _, p in pieces) <= 1000
    res = check_phi({"big.txt": tmp_path / "big.txt"})
    assert {(f.kind, f.location) for f in res.findings} == {("email", "big.txt:1"), ("national-id-es-dni", "big.txt:2")}


# ------------------------------------------------------------------------------------ absolute paths of this machine
def test_absolute_paths_of_the_build_machine_are_refused(tmp_path):
    import os
    from pathlib import Path

    from polyclinic.hub.gates import check_paths, local_path_prefixes, relativize_local_paths

    cwd, home = os.getcwd(), str(Path.home())
    run = tmp_path / "runs" / "demo"
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text('{"_name_or_path": "' + str(run / "final") + '"}')
    files = {
        "config.json": run / "final" / "config.json",
        "README.md": f"trained on `{cwd}/data/demo`\nsee https://example.org/tmp/x and data/demo\n".encode(),
        "manifest.json": ('{"cache": "' + home + '/.cache/x"}').encode(),
        "eval.json": b'{"model": "/home/alice/runs/m/final"}',
        "clean.yaml": b"corpus: data/demo\nurl: http://127.0.0.1:8765/api\n",
    }
    assert str(run) in local_path_prefixes(files) or str(run.parent) in local_path_prefixes(files)
    res = check_paths(files)
    assert sorted(f.location for f in res.findings) == ["README.md:1", "config.json:1", "eval.json:1", "manifest.json:1"]
    assert any(f.example.startswith(f"{cwd}/data/demo") for f in res.findings)
    with pytest.raises(GateRefused, match="--allow-local-paths"):
        run_gates("org/m", {**CLEAN_MODEL, **files}, repo_type="model", kind="mt5")
    results = run_gates("org/m", {**CLEAN_MODEL, **files}, repo_type="model", kind="mt5", allow=["paths"])
    assert {r.gate: r.status for r in results}["paths"] == "overridden"
    assert relativize_local_paths(f"corpus: {cwd}/data/demo and {cwd}") == "corpus: data/demo and ."
    assert relativize_local_paths(f"{run}/final", [run.parent]) == "demo/final"
    assert check_paths({"README.md": relativize_local_paths(files["README.md"].decode()).encode()}).passed


def test_random_and_damaged_files_never_crash_the_gates(tmp_path):
    """Random bytes under every name the gates treat specially: a report, never a traceback; a damaged
    dataset file is refused by the PHI gate as not verified (fail closed), a random binary is skipped."""
    import gzip
    import random

    rng = random.Random(7)
    names = ["a.parquet", "b.arrow", "c.jsonl", "d.safetensors", "e.txt", "f", "g.jsonl.gz"]
    for i in range(40):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600)))
        body = [body, b"PAR1" + body, gzip.compress(body)[: rng.randrange(1, 60)], b"\xff\xfe" + body][i % 4]
        name = names[i % len(names)]
        (tmp_path / name).write_bytes(body)
        for src in (tmp_path / name, body):
            results = run_gates("o/r", {name: src}, repo_type="dataset", kind="corpus", raise_on_refusal=False)
            phi = results[-1]
            assert set(phi.scanned) | set(phi.skipped) == {name}
    damaged = {"x.parquet": b"PAR1 not really parquet"}
    phi = check_phi(damaged)
    assert [f.kind for f in phi.findings] == ["unreadable file"] and "x.parquet" in phi.skipped
