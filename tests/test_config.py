from pathlib import Path

import pytest

from polyclinic.config import ConfigError, StrictModel, config_hash, load_config, parse_overrides, save_config


class Inner(StrictModel):
    lr: float = 1e-3
    langs: list[str] = ["en"]


class Outer(StrictModel):
    name: str = "run"
    steps: int = 10
    optim: Inner = Inner()


def test_yaml_base_and_overrides(tmp_path: Path):
    (tmp_path / "base.yaml").write_text("name: base\nsteps: 5\noptim:\n  lr: 0.1\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nsteps: 7\n")
    cfg = load_config(Outer, tmp_path / "child.yaml", ["optim.langs=[es,fr]", "optim.lr=2e-4"])
    assert cfg.name == "base" and cfg.steps == 7
    assert cfg.optim.lr == pytest.approx(2e-4) and cfg.optim.langs == ["es", "fr"]


def test_unknown_key_and_bad_type_are_readable(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("stepz: 5\noptim:\n  lr: fast\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, tmp_path / "bad.yaml")
    msg = str(err.value)
    assert "stepz: unknown key" in msg and "optim.lr" in msg and "'fast'" in msg and "bad.yaml" in msg


def test_missing_file_and_cycle(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(Outer, tmp_path / "a.yaml")


def test_override_syntax_errors():
    with pytest.raises(ConfigError):
        parse_overrides(["noequals"])
    assert parse_overrides(["a.b=true", "c="]) == {"a": {"b": True}, "c": ""}


def test_save_roundtrip_and_hash(tmp_path: Path):
    cfg = load_config(Outer, None, ["steps=3"])
    save_config(cfg, tmp_path / "cfg.yaml")
    again = load_config(Outer, tmp_path / "cfg.yaml")
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Outer, None, ["steps=4"])) != config_hash(cfg)


class Source(StrictModel):
    path: str
    max_docs: int | None = None


class WithList(StrictModel):
    sources: list[Source] = []


def test_list_index_override(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("sources:\n  - {path: a}\n  - {path: b}\n")
    cfg = load_config(WithList, tmp_path / "c.yaml", ["sources.1.max_docs=5"])
    assert [s.max_docs for s in cfg.sources] == [None, 5] and cfg.sources[1].path == "b"
    with pytest.raises(ConfigError, match="out of range"):
        load_config(WithList, tmp_path / "c.yaml", ["sources.2.max_docs=5"])
    with pytest.raises(ConfigError, match="use an index"):
        load_config(WithList, tmp_path / "c.yaml", ["sources.first.max_docs=5"])
