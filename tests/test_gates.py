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
    assert [r.status for r in results] == ["passed"] * 4


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
