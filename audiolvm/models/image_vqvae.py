"""A 2-D image VQ-VAE: the shared ``Autoencoder`` with 2-D conv stacks and the same EMA quantizer as the
audio models. Its codes form a map ``LongTensor[B x H/f x W/f]`` that :class:`GatedPixelCNN2d` models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.bottleneck.vq import VectorQuantizerEMA
from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.models.autoencoder import Autoencoder
from audiolvm.nn.conv2d import ConvDecoder2d, ConvEncoder2d


def image_vqvae(bottleneck: VectorQuantizerEMA, in_channels: int = 1, width: int = 64,
                factors: Sequence[int] = (2, 2), depth: int = 2) -> Autoencoder:
    """``Autoencoder(ConvEncoder2d, bottleneck, ConvDecoder2d)`` mapping ``H x W`` images to ``H/f x W/f`` codes.

    ``f = prod(factors)`` must divide the image size (e.g. ``(2, 2)`` for 28x28 -> 7x7 or 32x32 -> 8x8).
    """
    encoder = ConvEncoder2d(in_channels, bottleneck.dim, width=width, factors=factors, depth=depth)
    decoder = ConvDecoder2d(bottleneck.dim, in_channels, width=width, factors=factors, depth=depth)
    return Autoencoder(encoder, bottleneck, decoder, hop=1)


@torch.no_grad()
def encode_images(model: Autoencoder, batches: Iterable[Mapping[str, torch.Tensor]], image_key: str = "image",
                  label_key: str = "label") -> tuple[torch.Tensor, torch.Tensor]:
    """Code maps and labels of every item: ``(LongTensor[N x H/f x W/f], LongTensor[N])`` (labels -1 when
    the batches carry none). Runs the model in eval mode (no EMA or restart updates)."""
    codes, labels = [], []
    for batch in batches:
        x = batch[image_key]
        codes.append(model.encode(x).cpu())
        labels.append(batch[label_key].cpu() if label_key in batch else torch.full((x.shape[0],), -1))
    if not codes:
        raise UsageError("encode_images: no batches")
    return torch.cat(codes), torch.cat(labels).long()


class ImageReconstructionObjective:
    """``(model, batch) -> {"loss", "recon", "vq/<term>", "vq/<metric>"}`` for image autoencoders.

    ``recon`` is the mean squared (``"mse"``) or absolute (``"l1"``) error per element; ``loss`` is
    ``weights["recon"] * recon`` plus each bottleneck loss ``vq/<name>`` times its weight (default 1).
    """

    def __init__(self, weights: Mapping[str, float] | None = None, kind: str = "mse", image_key: str = "image") -> None:
        if kind not in ("mse", "l1"):
            raise UsageError(f"ImageReconstructionObjective: kind must be 'mse' or 'l1', got {kind!r}")
        self.weights, self.kind, self.image_key = dict(weights or {}), kind, image_key

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.image_key]
        out = model(x)
        recon = F.mse_loss(out.recon, x) if self.kind == "mse" else F.l1_loss(out.recon, x)
        terms = {"recon": recon, **{f"vq/{k}": v for k, v in out.bottleneck.losses.items()}}
        unknown = sorted(set(self.weights) - set(terms))
        if unknown:
            raise UnknownNameError(f"loss weights name {unknown}, which this model does not produce; "
                                   f"valid: {sorted(terms)}")
        loss = sum(self.weights.get(name, 1.0) * value for name, value in terms.items())
        metrics = {f"vq/{k}": v.detach() for k, v in out.bottleneck.metrics.items()}
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}, **metrics}
