"""Compositions: autoencoders (single- and multi-level audio VQ-VAEs), objectives; later priors and the
VAE family."""

from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.multilevel import MultiLevelAutoencoder, MultiLevelOutput
from audiolvm.models.objectives import AUDIO_TERMS, AudioReconstructionObjective

__all__ = [
    "AUDIO_TERMS",
    "Autoencoder",
    "AutoencoderOutput",
    "AudioReconstructionObjective",
    "MultiLevelAutoencoder",
    "MultiLevelOutput",
]
