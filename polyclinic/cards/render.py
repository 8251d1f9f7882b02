"""Render a card template with measured values.

Templates live at the repository root (``model_cards/``, ``dataset_cards/``) so that users can edit them
without touching code; ``StrictUndefined`` makes a missing value an error rather than an empty field.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from polyclinic.errors import UserError

# Repository root when installed editable / run from a checkout; override with POLYCLINIC_TEMPLATES.
TEMPLATE_ROOT = Path(os.environ.get("POLYCLINIC_TEMPLATES", Path(__file__).resolve().parents[2]))


def _environment(root: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    import json

    import yaml

    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters["toyaml"] = lambda v: yaml.safe_dump(v, sort_keys=False, allow_unicode=True).rstrip()
    return env


def render_template(template: str, root: str | Path | None = None, **context) -> str:
    """Render ``template`` (e.g. ``"dataset_cards/corpus.md.j2"``) relative to ``root``."""
    root = Path(root) if root else TEMPLATE_ROOT
    try:
        return _environment(root).get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise UserError(f"card template not found: {root / template}") from None
    except jinja2.UndefinedError as exc:
        raise UserError(f"card template {template} needs a value that was not measured/provided: {exc}") from None
