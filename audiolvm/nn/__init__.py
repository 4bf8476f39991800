"""Reusable layers: conv/residual stacks, resampling convs (later: masked convs, attention, FiLM)."""

from audiolvm.nn.conv1d import (
    ConvDecoder1d,
    ConvEncoder1d,
    Downsample1d,
    ResidualDilatedBlock,
    ResidualStack,
    Upsample1d,
)

__all__ = [
    "ConvDecoder1d",
    "ConvEncoder1d",
    "Downsample1d",
    "ResidualDilatedBlock",
    "ResidualStack",
    "Upsample1d",
]
