"""Compositions: autoencoders (single- and multi-level audio VQ-VAEs), objectives; later priors and the
VAE family."""

from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.multilevel import MultiLevelAutoencoder, MultiLevelOutput
from audiolvm.models.objectives import AudioReconstructionObjective

__all__ = [
    "Autoencoder",
    "AutoencoderOutput",
    "AudioReconstructionObjective",
    "MultiLevelAutoencoder",
    "MultiLevelOutput",
]
