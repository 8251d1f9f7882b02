"""Phase 1: contrastive training of concept names against their descriptions with in-batch negatives.

Loss: ``MultipleNegativesRankingLoss`` (InfoNCE, cosine * scale). Batches come from
``BatchSamplers.NO_DUPLICATES`` so a text never appears twice in a batch (a duplicate would be a false
negative). With more than one process ``gather_across_devices=True`` ranks every anchor against the
positives of all ranks (world_size x batch negatives). ``cached: true`` switches to
``CachedMultipleNegativesRankingLoss`` (GradCache): the same loss and gradients for batches far larger
than memory allows, computed in ``mini_batch_size`` chunks; it is refused under DeepSpeed, which it is
reported not to support. An optional ``negative`` column adds one hard negative per anchor.
"""

from __future__ import annotations

from polyclinic.encoders.config import ContrastiveLossSettings
from polyclinic.errors import UserError
from polyclinic.logging_utils import get_logger

log = get_logger("encoders.contrastive")


def world_size() -> int:
    import os

    for var in ("WORLD_SIZE", "ACCELERATE_NUM_PROCESSES"):
        if os.environ.get(var):
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    except Exception:  # noqa: BLE001
        pass
    return 1


def under_deepspeed(deepspeed_config: str | None = None) -> bool:
    import os

    return bool(deepspeed_config) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true", "yes")


def resolve_gather(setting, n_processes: int | None = None) -> bool:
    n = world_size() if n_processes is None else n_processes
    return n > 1 if setting == "auto" else bool(setting)


def build_contrastive_loss(model, settings: ContrastiveLossSettings, deepspeed_config: str | None = None, n_processes: int | None = None):
    """The phase-1 loss module for ``model`` according to ``settings``."""
    from sentence_transformers.sentence_transformer import losses

    gather = resolve_gather(settings.gather_across_devices, n_processes)
    directions = ("query_to_doc", "doc_to_query") if settings.symmetric else ("query_to_doc",)
    partition = "per_direction" if settings.symmetric else "joint"
    if settings.cached:
        if under_deepspeed(deepspeed_config):
            raise UserError(
                "loss.cached=true (CachedMultipleNegativesRankingLoss / GradCache) is reported not to work with DeepSpeed; "
                "use a DDP or FSDP accelerate config, or set loss.cached=false"
            )
        log.info("loss: CachedMultipleNegativesRankingLoss (GradCache, mini_batch_size=%d, gather=%s)", settings.mini_batch_size, gather)
        return losses.CachedMultipleNegativesRankingLoss(
            model,
            scale=settings.scale,
            mini_batch_size=settings.mini_batch_size,
            gather_across_devices=gather,
            directions=directions,
            partition_mode=partition,
        )
    log.info("loss: MultipleNegativesRankingLoss (scale=%s, gather_across_devices=%s)", settings.scale, gather)
    return losses.MultipleNegativesRankingLoss(
        model, scale=settings.scale, gather_across_devices=gather, directions=directions, partition_mode=partition
    )
