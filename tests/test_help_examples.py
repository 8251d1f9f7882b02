"""Every example printed by every ``--help`` is parsed by the parser it documents, so help text cannot drift
from the CLI (a renamed flag, a dropped positional, an override the command no longer takes); a few
examples are also run end to end on tiny data."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from polyclinic.cli import COMMANDS
from polyclinic.commands._args import parse_with_overrides

_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(sub-command words, parser) for a parser and every sub-parser below it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*words, name))


def _examples(text: str) -> list[str]:
    """Lines of an epilog that run ``polyclinic``: continuations joined, comments and env prefixes dropped."""
    out, pending = [], ""
    for raw in (text or "").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        line = re.sub(r"^examples?:\s*", "", line).split(" #", 1)[0].strip()
        if not re.match(r"^(\w+=\S+\s+)*polyclinic\s", line):
            continue  # prose (may hold apostrophes), not a command line
        words = shlex.split(line)
        while words and _ENV.match(words[0]):
            words = words[1:]
        if len(words) >= 2 and words[0] == "polyclinic":
            out.append(words)
    return out


def _all_examples() -> list[tuple[str, list[str]]]:
    found = []
    for name, (module, _) in COMMANDS.items():
        parser = importlib.import_module(module).build_parser(f"polyclinic {name}")
        for _, p in _parsers(parser):
            for words in _examples(p.epilog):
                if (name, words) not in found:  # a sub-parser may repeat its parent's epilog
                    found.append((name, words))
    return found


EXAMPLES = _all_examples()


def test_every_command_documents_examples():
    documented = {name for name, _ in EXAMPLES}
    assert documented == set(COMMANDS), f"commands without --help examples: {sorted(set(COMMANDS) - documented)}"
    assert len(EXAMPLES) >= 40


def test_demo_override_examples_name_real_config_keys():
    """`--pretrain-override K=V` is parsed by argparse as a plain string: check the key exists in the recipe
    config, or the printed example would fail only when run."""
    from polyclinic.pretraining.config import load_pretrain_config

    for name, words in EXAMPLES:
        if name == "demo" and "--pretrain-override" in words:
            override = words[words.index("--pretrain-override") + 1]
            load_pretrain_config(Path(__file__).resolve().parents[1] / "recipes/pretrain/demo.yaml", [override])  # raises on an unknown key


@pytest.mark.parametrize("name, words", EXAMPLES, ids=[" ".join(w)[:80] for _, w in EXAMPLES])
def test_help_example_parses(name, words, capsys):
    command = words[1]  # usually `name`; `hub serve --help` also shows the `push` that follows it
    assert command in COMMANDS, f"`polyclinic {name} --help` shows an unknown command: {' '.join(words)}"
    module = importlib.import_module(COMMANDS[command][0])
    try:
        parse_with_overrides(module.build_parser(f"polyclinic {command}"), words[2:])
    except SystemExit as exc:
        pytest.fail(f"`{' '.join(words)}` from --help does not parse: {capsys.readouterr().err.strip()} (exit {exc.code})")


def test_the_parse_check_can_fail(capsys):
    module = importlib.import_module(COMMANDS["push"][0])
    with pytest.raises(SystemExit):
        parse_with_overrides(module.build_parser("polyclinic push"), ["release.yaml", "--no-such-flag"])


def _run(words, monkeypatch, tmp_path) -> int:
    from polyclinic.cli import main

    monkeypatch.chdir(tmp_path)
    return main(words[1:])


def test_tokenizer_examples_run(tmp_path, monkeypatch, capsys):
    """`tokenizer train --text-file notes.txt ...` then `tokenizer check runs/tok`, exactly as printed."""
    pytest.importorskip("sentencepiece")
    from polyclinic.data.packaged import iter_packaged

    texts = [t for _, (_, t) in zip(range(4000), iter_packaged("cie10_es"))]
    texts += [t for _, (_, t) in zip(range(4000), iter_packaged("icd10cm"))]
    (tmp_path / "notes.txt").write_text("\n".join(texts), encoding="utf-8")
    by_text = {" ".join(w): w for n, w in EXAMPLES if n == "tokenizer"}
    train = by_text["polyclinic tokenizer train --text-file notes.txt --vocab-size 2000 --output runs/tok"]
    check = by_text["polyclinic tokenizer check runs/tok"]
    assert _run(train, monkeypatch, tmp_path) == 0
    assert _run(check, monkeypatch, tmp_path) == 0
    assert "T5 layout OK" in capsys.readouterr().out
