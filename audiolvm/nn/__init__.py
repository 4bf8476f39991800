"""Reusable layers: 1-D and 2-D conv/residual stacks, resampling convs, MLPs, masked convs, attention,
class conditioning."""

from audiolvm.nn.conditioning import concat_condition, one_hot
from audiolvm.nn.conv1d import (
    ConvDecoder1d,
    ConvEncoder1d,
    Downsample1d,
    ResidualDilatedBlock,
    ResidualStack,
    Upsample1d,
)
from audiolvm.nn.conv2d import ConvDecoder2d, ConvEncoder2d, Downsample2d, ResidualBlock2d, Upsample2d
from audiolvm.nn.mlp import MLPDecoder, MLPEncoder, mlp

__all__ = [
    "ConvDecoder1d",
    "ConvDecoder2d",
    "ConvEncoder1d",
    "ConvEncoder2d",
    "Downsample1d",
    "Downsample2d",
    "MLPDecoder",
    "MLPEncoder",
    "ResidualBlock2d",
    "ResidualDilatedBlock",
    "ResidualStack",
    "Upsample1d",
    "Upsample2d",
    "concat_condition",
    "mlp",
    "one_hot",
]
