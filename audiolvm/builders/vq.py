"""The vector quantizer of both families, from the one :class:`~audiolvm.config.VQConfig`."""

from __future__ import annotations

from audiolvm.bottleneck import VectorQuantizerEMA
from audiolvm.config import VQConfig, per_level


def build_vq(vq: VQConfig, level: int = 0, num_levels: int = 1, key: str = "model.vq",
             where: str = "") -> VectorQuantizerEMA:
    """The EMA quantizer of ``level`` (of ``num_levels``): ``num_codes`` and ``beta`` hold one value per level
    or one for all; ``key`` and ``where`` (what sets the number of levels) name them in errors."""
    return VectorQuantizerEMA(
        num_codes=per_level(vq.num_codes, num_levels, f"{key}.num_codes", where)[level], dim=vq.dim,
        beta=per_level(vq.beta, num_levels, f"{key}.beta", where)[level], decay=vq.decay,
        dead_threshold=vq.dead_threshold, init=vq.init,
    )
