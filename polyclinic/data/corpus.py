"""Build a multilingual corpus folder (one Hub dataset config per language) and read it back.

``build_corpus(cfg)`` streams every source through:

    read -> clean (NFC, control chars, whitespace) -> length filters -> unsupported language
         -> exact dedup (8-byte digests) -> language verification (py3langid) -> near dedup (MinHash LSH)
         -> stable split (hash of the id) -> Parquet shards per (language, split)

Bad records (corrupt JSON, undecodable bytes, lone surrogates, empty texts or files, unknown language codes,
...) are counted by reason with ``file:line`` examples; user mistakes found before the build (missing files,
bad config) raise :class:`UserError` before anything is written. The output folder is written through
:func:`polyclinic.io.atomic_directory`, so an interrupted build never looks complete.

A build that keeps no document for a requested language (``allow_empty_languages: true`` relaxes this to a
warning), or none at all, is an error that says why (the rejection counts of the sources that could have
provided it, and the first problems), and leaves no corpus folder: an empty "complete" corpus is what a
UTF-16 or mis-compressed input used to produce silently, and ``load_dataset`` cannot even open it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from polyclinic.data.cleaning import clean_text, length_reason
from polyclinic.data.config import CorpusConfig, normalize_lang
from polyclinic.data.dedup import DigestSet, NearDuplicateIndex, text_digest
from polyclinic.data.langid import LanguageVerifier
from polyclinic.data.sources import BadRecord, ResolvedSource, document_id, iter_source, validate_sources
from polyclinic.data.split import split_of
from polyclinic.data.stats import CorpusStats, TokenCounter
from polyclinic.data.writer import ShardedWriter
from polyclinic.errors import UserError
from polyclinic.io import COMPLETE_MARKER, atomic_directory, is_complete, read_json, write_json
from polyclinic.logging_utils import get_logger
from polyclinic.textfiles import has_surrogates

log = get_logger("data.corpus")

CARD_TEMPLATE = "dataset_cards/corpus.md.j2"


def _check_output(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"output_dir {out} exists and is not a folder")
    if not overwrite:
        raise UserError(f"output_dir {out} already exists; set overwrite=true or choose another output_dir")
    if any(out.iterdir()) and not (is_complete(out) and (out / "stats.json").is_file()):
        raise UserError(
            f"output_dir {out} exists and is not a polyclinic corpus (no COMPLETE marker / stats.json); "
            f"refusing to replace it. Remove it or choose another output_dir."
        )


def _clean_own_leftovers(out: Path) -> None:
    """Remove ``<out>.tmp-<pid>`` / ``.old-<pid>`` left by killed builds of this same corpus (dead pids only)."""
    if not out.parent.is_dir():
        return
    pat = re.compile(re.escape(out.name) + r"\.(tmp|old)-(\d+)$")
    for child in out.parent.iterdir():
        m = pat.match(child.name)
        if not m or int(m.group(2)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(2)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        log.info("removing leftover of an interrupted build: %s", child)
        shutil.rmtree(child, ignore_errors=True)


def build_corpus(cfg: CorpusConfig) -> dict[str, Any]:
    """Build the corpus described by ``cfg``; returns a report (``stats`` plus paths and timings)."""
    from tqdm.auto import tqdm

    out = Path(cfg.resolved_output_dir)
    # ---- validate everything before any work
    _check_output(out, cfg.overwrite)
    resolved = validate_sources(cfg.sources)
    tokens = TokenCounter(cfg.tokenizer)
    verifier = LanguageVerifier(cfg.languages, cfg.langid)
    _clean_own_leftovers(out)

    stats = CorpusStats(cfg.max_rejected_examples, tokens)
    exact = DigestSet() if cfg.dedup.exact else None
    ids = DigestSet()
    near = NearDuplicateIndex(cfg.dedup.near) if cfg.dedup.near.enabled else None
    languages = set(cfg.languages)
    splits = ["train", "validation"] if cfg.split.validation_fraction > 0 else ["train"]
    lid = stats.langid
    on_mismatch = cfg.langid.on_language_mismatch
    input_bytes = sum(r.input_bytes for r in resolved)
    chars_in = 0
    t0 = time.perf_counter()

    log.info("building corpus %r (%s) from %d source(s) into %s", cfg.name, ",".join(cfg.languages), len(resolved), out)
    tmp_dir: Path | None = None
    try:
        with atomic_directory(out, overwrite=cfg.overwrite) as tmp:
            tmp_dir = tmp
            writer = ShardedWriter(tmp, cfg.output)
            bar = tqdm(unit="doc", desc=f"corpus {cfg.name}", disable=True if not cfg.progress else None, smoothing=0.1)
            try:
                for rs in resolved:
                    bar.set_description(f"corpus {cfg.name} [{rs.label}]")
                    for item in iter_source(rs):
                        bar.update(1)
                        stats.on_read(item.source)
                        if isinstance(item, BadRecord):
                            lang = _lang_key(item.lang) if item.lang else None
                            stats.on_reject(item.source, item.where, item.reason, lang, item.detail)
                            continue
                        raw_text = item.text
                        lang = _lang_key(item.lang)
                        if has_surrogates(raw_text) or (item.raw_id is not None and has_surrogates(str(item.raw_id))):
                            stats.on_reject(item.source, item.where, "invalid_unicode", lang or None,
                                            "lone surrogate code points (e.g. a \\ud800 escape) in the text or id")
                            continue
                        chars_in += len(raw_text)
                        if not lang:
                            stats.on_reject(item.source, item.where, "missing_language", None, "no language given", raw_text)
                            continue
                        if lang not in languages:
                            stats.on_reject(
                                item.source, item.where, "unsupported_language", lang,
                                f"language {item.lang!r} is not one of {cfg.languages}", raw_text,
                            )
                            continue
                        text = clean_text(raw_text, cfg.cleaning)
                        folded = text.casefold().split()
                        words = len(folded)
                        reason = length_reason(text, words, cfg.cleaning)
                        if reason:
                            stats.on_reject(item.source, item.where, reason, lang, f"{len(text)} chars, {words} words", text)
                            continue
                        doc_id = document_id(item.source, item.raw_id, raw_text)
                        if not ids.add(text_digest(doc_id)):
                            stats.on_reject(item.source, item.where, "duplicate_id", lang, doc_id, text)
                            continue
                        if exact is not None and not exact.add(text_digest(text, folded)):
                            stats.on_reject(item.source, item.where, "exact_duplicate", lang, "", text)
                            continue
                        if verifier.active:
                            dec = verifier.check(text, lang)
                            if not dec.checked:
                                lid["skipped_short"] += 1
                            else:
                                lid["checked"] += 1
                                if dec.detected == lang:
                                    lid["agreed"] += 1
                                elif dec.confidence < cfg.langid.min_confidence:
                                    lid["uncertain_mismatch"] += 1
                                else:
                                    lid["mismatch"] += 1
                                    detail = f"declared {lang}, detected {dec.detected} (p={dec.confidence:.2f})"
                                    if on_mismatch == "drop":
                                        lid["dropped"] += 1
                                        stats.on_reject(item.source, item.where, "language_mismatch", lang, detail, text)
                                        continue
                                    if on_mismatch == "retag":
                                        lid["retagged"][f"{lang}->{dec.detected}"] += 1
                                        lang = str(dec.detected)
                                    else:
                                        lid["kept_mismatch"] += 1
                        if near is not None and near.is_duplicate_then_add(text, folded):
                            stats.on_reject(item.source, item.where, "near_duplicate", lang, "", text)
                            continue
                        split = split_of(doc_id, cfg.split.validation_fraction, cfg.split.seed)
                        writer.add(doc_id, text, lang, item.source, split)
                        stats.on_keep(item.source, lang, split, text, words)
                        if stats.read % 2000 == 0:
                            bar.set_postfix(kept=stats.kept, rejected=sum(stats.rejected.values()), refresh=False)
            finally:
                bar.close()

            kept = {lang: sum(d["documents"] for d in stats.by_lang.get(lang, {}).values()) for lang in cfg.languages}
            empty = [lang for lang, n in kept.items() if n == 0]
            if empty and (not cfg.allow_empty_languages or len(empty) == len(cfg.languages)):
                raise UserError(nothing_kept_message(cfg, empty, stats, resolved, out))
            shards = writer.finalize(cfg.languages)
            seconds = time.perf_counter() - t0
            data = stats.to_dict(cfg.languages, cfg.tokenizer)
            empty = [lang for lang in cfg.languages if lang not in shards]
            for lang in empty:
                log.warning("language %r has no documents after filtering: no dataset config is written for it", lang)
            for lang, by_split in shards.items():
                for split in splits:
                    if split not in by_split:
                        log.warning("language %r has no %s documents (too few documents for validation_fraction=%s): "
                                    "its dataset config has no %r split", lang, split, cfg.split.validation_fraction, split)
            data.update(
                name=cfg.name,
                languages_with_data=sorted(shards),
                shards=shards,
                near_dedup_index_resets=near.resets if near is not None else 0,
                dedup_memory_bytes={"exact_digests": exact.nbytes if exact else 0, "id_digests": ids.nbytes,
                                    "near_dup_bands": near.nbytes if near is not None else 0},
                seconds=round(seconds, 3),
            )
            _write_outputs(tmp, cfg, resolved, data, input_bytes, chars_in, seconds)

    except UserError:
        if tmp_dir is not None:  # a refused build leaves nothing behind (not even <out>.tmp-<pid>)
            shutil.rmtree(tmp_dir, ignore_errors=True)
        raise

    _log_summary(cfg, data, out)
    return {"output_dir": str(out), "stats": data, "seconds": seconds, "input_bytes": input_bytes}


def _lang_key(value: Any) -> str:
    """The normalised language of a record, safe as a stats key: no surrogates, at most 32 characters."""
    lang = normalize_lang(value)
    if has_surrogates(lang):
        lang = lang.encode("utf-8", "backslashreplace").decode("utf-8")
    return lang if len(lang) <= 32 else lang[:32] + "…"


_REASONS = {
    "corrupt_json": "lines that are not a JSON object",
    "invalid_utf8": "lines with bytes that are not valid UTF-8",
    "invalid_encoding": "lines with bytes not valid in the file's encoding",
    "invalid_unicode": "records with lone surrogates (\\udXXX)",
    "empty_file": "empty files",
    "unreadable_file": "corrupt or truncated compressed files",
    "missing_text": "records without a string text field",
    "missing_language": "records without a language",
    "unsupported_language": "records in a language not listed in `languages`",
    "empty": "texts empty after cleaning",
    "too_short_chars": "texts shorter than cleaning.min_chars",
    "too_short_words": "texts with fewer than cleaning.min_words words",
    "too_long_chars": "texts longer than cleaning.max_chars",
    "duplicate_id": "repeated ids",
    "exact_duplicate": "exact duplicates",
    "near_duplicate": "near duplicates",
    "language_mismatch": "texts whose detected language differs (langid.on_language_mismatch=drop)",
}


def _source_lang(rs: ResolvedSource) -> str | None:
    if rs.cfg.lang:
        return normalize_lang(rs.cfg.lang)
    if rs.cfg.type == "packaged":
        from polyclinic.data.packaged import packaged_info

        return packaged_info(str(rs.cfg.id)).lang
    return None  # per-record language field


def nothing_kept_message(cfg: CorpusConfig, empty: list[str], stats: CorpusStats, resolved: list[ResolvedSource],
                         out: Path) -> str:
    """Why the requested languages ``empty`` kept no document: per language, the sources that could have
    provided it with what they read and rejected, and the first problems (``file:line``)."""
    parts = []
    for lang in empty:
        cands = [rs for rs in resolved if _source_lang(rs) in (None, lang)]
        if not cands:
            parts.append(f"{lang}: 0 documents kept: no source provides it (every source has a fixed language of "
                         f"another code; add a source with lang: {lang} or drop {lang!r} from `languages`)")
            continue
        descr = []
        for rs in cands:
            s = stats.by_source.get(rs.label, {"read": 0, "rejected": {}, "languages": {}})
            where = f"{len(rs.files)} file{'s' if len(rs.files) != 1 else ''}" if rs.files else rs.cfg.type
            rej = Counter(s["rejected"])
            rej_txt = "; ".join(f"{n} {_REASONS.get(r, r)} ({r})" for r, n in rej.most_common()) or "nothing rejected"
            other = {k: v for k, v in s["languages"].items() if k != lang}
            kept_other = f"; kept {sum(other.values())} in {', '.join(sorted(other))}" if other else ""
            descr.append(f"source {rs.label!r} ({where}): {s['read']} record(s) read; {rej_txt}{kept_other}")
        by_lang = stats.rejected_by_lang.get(lang)
        tagged = (f"; rejected records tagged {lang}: " + ", ".join(f"{r} {n}" for r, n in by_lang.most_common())) \
            if by_lang else ""
        parts.append(f"{lang}: 0 documents kept from " + " | ".join(descr) + tagged)
    labels = {rs.label for rs in resolved if _source_lang(rs) in {None, *empty}}
    first = [e for e in stats.examples if e.get("source") in labels][:5]
    if first:
        parts.append("first problems: " + "; ".join(
            f"{e['where']} {e['reason']}" + (f" ({e['detail'][:100]})" if e.get("detail") else "") for e in first))
    total = sum(d["documents"] for splits in stats.by_lang.values() for d in splits.values())
    hint = ("nothing was kept at all" if total == 0 else
            "set allow_empty_languages=true to build the other languages anyway")
    return (f"corpus {cfg.name!r}: no documents kept for {', '.join(empty)}; nothing was written to {out} ({hint}). "
            + " ".join(p.rstrip(".") + "." for p in parts))


def _write_outputs(tmp: Path, cfg: CorpusConfig, resolved, data: dict, input_bytes: int, chars_in: int, seconds: float) -> None:
    from polyclinic.config import save_config
    from polyclinic.manifest import write_manifest, write_metrics

    write_json(tmp / "stats.json", data)
    save_config(cfg, tmp / "config.yaml")
    inputs: dict[str, str] = {}
    for rs in resolved:
        inputs.update(rs.fingerprint_paths)
    write_manifest(tmp, "corpus", cfg, inputs, sources=source_provenance(cfg))
    write_metrics(
        tmp,
        {
            "documents_read": data["read"],
            "documents_kept": data["kept"],
            "documents_rejected": data["rejected_total"],
            "words": data["totals"]["words"],
            "characters": data["totals"]["characters"],
            **({"tokens": data["totals"]["tokens"]} if "tokens" in data["totals"] else {}),
            "input_bytes": input_bytes,
            "input_characters": chars_in,
            "seconds": round(seconds, 3),
            "docs_per_second": round(data["read"] / seconds, 1) if seconds > 0 else None,
            "input_mb_per_second": round(input_bytes / 1e6 / seconds, 3) if seconds > 0 and input_bytes else None,
            "input_text_mchars_per_second": round(chars_in / 1e6 / seconds, 3) if seconds > 0 else None,
        },
        merge=False,
    )
    from polyclinic.data.card import render_card, render_license

    (tmp / "README.md").write_text(render_card(cfg, data), encoding="utf-8")
    (tmp / "LICENSE.md").write_text(render_license(cfg), encoding="utf-8")


def source_provenance(cfg: CorpusConfig) -> list[dict[str, Any]]:
    """Licence, citation and URL of every source (packaged ones from :data:`PACKAGED_SOURCES`)."""
    from polyclinic.data.packaged import PACKAGED_SOURCES, version

    out = []
    for s in cfg.sources:
        if s.type == "packaged":
            info = PACKAGED_SOURCES[str(s.id)]
            out.append({
                "name": s.label, "type": s.type, "lang": info.lang, "title": info.title,
                "description": s.description or info.description,
                "license": s.license or info.license_name, "license_id": info.license, "license_url": info.license_url,
                "citation": info.citation, "url": info.url, "notes": info.notes, "version": version(info.id),
                "redistribution_checked": info.redistribution_checked, "max_docs": s.max_docs,
            })
        else:
            where = s.id if s.type == "hub" else s.path
            out.append({
                "name": s.label, "type": s.type, "lang": s.lang or f"field `{s.lang_field}`",
                "title": s.name or str(where), "description": s.description or f"{s.type} input {where}",
                "license": s.license or "unknown", "license_id": s.license or "unknown", "license_url": s.license_url or "",
                "citation": s.citation or "", "url": s.url or (f"https://huggingface.co/datasets/{s.id}" if s.type == "hub" else ""),
                "notes": "", "version": s.revision or "", "redistribution_checked": bool(s.license), "max_docs": s.max_docs,
            })
    return out


def _log_summary(cfg: CorpusConfig, data: dict, out: Path) -> None:
    log.info("corpus %r written to %s in %.1fs: %d read, %d kept, %d rejected",
             cfg.name, out, data["seconds"], data["read"], data["kept"], data["rejected_total"])
    for lang, d in data["languages"].items():
        rej = sum(d["rejected"].values())
        per_split = ", ".join(f"{s} {v['documents']}" for s, v in d["splits"].items())
        log.info("  %s: kept %d (%s), %d words; rejected %d %s", lang, d["documents"], per_split or "-", d["words"], rej,
                 dict(d["rejected"]) if rej else "")
    if data["rejected_other_languages"]:
        log.info("  rejected with unsupported/unknown language: %s", data["rejected_other_languages"])
    if data["rejected"]:
        log.info("  rejected by reason: %s", data["rejected"])


# ----------------------------------------------------------------------------- reading back


def load_corpus(folder: str | os.PathLike, langs: list[str] | str | None = None, split: str = "train",
                streaming: bool = False, cache_dir: str | None = None):
    """Load one split of a corpus (all languages, or ``langs``) as a ``datasets`` (Iterable)Dataset.

    ``folder`` is a corpus folder written by :func:`build_corpus`, or a Hub dataset id with the same layout.
    Languages are concatenated in the given order (columns ``id, text, lang, source``).
    """
    import datasets

    if isinstance(langs, str):
        langs = [langs]
    path = Path(folder)
    if path.is_dir():
        if not is_complete(path) or not (path / "stats.json").is_file():
            raise UserError(f"{path} is not a complete corpus folder (no {COMPLETE_MARKER} marker or stats.json); "
                            f"build it with `polyclinic corpus build`")
        stats = read_json(path / "stats.json")
        shards: dict[str, dict[str, list[str]]] = stats.get("shards", {})
        available = list(shards)
        langs = list(langs) if langs else available
        missing = [x for x in langs if x not in shards]
        if missing:
            raise UserError(f"{path} has no language(s) {missing}; it has {available}")
        files = []
        for lang in langs:
            if split not in shards[lang]:
                raise UserError(f"{path} has no {split!r} split for {lang!r}; splits: {sorted(shards[lang])}")
            files += [str(path / p) for p in shards[lang][split]]
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming,
                                     cache_dir=cache_dir)
    # Hub id: one config per language
    if not langs:
        langs = datasets.get_dataset_config_names(str(folder))
    parts = [datasets.load_dataset(str(folder), lang, split=split, streaming=streaming, cache_dir=cache_dir) for lang in langs]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
