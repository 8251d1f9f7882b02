import importlib
import subprocess
import sys

import pytest

from polyclinic.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_fails_cleanly(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name):
    module, _ = COMMANDS[name]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            pytest.skip(f"{module} not implemented yet")
        raise
    proc = subprocess.run([sys.executable, "-m", "polyclinic", name, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and len(proc.stdout) > 200


def test_closed_stdout_pipe_is_not_a_traceback():
    """`polyclinic pretrain RECIPE --print-config | head -0`: the reader has gone before anything is written."""
    import os

    r, w = os.pipe()
    os.close(r)  # every write to w now fails with EPIPE
    proc = subprocess.run([sys.executable, "-m", "polyclinic", "pretrain", "recipes/pretrain/demo.yaml", "--print-config"],
                          stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(w)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr
