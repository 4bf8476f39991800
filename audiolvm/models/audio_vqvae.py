"""The 1-D audio VQ-VAE: strided conv encoder with dilated residual stacks, VQ, mirrored decoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from audiolvm.bottleneck.base import Bottleneck
from audiolvm.core.errors import UsageError
from audiolvm.models.autoencoder import Autoencoder
from audiolvm.nn.conv1d import ConvDecoder1d, ConvEncoder1d


def audio_autoencoder(
    bottleneck: Bottleneck,
    latent_dim: int,
    width: int = 64,
    strides: Sequence[int] = (2, 2, 2, 2, 2, 2),
    depth: int = 4,
    dilation_growth: int = 3,
    channels: int = 1,
    checkpoint_stages: int = 0,
    speaker_dim: int = 0,
    speaker_mode: str = "film",
    source_dim: int = 0,
    decoder: nn.Module | None = None,
    encoder: nn.Module | None = None,
) -> Autoencoder:
    """Waveform ``Tensor[B x channels x T]`` -> codes at ``T / prod(strides)`` -> waveform.

    ``latent_dim`` is the bottleneck's input width (the codebook dimension for VQ).
    ``checkpoint_stages``: how many of the highest-rate residual stacks (in both encoder and decoder) to
    recompute in backward instead of storing, trading compute for activation memory.
    ``speaker_dim > 0`` makes the decoder take a global speaker vector in every stage (``speaker_mode``
    ``film`` or ``concat``, see :class:`ConvDecoder1d`). ``source_dim > 0`` makes it the filter of a
    neural source-filter decoder, taking an excitation at the output rate (:class:`HarmonicSource`).
    ``decoder`` replaces the mirrored conv decoder (e.g. a :class:`HarmonicNoiseDecoder` with the same hop);
    ``encoder`` replaces the waveform encoder (e.g. a :class:`MelEncoder1d`; it must give ``T / hop`` frames).
    """
    if not strides or any(s < 1 for s in strides):
        raise UsageError(f"strides must be a non-empty list of positive ints, got {list(strides)}")
    if encoder is None:
        encoder = ConvEncoder1d(channels, latent_dim, width, strides, depth, dilation_growth, checkpoint_stages)
    if decoder is None:
        decoder = ConvDecoder1d(latent_dim, channels, width, strides, depth, dilation_growth, checkpoint_stages,
                                cond_dim=speaker_dim, cond_mode=speaker_mode, source_dim=source_dim)
    elif decoder.hop != math.prod(strides):
        raise UsageError(f"the decoder's hop ({decoder.hop}) differs from the encoder's ({math.prod(strides)})")
    return Autoencoder(encoder, bottleneck, decoder, hop=math.prod(strides))
