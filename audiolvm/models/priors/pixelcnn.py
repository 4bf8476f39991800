"""Gated PixelCNN priors (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

* :class:`GatedPixelCNN1d` models a code sequence ``LongTensor[B x N]`` (audio codes) with dilated
  causal gated residual layers (a WaveNet-shaped PixelCNN).
* :class:`GatedPixelCNN2d` models a code map ``LongTensor[B x H x W]`` (image codes) in raster order
  with vertical and horizontal stacks, so there is no blind spot.

Both use gated units ``tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)`` with the class label as h
(``cond["label"]``), residual and skip connections, and a ReLU-1x1-ReLU-1x1 output head. Sampling is
ancestral and recomputes the network over the receptive field of the next position only.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from audiolvm.core.errors import UsageError
from audiolvm.models.priors.base import Cond, Prior
from audiolvm.models.priors.sampling import sample_logits
from audiolvm.nn.masked import CausalConv1d, GatedCausalBlock1d, GatedStackBlock2d, Mask


def _check_sizes(num_codes: int, channels: int, layers: int, kernel_size: int, num_labels: int) -> None:
    for name, value, low in [("num_codes", num_codes, 2), ("channels", channels, 1), ("layers", layers, 1),
                             ("kernel_size", kernel_size, 1), ("num_labels", num_labels, 0)]:
        if value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")


def _is_integer(x: torch.Tensor) -> bool:
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


def _check_codes(codes: torch.Tensor, ndim: int, num_codes: int, owner: str) -> torch.Tensor:
    """Validate ``codes`` (any integer dtype) and return them as a LongTensor."""
    layout = "B x N" if ndim == 2 else "B x H x W"
    if codes.dim() != ndim or not _is_integer(codes):
        raise UsageError(f"{owner}: codes must be a LongTensor[{layout}], got {codes.dtype} of shape "
                         f"{tuple(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= num_codes):
        raise UsageError(f"{owner}: codes must lie in [0, {num_codes}), got values in "
                         f"[{int(codes.min())}, {int(codes.max())}]; were they encoded with a different codebook?")
    return codes.long()


def _label(cond: Cond, num_labels: int, batch: int, owner: str) -> torch.Tensor | None:
    """Validate ``cond`` and return its ``"label"`` (``LongTensor[batch]``), or None if unconditional.

    As in the other priors, an unconditional model (``num_labels == 0``) ignores a label. Other keys
    (``"upper"``) are an error: a PixelCNN cannot use them, so passing them is a mistake upstream.
    """
    cond = dict(cond or {})
    label = cond.pop("label", None)
    if cond:
        raise UsageError(f"{owner} is conditioned on cond['label'] only; it cannot use cond keys {sorted(cond)} "
                         "(an upsampler prior takes cond['upper'])")
    if num_labels == 0:
        return None
    if label is None:
        raise UsageError(f"{owner} is class-conditional (num_labels={num_labels}) and needs cond['label']: "
                         f"pass cond={{'label': LongTensor[B]}} with class ids in [0, {num_labels}), "
                         "or build it with num_labels=0")
    if label.shape != (batch,) or not _is_integer(label):
        raise UsageError(f"{owner}: cond['label'] must be a LongTensor[{batch}] (one class id per item), "
                         f"got {label.dtype} of shape {tuple(label.shape)}")
    if label.numel() and (label.min() < 0 or label.max() >= num_labels):
        raise UsageError(f"{owner}: cond['label'] must lie in [0, {num_labels}), got values in "
                         f"[{int(label.min())}, {int(label.max())}]")
    return label.long()


def _output_head(channels: int, num_codes: int, conv: type[nn.Conv1d] | type[nn.Conv2d]) -> nn.Sequential:
    """ReLU -> 1x1 -> ReLU -> 1x1 logits (channels-first)."""
    return nn.Sequential(nn.ReLU(), conv(channels, channels, 1), nn.ReLU(), conv(channels, num_codes, 1))


class GatedPixelCNN1d(Prior):
    """Gated PixelCNN over 1-D code sequences ``LongTensor[B x N]``.

    Code embedding -> causal conv (mask A: excludes the current code) -> ``layers`` gated residual
    blocks (mask B) with dilations ``dilation_growth ** i`` -> sum of skips -> ReLU-1x1-ReLU-1x1.
    ``receptive_field`` is the number of past codes a prediction can see.
    """

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 8, kernel_size: int = 3,
                 dilation_growth: int = 2, num_labels: int = 0) -> None:
        super().__init__()
        _check_sizes(num_codes, channels, layers, kernel_size, num_labels)
        if dilation_growth < 1:
            raise UsageError(f"dilation_growth must be >= 1, got {dilation_growth}")
        self.num_codes, self.num_labels = num_codes, num_labels
        dilations = [dilation_growth**i for i in range(layers)]
        self.receptive_field = kernel_size + (kernel_size - 1) * sum(dilations)
        self.embed = nn.Embedding(num_codes, channels)
        self.first = CausalConv1d(channels, channels, kernel_size, mask="A")
        self.blocks = nn.ModuleList(GatedCausalBlock1d(channels, kernel_size, d, num_labels, last=i == layers - 1)
                                    for i, d in enumerate(dilations))
        self.head = _output_head(channels, num_codes, nn.Conv1d)

    def logits(self, codes: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """``codes : LongTensor[B x N]`` -> next-code logits ``Tensor[B x N x K]`` (position t sees codes < t)."""
        codes = _check_codes(codes, 2, self.num_codes, type(self).__name__)
        return self.logits_from_embeddings(self.embed(codes), cond)

    def logits_from_embeddings(self, emb: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """The network after the code embedding: ``emb : Tensor[B x N x C]`` -> ``Tensor[B x N x K]``."""
        label = _label(cond, self.num_labels, emb.shape[0], type(self).__name__)
        x = self.first(emb.transpose(1, 2))  # (B, C, N)
        skips = torch.zeros_like(x)
        for block in self.blocks:
            x, skip = block(x, label)
            skips = skips + skip
        return self.head(skips).transpose(1, 2)  # (B, N, K)

    @torch.no_grad()
    def sample(self, n: int, length: int | tuple[int, ...], cond: Cond = None, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
               progress: bool = True) -> torch.Tensor:
        """Ancestral sampling, one code at a time -> ``LongTensor[n x length]``.

        Each step reruns the network over the last ``receptive_field`` codes only (exact: the prediction
        cannot see further back). ``cond["label"]`` is ``LongTensor[n]`` for a class-conditional model.
        """
        if isinstance(length, tuple):
            if len(length) != 1:
                raise UsageError(f"GatedPixelCNN1d samples sequences: length must be an int, got {length}")
            length = length[0]
        device = self.embed.weight.device
        codes = torch.zeros(n, length, dtype=torch.long, device=device)
        for t in tqdm(range(length), desc="sampling codes", disable=not progress):
            start = max(0, t - self.receptive_field)
            logits = self.logits(codes[:, start : t + 1], cond)[:, -1]  # (n, K)
            codes[:, t] = sample_logits(logits, temperature, top_k, top_p, generator)
        return codes


class GatedPixelCNN2d(Prior):
    """Gated PixelCNN over code maps ``LongTensor[B x H x W]`` in raster order, with no blind spot.

    Code embedding -> ``layers`` gated vertical/horizontal stack layers (the first with mask A) ->
    sum of the horizontal skips -> ReLU-1x1-ReLU-1x1. ``receptive_rows`` is the number of rows above
    a pixel that its prediction can see.
    """

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 8, kernel_size: int = 3,
                 num_labels: int = 0) -> None:
        super().__init__()
        _check_sizes(num_codes, channels, layers, kernel_size, num_labels)
        self.num_codes, self.num_labels = num_codes, num_labels
        self.receptive_rows = 1 + layers * (kernel_size // 2)
        self.embed = nn.Embedding(num_codes, channels)
        masks: list[Mask] = ["A" if i == 0 else "B" for i in range(layers)]  # "A", then "B" (layers >= 1)
        self.blocks = nn.ModuleList(GatedStackBlock2d(channels, kernel_size, m, num_labels, last=i == layers - 1)
                                    for i, m in enumerate(masks))
        self.head = _output_head(channels, num_codes, nn.Conv2d)

    def logits(self, codes: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """``codes : LongTensor[B x H x W]`` -> logits ``Tensor[B x H x W x K]`` ((i, j) sees earlier raster codes)."""
        codes = _check_codes(codes, 3, self.num_codes, type(self).__name__)
        return self.logits_from_embeddings(self.embed(codes), cond)

    def logits_from_embeddings(self, emb: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """The network after the code embedding: ``emb : Tensor[B x H x W x C]`` -> ``Tensor[B x H x W x K]``."""
        label = _label(cond, self.num_labels, emb.shape[0], type(self).__name__)
        x = emb.permute(0, 3, 1, 2)  # (B, C, H, W)
        v, h, skips = x, x, torch.zeros_like(x)
        for block in self.blocks:
            v, h, skip = block(v, h, label)
            skips = skips + skip
        return self.head(skips).permute(0, 2, 3, 1)  # (B, H, W, K)

    @torch.no_grad()
    def sample(self, n: int, length: int | tuple[int, ...], cond: Cond = None, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
               progress: bool = True) -> torch.Tensor:
        """Ancestral sampling in raster order -> ``LongTensor[n x H x W]`` for ``length = (H, W)``.

        Each step reruns the network over rows ``i - receptive_rows .. i`` only (exact: later rows and
        rows further up are invisible to pixel (i, j)). ``cond["label"]`` is ``LongTensor[n]``.
        """
        if not (isinstance(length, tuple | list) and len(length) == 2):
            raise UsageError(f"GatedPixelCNN2d samples code maps: length must be a tuple (H, W), got {length!r}")
        height, width = (int(size) for size in length)
        codes = torch.zeros(n, height, width, dtype=torch.long, device=self.embed.weight.device)
        for pos in tqdm(range(height * width), desc="sampling codes", disable=not progress):
            i, j = divmod(pos, width)
            top = max(0, i - self.receptive_rows)
            logits = self.logits(codes[:, top : i + 1], cond)[:, -1, j]  # (n, K)
            codes[:, i, j] = sample_logits(logits, temperature, top_k, top_p, generator)
        return codes
