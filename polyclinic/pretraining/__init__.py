"""polyclinic.pretraining: span-corruption (continued) pretraining of mT5 with accelerate.

Public API: :func:`load_pretrain_config`, :class:`PretrainConfig`, :func:`train` (lazy imports, so importing the
package stays cheap).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PretrainConfig", "load_pretrain_config", "train"]


def __getattr__(name: str) -> Any:
    if name in ("PretrainConfig", "load_pretrain_config"):
        from polyclinic.pretraining import config

        return getattr(config, name)
    if name == "train":
        from polyclinic.pretraining.trainer import train

        return train
    raise AttributeError(name)
