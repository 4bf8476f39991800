"""Reconstruction losses, image likelihoods ``p(x|z)``, and ELBO / IWAE bounds with their estimators."""

from audiolvm.losses.bounds import (
    ESTIMATORS,
    ConstantSchedule,
    CyclicalSchedule,
    LinearSchedule,
    Schedule,
    active_dims,
    elbo_analytic,
    free_bits_kl,
    iwae_bound,
    iwae_surrogate,
    kl_penalty,
    log_weights,
    make_schedule,
    normalized_weights,
)
from audiolvm.losses.likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    CategoricalLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    Likelihood,
    make_likelihood,
)
from audiolvm.losses.spectral import MultiResolutionSTFTLoss, log_magnitude_distance, spectral_convergence
from audiolvm.losses.waveform import waveform_loss

__all__ = [
    "ESTIMATORS",
    "LIKELIHOODS",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "ConstantSchedule",
    "CyclicalSchedule",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "LinearSchedule",
    "MultiResolutionSTFTLoss",
    "Schedule",
    "active_dims",
    "elbo_analytic",
    "free_bits_kl",
    "iwae_bound",
    "iwae_surrogate",
    "kl_penalty",
    "log_magnitude_distance",
    "log_weights",
    "make_likelihood",
    "make_schedule",
    "normalized_weights",
    "spectral_convergence",
    "waveform_loss",
]
