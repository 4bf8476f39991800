"""Diagonal-Gaussian bottleneck for VAEs, beta-VAEs and (with ``samples > 1``) IWAEs.

The encoder predicts ``[mean | logvar]`` stacked along the channel dim. ``forward`` draws ``k``
reparameterized samples per input (k-major: sample ``i`` of item ``b`` is row ``i * B + b``) and
returns the analytic KL to ``N(0, I)``. For importance weighting, ``posterior``, ``log_q`` and
``log_prior`` give per-sample log densities summed over the latent dims.
"""

from __future__ import annotations

import math

import torch

from audiolvm.bottleneck.base import Bottleneck, BottleneckResult
from audiolvm.core.errors import UsageError

#: log-variances are clamped to this range before use (exp() stays finite in float32 and bf16)
LOGVAR_RANGE = (-30.0, 20.0)
_LOG_2PI = math.log(2.0 * math.pi)


class GaussianBottleneck(Bottleneck):
    """Reparameterized diagonal Gaussian posterior ``q(z|x) = N(mean, exp(logvar))``.

    Args:
        samples: number ``k`` of samples per input (``k > 1`` for importance weighting).
        sample_in_eval: if False (default) eval mode returns the mean (repeated ``k`` times so
            the output shape does not depend on the mode); if True it samples as in training.
    """

    discrete = False

    def __init__(self, samples: int = 1, sample_in_eval: bool = False) -> None:
        super().__init__()
        if samples < 1:
            raise UsageError(f"GaussianBottleneck: samples must be >= 1, got {samples}")
        self.samples = samples
        self.sample_in_eval = sample_in_eval

    def extra_repr(self) -> str:
        return f"samples={self.samples}, sample_in_eval={self.sample_in_eval}"

    def forward(self, x: torch.Tensor) -> BottleneckResult:
        """``x : Tensor[B x 2D x *S]`` -> ``z : Tensor[(k*B) x D x *S]`` plus ``losses["kl"]``.

        ``losses["kl"]`` is the analytic KL(q(z|x) || N(0, I)) summed over latent dims and
        averaged over the batch; ``metrics["kl_per_dim"]`` is the same per latent element.
        """
        return self.from_posterior(*self.posterior(x))

    def draw(self, mean: torch.Tensor, logvar: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """``k`` samples in training (or with ``sample_in_eval``, or when ``sample``), else the mean repeated
        k times: ``Tensor[(k*B) x D x *S]``."""
        k = self.samples
        if sample or self.training or self.sample_in_eval:
            return self.sample(mean, logvar, k)  # (k*B, D, *S)
        return mean.expand(k, *mean.shape).reshape(-1, *mean.shape[1:])  # (k*B, D, *S)

    def from_posterior(self, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None = None,
                       kl: torch.Tensor | None = None) -> BottleneckResult:
        """The result of :meth:`forward` from an already split posterior (and, when given, its draws ``z``
        and per-item ``kl : Tensor[B]``, so a caller that has them does not compute them twice)."""
        z = self.draw(mean, logvar) if z is None else z
        kl = self.kl(mean, logvar) if kl is None else kl  # (B,)
        metrics = {"kl_per_dim": kl.detach().mean() / mean[0].numel()}
        return BottleneckResult(z=z, losses={"kl": kl.mean()}, metrics=metrics)

    @staticmethod
    def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``x : Tensor[B x 2D x *S]`` into ``(mean, logvar)``, each ``Tensor[B x D x *S]``."""
        if x.dim() < 2 or x.shape[1] % 2 != 0:
            raise UsageError(
                f"GaussianBottleneck expects [B x 2D x *S] (mean and log-variance stacked on dim 1), "
                f"got shape {tuple(x.shape)}; make the encoder output an even number of channels"
            )
        mean, logvar = x.chunk(2, dim=1)  # (B, D, *S) each
        return mean, logvar.clamp(*LOGVAR_RANGE)

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor, k: int = 1,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` reparameterized samples, k-major: ``Tensor[(k*B) x D x *S]``.

        The noise comes from ``generator`` (drawn on its device, then moved) or the global torch RNG.
        """
        std = (0.5 * logvar).exp()
        shape = (k, *mean.shape)
        if generator is None:
            noise = torch.randn(shape, dtype=mean.dtype, device=mean.device)  # (k, B, D, *S)
        else:
            noise = torch.randn(shape, generator=generator, device=generator.device).to(mean)  # (k, B, D, *S)
        z = mean + std * noise  # (k, B, D, *S)
        return z.reshape(-1, *mean.shape[1:])  # (k*B, D, *S)

    @staticmethod
    def kl_elements(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mean, exp(logvar)) || N(0, 1)) of every latent element: ``Tensor[B x D x *S]``."""
        return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)

    @staticmethod
    def kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mean, exp(logvar)) || N(0, I)) per item, summed over latent dims: ``Tensor[B]``."""
        return GaussianBottleneck.kl_elements(mean, logvar).flatten(1).sum(dim=1)

    @staticmethod
    def log_q(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
              stop_grad_params: bool = False) -> torch.Tensor:
        """``log q(z|x)`` per sample, summed over latent dims.

        Args:
            z: ``Tensor[(k*B) x D x *S]`` k-major samples.
            mean, logvar: ``Tensor[B x D x *S]``.
            stop_grad_params: detach ``mean`` and ``logvar`` so that gradients reach the encoder only
                through ``z`` (the "sticking the landing" and DReG estimators).

        Returns:
            ``Tensor[k*B]`` (reshape with ``.view(k, B)`` for importance weights).
        """
        if stop_grad_params:
            mean, logvar = mean.detach(), logvar.detach()
        k = _num_samples(z, mean)
        zk = z.reshape(k, *mean.shape)  # (k, B, D, *S)
        log_density = -0.5 * ((zk - mean).square() * (-logvar).exp() + logvar + _LOG_2PI)
        return log_density.flatten(2).sum(dim=2).reshape(-1)  # (k*B,)

    @staticmethod
    def log_prior(z: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, I)`` per sample, summed over latent dims: ``Tensor[(k*B)]``."""
        return -0.5 * (z.square() + _LOG_2PI).flatten(1).sum(dim=1)


def _num_samples(z: torch.Tensor, mean: torch.Tensor) -> int:
    batch = mean.shape[0]
    if z.shape[1:] != mean.shape[1:] or z.shape[0] % batch != 0:
        raise UsageError(
            f"GaussianBottleneck.log_q: z of shape {tuple(z.shape)} is not k stacked samples of a "
            f"posterior of shape {tuple(mean.shape)}; pass z as returned by forward()/sample()"
        )
    return z.shape[0] // batch
