"""Typed configs: pydantic models loaded from YAML, overridable from the command line, saved with every run.

Why pydantic: unknown keys (typos) and wrong types become one readable error that names the file
and the dotted key, instead of a KeyError deep inside training.

YAML features:
  - ``_base_: other.yaml`` (path relative to the file) deep-merges another recipe underneath, so
    ``mt5-large.yaml`` states only what differs from ``mt5-base.yaml``.
  - command-line overrides ``key.sub=value``; the value is parsed as YAML (``lr=1e-3``,
    ``langs=[es,fr]``, ``resume=true``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from polyclinic.errors import UserError

T = TypeVar("T", bound="StrictModel")


class ConfigError(UserError, ValueError):
    """A config could not be loaded or validated; the message is meant for the user."""


class StrictModel(BaseModel):
    """Base for every polyclinic config: unknown keys are errors, assignments are validated.

    A nested section given in YAML is merged onto the section's own default, so a field whose default
    sets some values (``train: TrainSettings(learning_rate=1e-5)``) keeps them when a recipe writes only
    ``train: {epochs: 3}``, instead of falling back to the plain class defaults.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _merge_section_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = None
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if not isinstance(data.get(key), dict):
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                preset = default.model_dump(mode="python", exclude_unset=True)
                if preset:
                    out = dict(data) if out is None else out
                    out[key] = deep_merge(preset, data[key])
        return data if out is None else out


def deep_merge(base: dict, update: dict) -> dict:
    """Recursively merge ``update`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = (), _referrer: Path | None = None) -> dict:
    """Read a YAML mapping, resolving ``_base_`` inheritance (cycles are reported).

    Every problem is a :class:`ConfigError` naming the file: missing (and, for a base, the file whose
    ``_base_`` names it), unreadable, not UTF-8, not YAML, not a mapping, or a ``_base_`` that is not a
    file name or a list of file names.
    """
    path = Path(path)
    if not path.is_file():
        if _referrer is not None:
            raise ConfigError(f"{_referrer}: _base_ file not found: {path}")
        raise ConfigError(f"config file not found: {path}")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError(f"_base_ cycle: {chain}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{path}: keys must be strings, got {bad_keys[0]!r} ({type(bad_keys[0]).__name__})")
    base = data.pop("_base_", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else base
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) and b.strip() for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names (relative to {path.parent}), "
                          f"got {base!r}")
    merged: dict = {}
    for b in bases:
        merged = deep_merge(merged, read_yaml(path.parent / b, (*_seen, resolved), _referrer=path))
    return deep_merge(merged, data)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.sub=value")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a copy of ``data``.

    Dotted parts walk mappings; an integer part indexes into a list (``sources.0.max_docs=5``), so one
    element of a list can be changed without restating the list.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        parts, value = _parse_override(item)
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.lstrip("-").isdigit():
                    raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth]) or '<root>'} is a list; use an index")
                idx = int(part)
                if not -len(node) <= idx < len(node):
                    raise ConfigError(f"override {item!r}: index {idx} out of range (list has {len(node)} items)")
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth])} is a value, not a mapping or list")
    return out


def parse_overrides(overrides: Iterable[str]) -> dict:
    """Turn ``["a.b=1", "c=[x,y]"]`` into a nested dict with YAML-typed values."""
    return apply_overrides({}, overrides)


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo? see the config class for valid keys)"
        given = err.get("input")
        shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r})"
        lines.append(f"  - {loc}: {msg}{shown}")
    return "\n".join(lines)


def build_config(cls: type[T], data: dict, source: str = "<dict>") -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Load ``cls`` from a YAML file (optional) plus ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    overrides = list(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
    source = str(path) if path else "defaults"
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return build_config(cls, data, source)


def config_to_dict(cfg: BaseModel) -> dict:
    return json.loads(cfg.model_dump_json())


def config_to_yaml(cfg: BaseModel) -> str:
    """The fully-resolved config as YAML (what ``--print-config`` shows and ``save_config`` writes)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)


def save_config(cfg: BaseModel, path: str | Path) -> Path:
    """Write the fully-resolved config as YAML (what actually ran, defaults included)."""
    from polyclinic.io import atomic_write_text

    return atomic_write_text(path, config_to_yaml(cfg))


def config_hash(cfg: BaseModel) -> str:
    """Stable short hash of a config's content (for manifests and skip-if-unchanged)."""
    blob = json.dumps(config_to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
