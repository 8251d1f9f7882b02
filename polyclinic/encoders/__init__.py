"""BioLORD-2023-style encoders: one training loop for the contrastive family; recipes are configs.

  config.py        EncoderConfig (phases: contrastive, self_distill, average, distill), load_encoder_config
  model.py         load_sentence_transformer (folder / Hub id / packaged MiniLM), build_tiny_model
  contrastive.py   phase 1 loss: MultipleNegativesRankingLoss / CachedMultipleNegativesRankingLoss (GradCache)
  self_distill.py  phase 2 loss: MNRL + lambda * MSE(student vs frozen-teacher in-batch cosine matrices)
  averaging.py     phase 3: exact weight averaging of checkpoints / seeds / models
  multilingual.py  phase 4: English teacher -> multilingual student (MSE [+ ranking]), parallel data
  evaluation.py    retrieval before/after: held-out pairs, cross-lingual ICD-10 coding search
  trainer.py       train_model (the shared runner) and run_encoder_recipe (the recipe driver)

Heavy imports (torch, sentence-transformers) happen inside the modules that need them.
"""

__all__ = ["load_encoder_config", "run_encoder_recipe"]


def load_encoder_config(path=None, overrides=()):
    from polyclinic.encoders.config import load_encoder_config as _load

    return _load(path, overrides)


def run_encoder_recipe(cfg, phases=None, force=False):
    from polyclinic.encoders.trainer import run_encoder_recipe as _run

    return _run(cfg, phases=phases, force=force)
