"""``polyclinic tokenizer``: train a T5-layout SentencePiece tokenizer, or load one and check its layout."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Iterator

from polyclinic.errors import UserError

DESCRIPTION = """\
Tokenizers for T5 span corruption. T5's layout is pad=0, eos=1, unk=2 and 100 sentinels
<extra_id_0..99> at the top of the vocabulary (<extra_id_0> = len(tokenizer) - 1, counting down).

  train   train a SentencePiece unigram model on a corpus folder (or a text file) and save a
          tokenizer folder (spiece.model, tokenizer.json, tokenizer_config.json) with that layout
  check   load a tokenizer (folder or Hub id) and print its layout; exits 2 if it has no sentinels
"""

TRAIN_EPILOG = """\
The corpus folder is the layout written by `polyclinic corpus build`: <lang>/train-*.parquet with a
`text` column. Languages are read one after the other (at most --max-docs documents each) and streamed
into SentencePiece, which samples up to --input-sentence-size lines.

examples:
  polyclinic tokenizer train --corpus runs/corpus --langs es,en --vocab-size 8000 --output runs/tok
  polyclinic tokenizer train --text-file notes.txt --vocab-size 2000 --output runs/tok
"""

CHECK_EPILOG = """\
examples:
  polyclinic tokenizer check runs/tok
  polyclinic tokenizer check google/mt5-small --text "Bronquitis aguda"
"""

SAMPLE_DOCS = 200


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", metavar="{train,check}")
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train a T5-layout SentencePiece tokenizer on a corpus folder or a text file",
        description="Train a SentencePiece unigram tokenizer with T5's layout (pad=0, eos=1, unk=2, 100 sentinels).",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = train.add_argument_group("input (at least one)")
    src.add_argument("--corpus", type=Path, help="corpus folder with <lang>/train-*.parquet files (column `text`)")
    src.add_argument("--text-file", type=Path, action="append", default=[], help="a UTF-8 file with one text per line (repeatable)")
    train.add_argument("--langs", help="comma-separated languages of the corpus to use (default: every <lang> folder)")
    train.add_argument("--max-docs", type=int, default=None, metavar="N", help="at most N documents per language / text file")
    train.add_argument("--vocab-size", type=int, default=8000, help="SentencePiece pieces, without the 100 sentinels (default 8000)")
    train.add_argument("--num-sentinels", type=int, default=100, help="sentinels <extra_id_N> to add (default 100, as T5)")
    train.add_argument("--character-coverage", type=float, default=1.0, help="SentencePiece character coverage (default 1.0: lossless accents and symbols)")
    train.add_argument("--input-sentence-size", type=int, default=2_000_000, help="lines SentencePiece samples for training (default 2,000,000)")
    train.add_argument("--output", type=Path, required=True, help="tokenizer folder to write (replaced atomically)")

    check = sub.add_parser(
        "check",
        help="load a tokenizer and print its layout (exit 2 if the T5 sentinels are missing)",
        description="Load a tokenizer folder or Hub id, verify T5's sentinel layout id by id, print the layout.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("name_or_path", help="tokenizer folder or Hub id")
    check.add_argument("--num-sentinels", type=int, default=100, help="sentinels expected at the top of the vocabulary (default 100)")
    check.add_argument("--text", action="append", default=[], help="also tokenise this text and show the pieces (repeatable)")
    return parser


# -------------------------------------------------------------------------------------------------------
# inputs


def corpus_train_files(corpus: Path, langs: list[str] | None) -> dict[str, list[str]]:
    """``{lang: [train parquet files]}`` of a corpus folder, checked."""
    if not corpus.is_dir():
        raise UserError(f"corpus folder not found: {corpus}")
    available = {p.name: sorted(str(f) for f in p.glob("train-*.parquet")) for p in sorted(corpus.iterdir()) if p.is_dir()}
    available = {k: v for k, v in available.items() if v}
    if not available:
        raise UserError(f"{corpus} has no <lang>/train-*.parquet files (build one with `polyclinic corpus build`)")
    chosen = available if not langs else None
    if chosen is None:
        missing = [lang for lang in langs if lang not in available]
        if missing:
            raise UserError(
                f"{corpus} has no train files for {', '.join(missing)}; available languages: {', '.join(available)}"
            )
        chosen = {lang: available[lang] for lang in langs}
    import pyarrow.parquet as pq

    for lang, files in chosen.items():
        for f in files:
            if "text" not in pq.read_schema(f).names:
                raise UserError(f"{f} has no `text` column (columns: {', '.join(pq.read_schema(f).names)})")
    return chosen


def iter_corpus_texts(files: list[str], max_docs: int | None) -> Iterator[str]:
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
    texts = (row["text"] for row in ds)
    yield from itertools.islice(texts, max_docs)


def iter_text_file(path: Path, max_docs: int | None) -> Iterator[str]:
    if not path.is_file():
        raise UserError(f"text file not found: {path}")
    from polyclinic.textfiles import iter_lines  # BOM, UTF-16/32, .gz/.zst; bad bytes: UserError with file:line

    lines = (line.rstrip("\r\n") for _, line in iter_lines(path, strict=True))
    yield from itertools.islice((line for line in lines if line.strip()), max_docs)


class _Sampler:
    """Pass texts through while keeping the first few of each source for the summary."""

    def __init__(self, per_source: int = SAMPLE_DOCS):
        self.per_source = per_source
        self.samples: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}

    def wrap(self, name: str, texts: Iterator[str]) -> Iterator[str]:
        keep = self.samples.setdefault(name, [])
        self.counts.setdefault(name, 0)
        for text in texts:
            self.counts[name] += 1
            if len(keep) < self.per_source:
                keep.append(text)
            yield text


# -------------------------------------------------------------------------------------------------------
# reports


def describe(tok, num_sentinels: int = 100) -> list[str]:
    from polyclinic.tokenization import sentinel_ids

    ids = sentinel_ids(tok, num_sentinels)
    first, last = ids[0], ids[-1]
    return [
        f"class:      {type(tok).__name__}",
        f"vocabulary: {len(tok)} ids",
        f"special:    pad={tok.pad_token_id} eos={tok.eos_token_id} unk={tok.unk_token_id}",
        f"sentinels:  {len(ids)}: <extra_id_0>={first} ... <extra_id_{len(ids) - 1}>={last}",
        f"max length: {tok.model_max_length if tok.model_max_length < 10**12 else 'not set'}",
    ]


def sample_stats(tok, texts: list[str]) -> dict[str, float]:
    """Tokens per whitespace word, unknown-token rate and lossless round trips on a sample."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return {"docs": 0, "tokens_per_word": 0.0, "unk_rate": 0.0, "roundtrip": 0.0}
    enc = tok(texts, add_special_tokens=False, verbose=False)["input_ids"]
    tokens = sum(len(e) for e in enc)
    words = sum(len(t.split()) for t in texts)
    unk = sum(1 for e in enc for i in e if i == tok.unk_token_id)
    same = sum(1 for t, e in zip(texts, enc) if tok.decode(e, skip_special_tokens=True) == " ".join(t.split()))
    return {
        "docs": len(texts),
        "tokens_per_word": tokens / max(words, 1),
        "unk_rate": unk / max(tokens, 1),
        "roundtrip": same / len(texts),
    }


# -------------------------------------------------------------------------------------------------------
# actions


def run_train(args: argparse.Namespace) -> int:
    from polyclinic.tokenization import sentinel_ids, train_tokenizer

    if args.corpus is None and not args.text_file:
        raise UserError("give --corpus DIR and/or --text-file FILE")
    if args.max_docs is not None and args.max_docs < 1:
        raise UserError(f"--max-docs must be >= 1, got {args.max_docs}")
    if args.vocab_size < 10:
        raise UserError(f"--vocab-size must be >= 10, got {args.vocab_size}")
    _check_sentinel_count(args.num_sentinels)
    if not 0 < args.character_coverage <= 1:
        raise UserError(f"--character-coverage must be in (0, 1], got {args.character_coverage}")
    if args.input_sentence_size < 1:
        raise UserError(f"--input-sentence-size must be >= 1, got {args.input_sentence_size}")
    langs = [x.strip() for x in args.langs.split(",") if x.strip()] if args.langs else None
    if langs and args.corpus is None:
        raise UserError("--langs selects languages of --corpus; no --corpus given")

    sources: list[tuple[str, Iterator[str]]] = []
    if args.corpus is not None:
        for lang, files in corpus_train_files(args.corpus, langs).items():
            sources.append((lang, iter_corpus_texts(files, args.max_docs)))
    for path in args.text_file:
        if not path.is_file():
            raise UserError(f"text file not found: {path}")
        sources.append((path.name, iter_text_file(path, args.max_docs)))

    sampler = _Sampler()
    texts = itertools.chain.from_iterable(sampler.wrap(name, it) for name, it in sources)
    tok = train_tokenizer(
        texts,
        args.output,
        vocab_size=args.vocab_size,
        num_sentinels=args.num_sentinels,
        character_coverage=args.character_coverage,
        input_sentence_size=args.input_sentence_size,
    )
    print(f"tokenizer written to {args.output}")
    print(f"documents: " + ", ".join(f"{name}={n}" for name, n in sampler.counts.items()))
    for line in describe(tok, args.num_sentinels):
        print(line)
    ids = sentinel_ids(tok, args.num_sentinels)
    print(f"sentinel ids: {ids[:3]} ... {ids[-1]}")
    print(f"per source (first {SAMPLE_DOCS} documents): tokens/word, unk rate, lossless round trips")
    for name, sample in sampler.samples.items():
        s = sample_stats(tok, sample)
        print(f"  {name:<12} tokens/word={s['tokens_per_word']:.2f}  unk={s['unk_rate']:.2%}  roundtrip={s['roundtrip']:.0%}  ({s['docs']} docs)")
    return 0


def _check_sentinel_count(n: int) -> None:
    if not 1 <= n <= 1000:
        raise UserError(f"--num-sentinels must be between 1 and 1000 (span corruption needs sentinels; T5 uses 100), got {n}")


def run_check(args: argparse.Namespace) -> int:
    from polyclinic.tokenization import load_tokenizer

    _check_sentinel_count(args.num_sentinels)

    tok = load_tokenizer(args.name_or_path, num_sentinels=args.num_sentinels, check=True)
    print(f"{args.name_or_path}: T5 layout OK")
    for line in describe(tok, args.num_sentinels):
        print(line)
    for text in args.text:
        ids = tok(text, add_special_tokens=False).input_ids
        print(f"text: {text!r}\n  ids:    {ids}\n  pieces: {tok.convert_ids_to_tokens(ids)}")
    return 0


def main(argv: list[str], prog: str = "polyclinic tokenizer") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.action == "train":
        return run_train(args)
    return run_check(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
