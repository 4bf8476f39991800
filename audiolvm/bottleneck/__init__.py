"""Bottlenecks: every one maps encoder features to a :class:`BottleneckResult`."""

from audiolvm.bottleneck.base import Bottleneck, BottleneckResult, IdentityBottleneck
from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.bottleneck.vq import VectorQuantizerEMA

__all__ = ["Bottleneck", "BottleneckResult", "IdentityBottleneck", "VectorQuantizerEMA", "GaussianBottleneck"]
