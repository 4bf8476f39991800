"""An autoregressive PixelCNN decoder ``p(x|z) = prod_i p(x_i | x_<i, z)`` for VAEs (PixelVAE / VLAE style).

The latent (and class) condition is mapped by a ``conditioner`` to a feature map the size of the
image, which enters every gated vertical/horizontal stack layer of :mod:`audiolvm.nn.masked` as the
spatial condition. The output at pixel i sees only pixels before i in raster order (all channels of a
pixel are predicted together, independently given the context), so any per-element likelihood
(Bernoulli, categorical, discretized logistic) turns it into a proper autoregressive density.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from audiolvm.core.errors import UsageError
from audiolvm.losses.likelihoods import Likelihood
from audiolvm.nn.masked import GatedStackBlock2d


class PixelCNNDecoder(nn.Module):
    """``(z, x, cond) -> params : Tensor[N x param_channels x H x W]`` with teacher forcing on ``x``.

    Args:
        conditioner: ``z`` (and ``cond : Tensor[N x K]``, if given) -> ``Tensor[N x cond_channels x H x W]``,
            e.g. a :class:`~audiolvm.nn.ConvDecoder2d` or :class:`~audiolvm.nn.MLPDecoder`.
        cond_channels: channels of the conditioner's output.
        image_channels: C of the data.
        param_channels: the likelihood's ``param_channels``.
        channels, layers, kernel_size: the gated stacks (the first layer uses mask A).
    """

    autoregressive = True

    def __init__(self, conditioner: nn.Module, cond_channels: int, image_channels: int, param_channels: int,
                 channels: int = 32, layers: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise UsageError(f"PixelCNNDecoder: layers must be >= 1, got {layers}")
        self.conditioner = conditioner
        self.inp = nn.Conv2d(image_channels, channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            GatedStackBlock2d(channels, kernel_size, "A" if i == 0 else "B", last=i == layers - 1,
                              cond_channels=cond_channels)
            for i in range(layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, param_channels, 1))

    def features(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The spatial condition ``Tensor[N x cond_channels x H x W]``."""
        return self.conditioner(z) if cond is None else self.conditioner(z, cond)

    def net(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Masked stacks over ``x : Tensor[N x C x H x W]`` -> ``Tensor[N x P x H x W]``."""
        v = h = self.inp(x)  # (N, channels, H, W)
        skips = torch.zeros_like(v)
        for block in self.blocks:
            v, h, skip = block(v, h, None, features)
            skips = skips + skip
        return self.head(skips)

    def forward(self, z: torch.Tensor, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, self.features(z, cond))

    @torch.no_grad()
    def sample(self, z: torch.Tensor, likelihood: Likelihood, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Ancestral sampling in raster order given ``z : Tensor[N x ...]`` -> ``Tensor[N x C x H x W]``.

        Reruns the network over the whole image for every pixel (simple and exact for any likelihood,
        including ones with per-pixel parameters); meant for small images and sample grids.
        """
        features = self.features(z, cond)  # (N, Cc, H, W)
        n, _, height, width = features.shape
        x = torch.zeros(n, self.inp.in_channels, height, width, device=features.device, dtype=features.dtype)
        for pos in tqdm(range(height * width), desc="sampling pixels", disable=not progress):
            i, j = divmod(pos, width)
            draw = likelihood.sample(self.net(x, features), generator)  # (N, C, H, W)
            x[:, :, i, j] = draw[:, :, i, j]
        return x
