"""Shared command-line helpers for the ``polyclinic`` subcommands.

Why: argparse binds a ``nargs="*"`` positional (our ``key=value`` overrides) only where it first meets
positionals, so ``polyclinic push release.yaml --only REPO version=v0.2.0`` used to fail with
"unrecognized arguments". :func:`parse_with_overrides` accepts overrides anywhere after the recipe, for
every command (also inside subcommands, where ``parse_intermixed_args`` cannot be used), and still refuses
unknown options. :func:`check_endpoint` (from
:mod:`polyclinic.endpoints`) makes an unreachable Hub endpoint a fast one-line error.
"""

from __future__ import annotations

import argparse

from polyclinic.endpoints import check_endpoint  # noqa: F401 (the commands import it from here with the parser helper)


def is_override(arg: str) -> bool:
    """``key.sub=value`` (not an option, key made of identifier-like dotted parts)."""
    if arg.startswith("-") or "=" not in arg:
        return False
    key = arg.split("=", 1)[0]
    return bool(key) and all(part and all(c.isalnum() or c in "_-" for c in part) for part in key.split("."))


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str], dest: str = "overrides") -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that ``key=value`` words anywhere (also after flags) are
    appended to ``args.<dest>``; any other unknown argument is an error as usual."""
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if is_override(a)]
    unknown = [a for a in extra if not is_override(a)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if overrides:
        if not hasattr(args, dest):
            parser.error(f"unrecognized arguments: {' '.join(overrides)} (this command takes no key=value overrides)")
        setattr(args, dest, [*(getattr(args, dest) or []), *overrides])
    return args
