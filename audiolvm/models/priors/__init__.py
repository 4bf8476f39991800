"""Autoregressive priors over discrete codes (all implement :class:`Prior`)."""

from audiolvm.models.priors.base import Cond, Prior
from audiolvm.models.priors.pixelcnn import GatedPixelCNN1d, GatedPixelCNN2d
from audiolvm.models.priors.sampling import filter_logits, sample_logits
from audiolvm.models.priors.transformer import CausalTransformerPrior
from audiolvm.models.priors.upsampler import UpsamplerPrior

__all__ = [
    "CausalTransformerPrior",
    "Cond",
    "GatedPixelCNN1d",
    "GatedPixelCNN2d",
    "Prior",
    "UpsamplerPrior",
    "filter_logits",
    "sample_logits",
]
