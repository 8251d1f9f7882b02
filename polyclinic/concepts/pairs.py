"""Training pairs for BioLORD-style contrastive encoders, split by concept.

Pair kinds (column ``kind``):
  ``definition``   name -> definition (same row)
  ``synonym``      name -> synonym, and name -> another system's different name in the same language
  ``description``  name -> templated graph description in the same language (:mod:`.verbalize`)
  ``cross_lang``   name (non-English) -> name (English, or the other language) for the same concept id

Hard negatives (column ``negative``, "" when none) are graph siblings (concepts sharing a parent) from the
same split, using the sibling's text of the same kind when it has one, else its name in the positive's
language. ``negative_concept_id`` says which sibling it came from.

Train/dev are split BY CONCEPT (:func:`split_concepts`): every row of a concept id (all languages and
systems) lands on one side, and with ``group_by="category"`` a whole ICD 3-character category
(``J20``, ``J20.0``, ``J20.01``...) moves together. Training descriptions never mention dev concepts.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any, Iterable, Literal, NamedTuple, Sequence

import datasets
from pydantic import Field

from polyclinic.concepts.table import ConceptIndex, ConceptTable, column, icd_category, is_icd_code
from polyclinic.concepts.verbalize import verbalize_concept
from polyclinic.config import StrictModel
from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("concepts.pairs")

PAIR_KINDS = ("definition", "synonym", "description", "cross_lang")
PAIR_FEATURES = datasets.Features(
    {k: datasets.Value("string") for k in ("anchor", "positive", "negative", "negative_concept_id", "concept_id", "kind", "lang")}
)


class PairConfig(StrictModel):
    kinds: list[Literal["definition", "synonym", "description", "cross_lang"]] = Field(default_factory=lambda: list(PAIR_KINDS))
    langs: list[str] | None = None  # keep only rows in these languages (None: all)
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    group_by: Literal["concept", "category"] = "category"
    split_prefixes: list[str] | None = None  # only concept ids with these prefixes may go to dev (None: any)
    hard_negatives: bool = True
    description_children: bool = False  # add "Examples of X: a, b and c." to descriptions
    max_children: int = 3


class ConceptSplit(NamedTuple):
    train: set[str]
    dev: set[str]


def split_group(concept_id: str, group_by: str) -> str:
    if group_by == "category":
        return icd_category(concept_id) or concept_id
    return concept_id


def _splittable(cid: str, prefixes: Sequence[str] | None) -> bool:
    if cid.startswith("ICD10:") and not is_icd_code(cid):
        return False  # chapters and blocks are structure, always train
    return not prefixes or cid.startswith(tuple(prefixes))


def split_concepts(
    table: ConceptTable,
    dev_fraction: float = 0.1,
    seed: int = 0,
    group_by: Literal["concept", "category"] = "category",
    id_prefixes: Sequence[str] | None = None,
) -> ConceptSplit:
    """Split concept ids into (train, dev) sets; no concept id is in both.

    Groups (``group_by="category"``: ICD 3-character categories; every other id is its own group) are
    shuffled with ``seed`` and the first ``round(n_groups * dev_fraction)`` go to dev. Only ids that
    start with ``id_prefixes`` (e.g. ``["ICD10:"]``) can be held out; ICD chapters/blocks always train.
    The result depends only on the set of groups and the seed, not on the table order."""
    if not 0.0 <= dev_fraction < 1.0:
        raise UserError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    ids = list(dict.fromkeys(column(table, "concept_id")))
    groups: dict[str, list[str]] = collections.defaultdict(list)
    train: set[str] = set()
    for cid in ids:
        if _splittable(cid, id_prefixes):
            groups[split_group(cid, group_by)].append(cid)
        else:
            train.add(cid)
    keys = sorted(groups)
    # order by a seeded hash: stable under table reordering and independent of Python's hash seed
    keys.sort(key=lambda g: hashlib.sha256(f"{seed}\0{g}".encode()).hexdigest())
    n_dev = int(round(len(keys) * dev_fraction))
    dev: set[str] = set()
    for i, g in enumerate(keys):
        (dev if i < n_dev else train).update(groups[g])
    return ConceptSplit(train, dev)


@dataclasses.dataclass
class PairStats:
    train_pairs: int = 0
    dev_pairs: int = 0
    train_concepts: int = 0
    dev_concepts: int = 0
    by_kind: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # split -> kind -> n
    by_lang: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # split -> lang -> n
    with_negative: dict[str, int] = dataclasses.field(default_factory=dict)
    concepts_without_pairs: int = 0
    leaked_concepts: int = 0  # concept ids present in both splits (always 0; checked)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PairsResult:
    train: datasets.Dataset
    dev: datasets.Dataset
    stats: PairStats
    split: ConceptSplit


class _Builder:
    def __init__(self, index: ConceptIndex, cfg: PairConfig, split: ConceptSplit):
        self.index, self.cfg, self.split = index, cfg, split
        self.rng = random.Random(cfg.seed)
        self._desc: dict[tuple[str, str, str], str] = {}
        self._sibs: dict[str, list[str]] = {}

    def side(self, cid: str) -> str:
        return "dev" if cid in self.split.dev else "train"

    def visible_for(self, side: str):
        if side == "dev":
            return None
        dev = self.split.dev
        return lambda cid: cid not in dev

    def description(self, cid: str, lang: str, side: str) -> str:
        key = (cid, lang, side)
        if key not in self._desc:
            self._desc[key] = verbalize_concept(
                self.index, cid, lang, visible=self.visible_for(side),
                with_children=self.cfg.description_children, max_children=self.cfg.max_children,
            )
        return self._desc[key]

    def siblings(self, cid: str) -> list[str]:
        if cid not in self._sibs:
            side = self.side(cid)
            self._sibs[cid] = [s for s in self.index.siblings(cid) if self.side(s) == side]
        return self._sibs[cid]

    def negative_text(self, sib: str, kind: str, lang: str, side: str) -> str:
        rows = self.index.rows_of(sib, lang)
        if not rows:
            return ""
        if kind == "definition":
            for r in rows:
                if r.definition:
                    return r.definition
        if kind == "description":
            d = self.description(sib, lang, side)
            if d:
                return d
        return rows[0].name

    def negative(self, cid: str, kind: str, lang: str, avoid: Iterable[str]) -> tuple[str, str]:
        if not self.cfg.hard_negatives:
            return "", ""
        sibs = self.siblings(cid)
        if not sibs:
            return "", ""
        avoid_cf = {a.casefold() for a in avoid}
        side = self.side(cid)
        start = self.rng.randrange(len(sibs))
        for j in range(min(len(sibs), 20)):
            s = sibs[(start + j) % len(sibs)]
            text = self.negative_text(s, kind, lang, side)
            if text and text.casefold() not in avoid_cf:
                return text, s
        return "", ""


def _pair_lang_order(a: str, b: str) -> tuple[str, str]:
    """(anchor_lang, positive_lang): English is the positive side; otherwise alphabetical."""
    if a == "en":
        return b, a
    if b == "en":
        return a, b
    return (a, b) if a <= b else (b, a)


def build_pairs(table: ConceptTable, config: PairConfig | None = None, split: ConceptSplit | None = None) -> PairsResult:
    """Build train/dev pair datasets from a concept table (see the module docstring)."""
    cfg = config or PairConfig()
    if cfg.langs:
        langs = set(cfg.langs)
        table = table.filter(lambda l: l in langs, input_columns="lang")
    if split is None:
        split = split_concepts(table, cfg.dev_fraction, cfg.seed, cfg.group_by, cfg.split_prefixes)
    if split.train & split.dev:
        raise UserError(f"{len(split.train & split.dev)} concept ids are in both train and dev")
    index = ConceptIndex(table)
    b = _Builder(index, cfg, split)
    kinds = set(cfg.kinds)
    out: dict[str, dict[str, list[str]]] = {s: {k: [] for k in PAIR_FEATURES} for s in ("train", "dev")}
    stats = PairStats()
    seen: set[tuple[str, str, str]] = set()

    def emit(cid: str, kind: str, lang: str, anchor: str, positive: str, neg_lang: str) -> bool:
        if not anchor or not positive or anchor.casefold() == positive.casefold():
            return False
        key = (cid, *sorted((anchor.casefold(), positive.casefold())))
        if key in seen:
            return False
        seen.add(key)
        side = b.side(cid)
        neg, neg_cid = b.negative(cid, kind, neg_lang, (anchor, positive))
        col = out[side]
        for k, v in (("anchor", anchor), ("positive", positive), ("negative", neg), ("negative_concept_id", neg_cid),
                     ("concept_id", cid), ("kind", kind), ("lang", lang)):
            col[k].append(v)
        return True

    for cid in index.ids:
        if cid not in split.train and cid not in split.dev:
            continue  # concept outside the given split: ignored
        side = b.side(cid)
        rows = index.rows_of(cid)
        made = 0
        for r in rows:
            if "definition" in kinds and r.definition:
                made += emit(cid, "definition", r.lang, r.name, r.definition, r.lang)
        for r in rows:
            if "synonym" in kinds:
                for syn in r.synonyms:
                    made += emit(cid, "synonym", r.lang, r.name, syn, r.lang)
                for other in rows:
                    if other is not r and other.lang == r.lang:
                        made += emit(cid, "synonym", r.lang, r.name, other.name, r.lang)
        if "description" in kinds:
            for lang in index.langs(cid):
                name = index.name(cid, lang)
                made += emit(cid, "description", lang, name, b.description(cid, lang, side), lang)
        if "cross_lang" in kinds:
            for i, r in enumerate(rows):
                for other in rows[i + 1:]:
                    if other.lang == r.lang:
                        continue
                    la, lb = _pair_lang_order(r.lang, other.lang)
                    ra, rb = (r, other) if r.lang == la else (other, r)
                    made += emit(cid, "cross_lang", f"{la}-{lb}", ra.name, rb.name, lb)
        if not made:
            stats.concepts_without_pairs += 1

    train = datasets.Dataset.from_dict(out["train"], features=PAIR_FEATURES)
    dev = datasets.Dataset.from_dict(out["dev"], features=PAIR_FEATURES)
    train_c, dev_c = set(out["train"]["concept_id"]), set(out["dev"]["concept_id"])
    stats.train_pairs, stats.dev_pairs = len(train), len(dev)
    stats.train_concepts, stats.dev_concepts = len(train_c), len(dev_c)
    stats.leaked_concepts = len(train_c & dev_c)
    for name in ("train", "dev"):
        cols = out[name]
        stats.by_kind[name] = dict(sorted(collections.Counter(cols["kind"]).items()))
        stats.by_lang[name] = dict(sorted(collections.Counter(cols["lang"]).items()))
        stats.with_negative[name] = sum(1 for n in cols["negative"] if n)
    assert stats.leaked_concepts == 0, "concept leaked across splits"
    log.info("pairs: %d train / %d dev (%d / %d concepts)", stats.train_pairs, stats.dev_pairs,
             stats.train_concepts, stats.dev_concepts)
    return PairsResult(train, dev, stats, split)


def training_dataset(pairs: datasets.Dataset, negatives: Literal["keep", "drop", "require"] = "drop") -> datasets.Dataset:
    """Only the text columns a sentence-transformers loss consumes (the trainer feeds EVERY column).

    ``drop``: (anchor, positive); ``require``: rows that have a negative, as (anchor, positive, negative);
    ``keep``: all rows with (anchor, positive, negative) - only for losses that tolerate "" negatives."""
    if negatives == "drop":
        return pairs.select_columns(["anchor", "positive"])
    if negatives == "require":
        pairs = pairs.filter(lambda n: bool(n), input_columns="negative")
    return pairs.select_columns(["anchor", "positive", "negative"])


def save_pairs(result: PairsResult, folder: str | Path, extra: dict | None = None) -> Path:
    """``train.parquet``, ``dev.parquet``, ``stats.json``, ``split.json`` (dev concept ids) in ``folder``."""
    from polyclinic.io import atomic_directory, write_json

    folder = Path(folder)
    with atomic_directory(folder) as tmp:
        result.train.to_parquet(str(tmp / "train.parquet"))
        result.dev.to_parquet(str(tmp / "dev.parquet"))
        write_json(tmp / "stats.json", {**result.stats.to_dict(), **(extra or {})})
        write_json(tmp / "split.json", {"dev": sorted(result.split.dev), "train_count": len(result.split.train)})
    return folder


def load_pairs(folder: str | Path, split: str = "train") -> datasets.Dataset:
    path = Path(folder) / f"{split}.parquet"
    if not path.is_file():
        raise UserError(f"no {split} pairs at {path} (build them with `polyclinic concepts pairs`)")
    return datasets.Dataset.from_parquet(str(path))


def load_split(folder: str | Path) -> set[str]:
    """The dev (held-out) concept ids saved next to the pairs."""
    return set(json.loads((Path(folder) / "split.json").read_text(encoding="utf-8"))["dev"])
