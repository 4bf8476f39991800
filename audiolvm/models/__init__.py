"""Compositions: autoencoders (audio VQ-VAE), objectives; later hierarchies, priors and the VAE family."""

from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.objectives import AUDIO_TERMS, AudioReconstructionObjective

__all__ = ["AUDIO_TERMS", "Autoencoder", "AutoencoderOutput", "AudioReconstructionObjective"]
