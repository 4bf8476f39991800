"""Reconstruction losses and (later) likelihoods and bounds."""

from audiolvm.losses.spectral import MultiResolutionSTFTLoss, log_magnitude_distance, spectral_convergence
from audiolvm.losses.waveform import waveform_loss

__all__ = ["MultiResolutionSTFTLoss", "log_magnitude_distance", "spectral_convergence", "waveform_loss"]
