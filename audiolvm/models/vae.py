"""The image VAE family on the shared ``Autoencoder(encoder, bottleneck, decoder)`` composition.

``VAE`` = encoder -> :class:`GaussianBottleneck` (``k`` samples) -> decoder -> likelihood ``p(x|z)``.
VAE, beta-VAE and IWAE differ only in configuration: the bottleneck's ``samples`` (k) and the
objective's beta / capacity / estimator (:mod:`audiolvm.models.vae_objective`). ``ConditionalVAE``
feeds a one-hot class label to the encoder and the decoder. The prior is ``N(0, I)`` over
``latent_shape``.

Encoders take ``x : Tensor[B x C x *S]`` (and ``cond : Tensor[B x K]`` when conditional) and return
``[mean | logvar]`` ``Tensor[B x 2D x *L]``; decoders take ``z : Tensor[N x D x *L]`` (and ``cond``) and
return the likelihood's parameters ``Tensor[N x P x *S]``. An *autoregressive* decoder (attribute
``autoregressive = True``, e.g. :class:`~audiolvm.models.pixelcnn_decoder.PixelCNNDecoder`) also gets
the (teacher-forced) data: ``decoder(z, x, cond)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast, overload

import torch
from torch import nn

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.core.errors import UnsupportedError, UsageError
from audiolvm.losses.likelihoods import Likelihood
from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.nn.conditioning import one_hot
from audiolvm.nn.mode import eval_mode

if TYPE_CHECKING:
    from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder


@dataclass
class VAEOutput(AutoencoderOutput):
    """A VAE forward pass over a batch of B items with k samples each (rows k-major).

    Attributes:
        recon: the likelihood's mean for the first sample, ``Tensor[B x C x *S]``.
        bottleneck: the bottleneck result; ``z : Tensor[(k*B) x D x *L]``, ``losses["kl"]`` (analytic).
        params: decoder output for every sample, ``Tensor[(k*B) x P x *S]``.
        mean, logvar: the posterior ``q(z|x)``, ``Tensor[B x D x *L]`` each.
        log_px_z: ``log p(x|z_k)`` per sample, ``Tensor[k*B]``.
        kl_elements: the analytic KL of every latent element (float32), ``Tensor[B x D x *L]``.
        samples: k.
        step: the model's training-step count before this pass (drives KL schedules), a 0-dim long tensor on
            the model's device (reading it as an int would be a host sync every step).
    """

    params: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    log_px_z: torch.Tensor
    kl_elements: torch.Tensor
    samples: int
    step: torch.Tensor

    @property
    def z(self) -> torch.Tensor:
        return self.bottleneck.z


@overload
def repeat_rows(x: torch.Tensor, k: int) -> torch.Tensor: ...


@overload
def repeat_rows(x: None, k: int) -> None: ...


def repeat_rows(x: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """``Tensor[B x ...]`` -> ``Tensor[(k*B) x ...]``, k-major (row ``i * B + b`` is item b)."""
    if x is None or k == 1:
        return x
    return x.repeat(k, *([1] * (x.dim() - 1)))  # (k*B, ...)


class VAE(Autoencoder):
    """Gaussian-latent VAE with a pluggable likelihood.

    Args:
        encoder: ``x -> [mean | logvar]`` ``Tensor[B x 2D x *L]``.
        bottleneck: a :class:`GaussianBottleneck`; its ``samples`` is the number k of importance samples.
        decoder: ``z -> params`` ``Tensor[N x likelihood.param_channels x *S]``.
        likelihood: the observation model ``p(x|z)``.
        latent_shape: ``(D, *L)`` of one latent, for sampling from the prior.
        num_classes: > 0 for a class-conditional model (use :class:`ConditionalVAE`).
    """

    bottleneck: GaussianBottleneck  # checked in __init__
    train_steps: torch.Tensor  # buffer [] (long), registered in __init__

    def __init__(self, encoder: nn.Module, bottleneck: GaussianBottleneck, decoder: nn.Module, likelihood: Likelihood,
                 latent_shape: Sequence[int], num_classes: int = 0) -> None:
        if not isinstance(bottleneck, GaussianBottleneck):
            raise UnsupportedError(f"VAE needs a GaussianBottleneck (posterior densities for the bounds), got "
                            f"{type(bottleneck).__name__}; use Autoencoder for other bottlenecks")
        super().__init__(encoder, bottleneck, decoder, hop=1)
        self.likelihood, self.latent_shape, self.num_classes = likelihood, tuple(latent_shape), num_classes
        self.autoregressive = bool(getattr(decoder, "autoregressive", False))
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    @property
    def samples(self) -> int:
        return self.bottleneck.samples

    def condition(self, label: torch.Tensor | None) -> torch.Tensor | None:
        """``label``: ``LongTensor[B]`` ids or float ``Tensor[B x K]`` (one-hot / probabilities) -> ``[B x K]``."""
        if self.num_classes == 0:
            if label is not None:
                raise UsageError(f"{type(self).__name__} is unconditional (num_classes=0) but got labels; "
                                 "build a ConditionalVAE to condition on classes")
            return None
        if label is None:
            raise UsageError(f"{type(self).__name__} is class-conditional (num_classes={self.num_classes}) and "
                             "needs label=LongTensor[B]")
        return label if label.is_floating_point() else one_hot(label, self.num_classes)

    def posterior(self, x: torch.Tensor, label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z|x)``: ``(mean, logvar)``, each ``Tensor[B x D x *L]``."""
        cond = self.condition(label)
        features = self.encoder(x) if cond is None else self.encoder(x, cond)  # (B, 2D, *L)
        return self.bottleneck.posterior(features)

    def decode(self, z: torch.Tensor, label: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters ``Tensor[N x P x *S]`` for ``z : Tensor[N x D x *L]``.

        ``label`` (``[B]`` or ``[B x K]``) and ``x`` (``[B x C x *S]``, autoregressive decoders only) may have
        ``B = N / k`` rows; they are then repeated k-major to match ``z``.
        """
        cond = self.condition(label)
        k = z.shape[0] // (z.shape[0] if cond is None else cond.shape[0])
        cond = repeat_rows(cond, k)
        if not self.autoregressive:
            return self.decoder(z) if cond is None else self.decoder(z, cond)
        if x is None:
            raise UsageError("an autoregressive decoder needs the data x to decode (teacher forcing); use sample()")
        x = repeat_rows(x, z.shape[0] // x.shape[0])
        return self.decoder(z, x) if cond is None else self.decoder(z, x, cond)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x|z)`` for k-major ``z : Tensor[(k*B) x D x *L]``, ``x : Tensor[B x C x *S]`` -> ``Tensor[k*B]``."""
        params = self.decode(z, label, x)
        return self.likelihood.log_prob(repeat_rows(x, z.shape[0] // x.shape[0]), params)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None, sample: bool | None = None) -> VAEOutput:
        """One pass with k posterior samples per item.

        ``sample=None`` follows the bottleneck (samples in training, the mean in eval unless
        ``sample_in_eval``); ``sample=True`` always samples (objectives use it so that validation
        estimates a bound). A training-mode pass with gradients counts one step (``train_steps``).
        """
        step = self.train_steps.clone()
        if self.training and torch.is_grad_enabled():
            self.train_steps += 1
        cond = self.condition(label)
        features = self.encoder(x) if cond is None else self.encoder(x, cond)  # (B, 2D, *L)
        mean, logvar = self.bottleneck.posterior(features)
        k = self.bottleneck.samples
        z = self.bottleneck.draw(mean, logvar, sample=bool(sample))  # (k*B, D, *L)
        kl_elements = GaussianBottleneck.kl_elements(mean.float(), logvar.float())  # (B, D, *L)
        result = self.bottleneck.from_posterior(mean, logvar, z, kl_elements.flatten(1).sum(dim=1))
        params = self.decode(z, cond, x)  # (k*B, P, *S)
        log_px_z = self.likelihood.log_prob(repeat_rows(x, k), params)  # (k*B,)
        recon = self.likelihood.mean(params[: x.shape[0]])  # (B, C, *S)
        return VAEOutput(recon=recon, bottleneck=result, params=params, mean=mean, logvar=logvar,
                         log_px_z=log_px_z, kl_elements=kl_elements, samples=k, step=step)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Eval-mode reconstruction (the likelihood mean at the posterior mean), ``Tensor[B x C x *S]``."""
        with eval_mode(self):
            return self(x, label).recon

    @torch.no_grad()
    def sample(self, n: int, label: torch.Tensor | None = None, generator: torch.Generator | None = None,
               mean: bool = False, device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` prior samples ``z ~ N(0, I)`` decoded to the likelihood's mean or a sample: ``Tensor[n x C x *S]``."""
        device = device or self.train_steps.device
        noise_device = device if generator is None else generator.device
        z = torch.randn((n, *self.latent_shape), generator=generator, device=noise_device).to(device)
        if self.autoregressive:
            decoder = cast("PixelCNNDecoder", self.decoder)  # the autoregressive decoder
            return decoder.sample(z, self.likelihood, self.condition(label), generator)
        params = self.decode(z, label)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)


class ConditionalVAE(VAE):
    """Class-conditional VAE: ``q(z|x, y)`` and ``p(x|z, y)`` with a one-hot ``y`` concatenated to the inputs
    of the encoder and the decoder (build them with ``cond_dim=num_classes``). Every call takes ``label``."""

    def __init__(self, encoder: nn.Module, bottleneck: GaussianBottleneck, decoder: nn.Module, likelihood: Likelihood,
                 latent_shape: Sequence[int], num_classes: int) -> None:
        if num_classes < 1:
            raise UsageError(f"ConditionalVAE needs num_classes >= 1, got {num_classes}; use VAE for unconditional")
        super().__init__(encoder, bottleneck, decoder, likelihood, latent_shape, num_classes)
