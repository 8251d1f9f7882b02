"""The ``polyclinic`` command. Each subcommand lives in ``polyclinic/commands/<name>.py`` and is
imported only when used, so ``polyclinic --help`` is instant and one stage's heavy imports never
slow down another. A command module exposes ``main(argv: list[str], prog: str) -> int``.
"""

from __future__ import annotations

import importlib
import sys

from polyclinic import __version__

# name -> (module, one-line help). Order is the order of a release.
COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("polyclinic.commands.corpus", "build / inspect a multilingual medical corpus (HF dataset, one config per language)"),
    "tokenizer": ("polyclinic.commands.tokenizer", "load-and-check or train a T5-layout SentencePiece tokenizer with 100 sentinels"),
    "pretrain": ("polyclinic.commands.pretrain", "span-corruption continued pretraining of mT5 (same as training/pretrain_span_corruption.py)"),
    "concepts": ("polyclinic.commands.concepts", "load terminologies/ontologies into one concept table and build training pairs"),
    "encoder": ("polyclinic.commands.encoder", "train BioLORD-style encoders: contrastive, self-distillation, averaging, multilingual distillation"),
    "eval": ("polyclinic.commands.eval", "offline evaluation: span-corruption loss, retrieval, STS, relatedness, embedding diagnostics"),
    "benchmark": ("polyclinic.commands.benchmark", "build benchmark datasets (e.g. multilingual ICD-10 coding search, BEIR layout)"),
    "teacher": ("polyclinic.commands.teacher", "label a corpus with an LLM (or offline zero-shot) teacher; judge it on a verified subset"),
    "classifier": ("polyclinic.commands.classifier", "train a distilled text classifier on teacher labels; report, card, verify"),
    "card": ("polyclinic.commands.card", "render model / dataset cards from measured results"),
    "push": ("polyclinic.commands.push", "gated, idempotent, resumable push of a release described in YAML"),
    "verify": ("polyclinic.commands.verify", "download into a fresh cache and load/evaluate as a downstream user would"),
    "hub": ("polyclinic.commands.hub", "local Hub-compatible server (loopback, files on disk)"),
    "demo": ("polyclinic.commands.demo", "run the whole release flow end to end on packaged data and tiny models"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"polyclinic {__version__} - multilingual medical corpus -> mT5 / encoders -> Hugging Face Hub",
        "",
        "usage: polyclinic <command> [options]     (polyclinic <command> --help for details)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Configs are YAML; any key can be overridden as key.sub=value on the command line."]
    return "\n".join(lines)


# errno values that mean "the machine or the user's folders", not a bug: a one-line message, exit 2.
_USER_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "EFBIG", "ENOTDIR", "EISDIR", "ENAMETOOLONG",
                "EEXIST", "ENOTEMPTY", "EMFILE", "ENFILE"}


def _environment_error(exc: OSError) -> str | None:
    """A one-line message for an OSError the user can fix (read-only or full folder, a path that is a
    file, a Hub endpoint that does not answer), or None for anything else (a bug: keep the traceback)."""
    import errno

    code = errno.errorcode.get(exc.errno or -1, "")
    if code in _USER_ERRNOS:
        where = exc.filename if exc.filename is not None else "?"
        hint = {"ENOSPC": " (disk full: free space or choose another output folder)",
                "EDQUOT": " (disk quota exceeded)", "EROFS": " (read-only file system: choose another output folder)",
                "EACCES": " (no permission: choose a folder you can write)", "EPERM": " (not permitted)"}.get(code, "")
        return f"cannot write or read {where}: {exc.strerror or code}{hint}"
    # requests / httpx / urllib3 connection errors are OSError subclasses in the libraries huggingface_hub uses
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.split(".")[0] in ("requests", "urllib3")}
    if names & {"ConnectionError", "ConnectError", "ConnectTimeout", "ReadTimeout", "NewConnectionError",
                "MaxRetryError", "ProxyError", "SSLError"}:
        text = " ".join(str(exc).split())
        return f"network error talking to the Hub ({type(exc).__name__}): {text[:300]}; check endpoint= / HF_ENDPOINT"
    return None


def main(argv: list[str] | None = None) -> int:
    from polyclinic.errors import UserError
    from polyclinic.logging_utils import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"polyclinic {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"polyclinic: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    setup_logging()
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest, prog=f"polyclinic {name}") or 0)
    except UserError as exc:
        print(f"polyclinic {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polyclinic {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `polyclinic … --print-config | head`: the reader closed the pipe. Point stdout at /dev/null so
        # the interpreter's final flush does not raise again, and exit like other Unix tools.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        message = _environment_error(exc)
        if message is None:
            raise
        print(f"polyclinic {name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
