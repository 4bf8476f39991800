"""Compositions: autoencoders (single- and multi-level audio VQ-VAEs, the image VAE family and image
VQ-VAE), their objectives, and priors."""

from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.image_vqvae import ImageReconstructionObjective, image_vqvae
from audiolvm.models.m2 import M2, M2Objective, M2Output
from audiolvm.models.multilevel import MultiLevelAutoencoder, MultiLevelOutput
from audiolvm.models.objectives import AudioReconstructionObjective
from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder
from audiolvm.models.vae import VAE, ConditionalVAE, VAEOutput
from audiolvm.models.vae_objective import VAEObjective

__all__ = [
    "M2",
    "VAE",
    "Autoencoder",
    "AutoencoderOutput",
    "AudioReconstructionObjective",
    "ConditionalVAE",
    "ImageReconstructionObjective",
    "M2Objective",
    "M2Output",
    "MultiLevelAutoencoder",
    "MultiLevelOutput",
    "PixelCNNDecoder",
    "VAEObjective",
    "VAEOutput",
    "image_vqvae",
]
