"""Graph descriptions in several languages: "Kissing spine is a kind of spondylopathy."

BioLORD pairs a concept name with a description built from the ontology graph. We template it per
language (no machine translation): an is-a sentence from the parents' names in the same language, an
optional "examples" sentence from the children, and typed relations. Names of parents/children that do
not exist in that language are skipped; with nothing left, the description is "" (no pair is made).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from polyclinic.concepts.table import ConceptIndex

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {"is_a": "{name} is a kind of {targets}.", "examples": "Examples of {name}: {targets}.", "and": "and",
           "rel": "{name}: {type} {targets}."},
    "es": {"is_a": "{name} es un tipo de {targets}.", "examples": "Ejemplos de {name}: {targets}.", "and": "y",
           "rel": "{name}: {type} {targets}."},
    "fr": {"is_a": "{name} est un type de {targets}.", "examples": "Exemples de {name} : {targets}.", "and": "et",
           "rel": "{name} : {type} {targets}."},
    "it": {"is_a": "{name} è un tipo di {targets}.", "examples": "Esempi di {name}: {targets}.", "and": "e",
           "rel": "{name}: {type} {targets}."},
    "pt": {"is_a": "{name} é um tipo de {targets}.", "examples": "Exemplos de {name}: {targets}.", "and": "e",
           "rel": "{name}: {type} {targets}."},
    "ca": {"is_a": "{name} és un tipus de {targets}.", "examples": "Exemples de {name}: {targets}.", "and": "i",
           "rel": "{name}: {type} {targets}."},
    # Polish: "X to rodzaj: Y" sidesteps the genitive that "jest rodzajem Y" would need.
    "pl": {"is_a": "{name} to rodzaj: {targets}.", "examples": "{name} – przykłady: {targets}.", "and": "i",
           "rel": "{name}: {type} {targets}."},
    "de": {"is_a": "{name} ist eine Art von {targets}.", "examples": "Beispiele für {name}: {targets}.", "and": "und",
           "rel": "{name}: {type} {targets}."},
}

# A few common relation types, per language; unknown types are shown with underscores as spaces.
RELATION_LABELS: dict[str, dict[str, str]] = {
    "en": {"part_of": "part of", "has_part": "has part", "located_in": "located in", "has_finding_site": "finding site"},
    "es": {"part_of": "parte de", "has_part": "tiene como parte", "located_in": "localizado en", "has_finding_site": "localización"},
    "fr": {"part_of": "partie de", "has_part": "a pour partie", "located_in": "situé dans", "has_finding_site": "site"},
    "it": {"part_of": "parte di", "has_part": "ha come parte", "located_in": "situato in", "has_finding_site": "sede"},
    "pt": {"part_of": "parte de", "has_part": "tem como parte", "located_in": "localizado em", "has_finding_site": "localização"},
    "ca": {"part_of": "part de", "has_part": "té com a part", "located_in": "localitzat a", "has_finding_site": "localització"},
    "pl": {"part_of": "część", "has_part": "zawiera", "located_in": "umiejscowienie", "has_finding_site": "umiejscowienie"},
    "de": {"part_of": "Teil von", "has_part": "hat Teil", "located_in": "gelegen in", "has_finding_site": "Lokalisation"},
}

SUPPORTED_LANGS = tuple(TEMPLATES)
ELIDE_DE = ("fr", "ca")


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word looks like an acronym or a proper code (``HIV``)."""
    if not text:
        return text
    first = text.split()[0]
    if len(first) > 1 and (any(ch.isupper() for ch in first[1:]) or any(ch.isdigit() for ch in first)):
        return text
    return text[0].lower() + text[1:]


def join_list(items: list[str], conj: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def describe(
    name: str,
    lang: str,
    parents: Iterable[str] = (),
    children: Iterable[str] = (),
    relations: Iterable[tuple[str, str]] = (),
    max_children: int = 3,
) -> str:
    """Template a description from names already in ``lang``. Returns "" when there is nothing to say
    or the language has no templates."""
    tpl = TEMPLATES.get(lang)
    if tpl is None:
        return ""
    parents = [p for p in dict.fromkeys(parents) if p and p != name]
    children = [c for c in dict.fromkeys(children) if c and c != name][:max_children]
    lf = (lambda x: x) if lang == "de" else lower_first  # German nouns keep their capital
    parts = []
    if parents:
        sentence = tpl["is_a"].format(name=name, targets=join_list([lf(p) for p in parents], tpl["and"]))
        if lang in ELIDE_DE:  # "un type de affection" -> "un type d'affection"
            sentence = re.sub(r"\b(type|tipus) de ([aeiouàâéèêëîïôöûüæœáíóú])", r"\1 d'\2", sentence, count=1, flags=re.I)
        parts.append(sentence)
    if children:
        parts.append(tpl["examples"].format(name=lf(name), targets=join_list([lf(c) for c in children], tpl["and"])))
    labels = RELATION_LABELS.get(lang, {})
    grouped: dict[str, list[str]] = {}
    for rtype, target in relations:
        if target:
            grouped.setdefault(rtype, []).append(lf(target))
    for rtype, targets in grouped.items():
        parts.append(tpl["rel"].format(name=name, type=labels.get(rtype, rtype.replace("_", " ")),
                                       targets=join_list(targets, tpl["and"])))
    return " ".join(parts)


def verbalize_concept(
    index: ConceptIndex,
    concept_id: str,
    lang: str,
    name: str | None = None,
    visible: Callable[[str], bool] | None = None,
    with_children: bool = False,
    max_children: int = 3,
) -> str:
    """Description of ``concept_id`` in ``lang`` from its graph neighbours' names in that language.

    ``visible(cid)`` filters neighbours (the pair builder hides held-out concepts from training text)."""
    name = name or index.name(concept_id, lang)
    if not name:
        return ""
    ok = visible or (lambda _cid: True)
    parents = [index.name(p, lang) for p in index.parents.get(concept_id, []) if ok(p)]
    children = [index.name(c, lang) for c in index.children.get(concept_id, []) if ok(c)] if with_children else []
    relations = []
    for row in index.rows_of(concept_id, lang):
        for r in row.relations:
            if ok(r["target"]):
                relations.append((r["type"], index.name(r["target"], lang) or ""))
    return describe(name, lang, [p for p in parents if p], [c for c in children if c], relations, max_children)
