"""The demo's closing summary: the headline numbers a person reads, and a failing exit when verification fails."""

from pathlib import Path

from polyclinic.commands import demo

SUMMARY = {
    "corpus": {"result": {"totals": {"documents": 3, "words": 30}, "languages": {"en": {"documents": 2}, "es": {"documents": 1}}}},
    "tokenizer": {"result": {"vocab_size": 150, "first_sentinel_id": 149}},
    "pretrain": {"result": {"steps": 10, "tokens_seen": 1000, "final_train_loss": 3.5, "eval_loss": 3.75}},
    "eval": {"result": {"metrics": {"loss": 3.25, "token_accuracy": 0.5, "loss_en": 3.0, "loss_es": 3.5}}},
    "encoder": {"result": {"summary": {"coding_search_es_en/recall@10": {"before": 0.6, "after": 0.85, "gain": 0.25},
                                       "coding_search_es_en/recall@1": {"before": 0.3, "after": 0.5, "gain": 0.2}}}},
    "release": {"result": {"endpoint": "http://127.0.0.1:1", "verify": {"ok": False, "repos": [
        {"repo_id": "org/a", "kind": "mt5", "ok": True}, {"repo_id": "org/b", "kind": "encoder", "ok": False}]}}},
}


def test_headline_reports_measured_numbers():
    text = demo.headline(SUMMARY, Path("out"))
    assert "3 documents (en 2, es 1)" in text
    assert "150 ids, <extra_id_0> = 149" in text
    assert "train loss 3.500" in text and "3.750" in text
    assert "loss 3.250 (en 3.000, es 3.500)" in text
    assert "coding_search_es_en/recall@10" in text and "0.600 -> 0.850  (+0.250)" in text
    assert "recall@1 " not in text  # only the @10 headline metrics are listed
    assert "1/2 verified" in text and "FAIL org/b" in text


def test_demo_exits_nonzero_when_release_verification_fails(tmp_path, monkeypatch):
    import json

    (tmp_path / "summary.json").write_text(json.dumps({k: v for k, v in SUMMARY.items() if k != "release"}))
    monkeypatch.setitem(demo.__dict__, "stage_release", lambda out: SUMMARY["release"]["result"])
    assert demo.main(["--output", str(tmp_path), "--stages", "release"], prog="polyclinic demo") == 1
    SUMMARY_OK = json.loads(json.dumps(SUMMARY["release"]["result"]))
    SUMMARY_OK["verify"]["ok"] = True
    monkeypatch.setitem(demo.__dict__, "stage_release", lambda out: SUMMARY_OK)
    assert demo.main(["--output", str(tmp_path), "--stages", "release"], prog="polyclinic demo") == 0
