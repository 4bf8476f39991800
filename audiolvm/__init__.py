"""audiolvm: latent-variable models of audio, music and images."""

__version__ = "0.1.0"
