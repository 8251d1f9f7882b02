"""Dataset card (README.md) and LICENSE.md for a corpus folder, rendered from ``dataset_cards/corpus.md.j2``."""

from __future__ import annotations

from typing import Any

from polyclinic.data.config import CorpusConfig

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "it": "Italian", "de": "German", "pt": "Portuguese",
                  "nl": "Dutch", "ca": "Catalan", "eu": "Basque", "gl": "Galician", "pl": "Polish", "ro": "Romanian"}

_SIZE_BOUNDS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                (10_000_000_000, "1B<n<10B")]


def size_category(n: int) -> str:
    for bound, label in _SIZE_BOUNDS:
        if n < bound:
            return label
    return "10B<n<100B"


def card_license(cfg: CorpusConfig, sources: list[dict[str, Any]]) -> dict[str, str]:
    """Hub licence metadata: the common licence id, or ``other`` + ``license_name``/``license_link`` when mixed."""
    if cfg.card.license:
        return {"license": cfg.card.license}
    ids = {s["license_id"] for s in sources}
    if len(ids) == 1 and next(iter(ids)) not in ("other",):
        return {"license": next(iter(ids))}
    names = {s["license"] for s in sources}
    if len(names) == 1:
        src = sources[0]
        return {"license": "other", "license_name": _slug(src["license"]), "license_link": src["license_url"] or "LICENSE.md"}
    return {"license": "other", "license_name": "mixed-per-source", "license_link": "LICENSE.md"}


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^a-z0-9.]+", "-", s.lower()).strip("-") or "other"


def _fmt(n: int | float | None) -> str:
    if n is None:
        return "-"
    return f"{n:,}"


def render_card(cfg: CorpusConfig, stats: dict[str, Any]) -> str:
    from polyclinic.cards.render import render_template
    from polyclinic.data.corpus import source_provenance

    sources = source_provenance(cfg)
    langs = stats["languages_with_data"]
    lic = card_license(cfg, sources)
    configs = [
        {"config_name": lang, "data_files": [{"split": s, "path": f"{lang}/{s}-*"} for s in stats["shards"][lang]]}
        for lang in langs
    ]
    if configs:
        configs[0]["default"] = True
    header = {
        "pretty_name": cfg.card.pretty_name or f"{cfg.name} (multilingual medical corpus)",
        "language": langs or list(cfg.languages),
        **lic,
        "multilinguality": "multilingual" if len(langs) > 1 else "monolingual",
        "task_categories": ["fill-mask", "text-generation"],
        "size_categories": [size_category(stats["kept"])],
        "source_datasets": [s["url"] or s["name"] for s in sources],
        "tags": list(cfg.card.tags),
        "configs": configs,
    }
    has_tokens = "tokens" in stats["totals"]
    lang_rows = []
    for lang in langs:
        d = stats["languages"][lang]
        lang_rows.append({
            "lang": lang, "name": LANGUAGE_NAMES.get(lang, lang),
            "train": _fmt(d["splits"].get("train", {}).get("documents", 0)),
            "validation": _fmt(d["splits"].get("validation", {}).get("documents", 0)),
            "documents": _fmt(d["documents"]), "words": _fmt(d["words"]), "characters": _fmt(d["characters"]),
            "tokens": _fmt(d.get("tokens")), "rejected": _fmt(sum(d["rejected"].values())),
        })
    source_rows = []
    for s in sources:
        st = stats["sources"].get(s["name"], {"read": 0, "documents": 0, "words": 0, "characters": 0, "rejected": {}})
        source_rows.append({
            **s, "read": _fmt(st["read"]), "documents": _fmt(st["documents"]), "words": _fmt(st["words"]),
            "characters": _fmt(st["characters"]), "tokens": _fmt(st.get("tokens")),
            "rejected": ", ".join(f"{k} {v:,}" for k, v in st["rejected"].items()) or "none",
        })
    from polyclinic import __version__
    from polyclinic.config import config_hash

    return render_template(
        "dataset_cards/corpus.md.j2",
        header=header, cfg=cfg, stats=stats, langs=langs, lang_rows=lang_rows, source_rows=source_rows,
        has_tokens=has_tokens, rejected=[(k, _fmt(v)) for k, v in stats["rejected"].items()],
        langid=stats["language_verification"], needs_licence_check=[s for s in sources if not s["redistribution_checked"]],
        totals={k: _fmt(v) for k, v in stats["totals"].items()}, version=__version__, config_hash=config_hash(cfg),
        language_names=LANGUAGE_NAMES,
    )


def render_license(cfg: CorpusConfig) -> str:
    from polyclinic.data.corpus import source_provenance

    lines = [f"# Licences of the {cfg.name} corpus", "",
             "This corpus mixes sources under different terms; each document's `source` column says which applies.", ""]
    for s in source_provenance(cfg):
        lines += [f"## {s['name']} — {s['title']}", "", f"- Licence: {s['license']}" + (f" ({s['license_url']})" if s["license_url"] else ""),
                  f"- Source: {s['url'] or '-'}", f"- Citation: {s['citation'] or '-'}"]
        if s["notes"]:
            lines.append(f"- Notes: {s['notes']}")
        lines.append("")
    return "\n".join(lines)
