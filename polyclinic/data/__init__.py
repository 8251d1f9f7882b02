"""polyclinic.data: multilingual medical corpus building.

- :mod:`polyclinic.data.config`    ``CorpusConfig`` / ``SourceConfig`` (YAML recipes under ``recipes/corpus/``)
- :mod:`polyclinic.data.sources`   readers: JSONL, plain text, Parquet, Hub datasets (streaming), packaged sources
- :mod:`polyclinic.data.packaged`  real text from packaged terminologies (ICD-10-CM, WHO ICD-10, CIE-10, HPO),
                                   with each source's licence, citation and URL (``PACKAGED_SOURCES``)
- :mod:`polyclinic.data.cleaning`  NFC, invisible characters, whitespace, length filters
- :mod:`polyclinic.data.dedup`     exact (8-byte digests) and near (MinHash LSH) duplicates
- :mod:`polyclinic.data.langid`    py3langid restricted to the corpus languages
- :mod:`polyclinic.data.split`     stable train/validation split from a hash of the id
- :mod:`polyclinic.data.writer`    streaming Parquet shards per (language, split)
- :mod:`polyclinic.data.stats`     statistics and rejection counts
- :mod:`polyclinic.data.card`      dataset card (``dataset_cards/corpus.md.j2``) and LICENSE.md
- :mod:`polyclinic.data.corpus`    ``build_corpus(cfg) -> report`` and ``load_corpus(folder, langs, split, streaming)``

Heavy imports happen inside functions, so ``import polyclinic.data`` is cheap.
"""
