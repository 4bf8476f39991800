"""1-D convolutional building blocks: dilated residual stacks and exact-factor resampling convs.

Shapes follow PyTorch's channels-first convention: ``Tensor[B x C x T]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.core.features import LogMel


class ResidualDilatedBlock(nn.Module):
    """``x + conv1x1(act(conv3_dilated(act(x))))`` (Jukebox / WaveNet style), length preserving."""

    def __init__(self, channels: int, dilation: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.conv = nn.Conv1d(channels, hidden, kernel_size=3, dilation=dilation, padding=dilation)
        self.proj = nn.Conv1d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the inner ReLU works in place on the conv's fresh output (its backward needs only its output)
        return x + self.proj(F.relu(self.conv(F.relu(x)), inplace=True))


def init_waveform_convs(module: nn.Module) -> None:
    """Variance-preserving init for deep waveform conv stacks.

    Every conv gets ``kaiming_normal_`` with linear gain and a zero bias, and each residual branch's
    output projection starts at zero, so every block is the identity at initialisation. With PyTorch's
    default init the time-varying part of the signal shrinks at each stage while the biases do not:
    after 7 stride-2 stages (hop 128) the encoder output is almost constant over time and a top-level
    VQ can collapse onto a handful of codes.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.ConvTranspose1d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, ResidualDilatedBlock):
            nn.init.zeros_(m.proj.weight)


class ResidualStack(nn.Sequential):
    """``depth`` residual blocks with dilations ``growth ** i`` (reversed for decoders).

    With ``checkpoint=True`` the stack's activations are recomputed during backward instead of kept
    (``torch.utils.checkpoint``): the high-rate stages hold most of a waveform model's activation
    memory, so checkpointing only those trades a little compute for a lot of memory.
    """

    def __init__(self, channels: int, depth: int, dilation_growth: int = 3, reverse: bool = False,
                 checkpoint: bool = False) -> None:
        dilations = [dilation_growth**i for i in range(depth)]
        if reverse:
            dilations = dilations[::-1]
        super().__init__(*[ResidualDilatedBlock(channels, d) for d in dilations])
        self.checkpoint = checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpoint and torch.is_grad_enabled() and len(self) > 0:
            return torch.utils.checkpoint.checkpoint(super().forward, x, use_reentrant=False)
        return super().forward(x)


class Downsample1d(nn.Module):
    """Strided conv with kernel ``2 * stride`` that maps length ``L`` to exactly ``L // stride``
    (for ``L`` divisible by ``stride``), for any integer stride.

    Computed as space-to-depth: the padded input's blocks of ``stride`` samples become channels and a
    stride-1 conv with 2 taps runs over them, with the same weights rearranged. The result is the strided
    conv's (to float rounding), and on a CPU it is faster, forward and backward (BENCHMARKS.md, multi-level)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size=2 * stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        x = F.pad(x, (s // 2, s - s // 2))  # (B, C, L + s)
        if x.shape[-1] % s:  # L not divisible by the stride: the strided conv's floor(L / s) outputs
            return self.conv(x)
        b, c, n = x.shape
        blocks = x.view(b, c, n // s, s).transpose(2, 3).reshape(b, c * s, n // s)  # channel c * s + phase
        w = self.conv.weight  # (C', C, 2s): tap j * s + phase
        w = w.view(w.shape[0], c, 2, s).transpose(2, 3).reshape(w.shape[0], c * s, 2)
        return F.conv1d(blocks, w, self.conv.bias)  # (B, C', L / s)


class Upsample1d(nn.Module):
    """Transposed conv with kernel ``2 * stride`` that maps length ``L`` to exactly ``L * stride``.

    Computed as depth-to-space: output sample ``m * stride + p`` is ``x[m] w[p] + x[m - 1] w[stride + p]``,
    a stride-1 conv with 2 taps giving ``stride`` phases as channels, which are then interleaved. Same weights
    and result as the transposed conv (to float rounding), faster on a CPU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.ConvTranspose1d(in_ch, out_ch, kernel_size=2 * stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, w, bias = self.stride, self.conv.weight, self.conv.bias  # w: (C, C', 2s), tap k = j * s + phase
        c_in, c_out = w.shape[0], w.shape[1]
        w = w.view(c_in, c_out, 2, s).flip(2).permute(1, 3, 0, 2).reshape(c_out * s, c_in, 2)  # x[m - 1]: j = 1
        y = F.conv1d(F.pad(x, (1, 1)), w, None if bias is None else bias.repeat_interleave(s))  # channel c' * s + p
        b, _, n = y.shape  # (B, C' * s, L + 1)
        y = y.view(b, c_out, s, n).transpose(2, 3).reshape(b, c_out, n * s)  # (B, C', L * s + s)
        return y[..., s // 2 : y.shape[-1] - (s - s // 2)]  # (B, C', L * s)


class ConvEncoder1d(nn.Module):
    """Waveform -> latent features. ``Tensor[B x in_ch x T]`` -> ``Tensor[B x out_ch x T / hop]``
    where ``hop = prod(strides)``. Each stage: strided conv, then a dilated residual stack; the first
    ``checkpoint_stages`` (highest-rate) stacks are recomputed in backward to save memory."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        width: int,
        strides: Sequence[int],
        depth: int,
        dilation_growth: int = 3,
        checkpoint_stages: int = 0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_ch, width, 3, padding=1)]
        for i, s in enumerate(strides):
            stack = ResidualStack(width, depth, dilation_growth, checkpoint=i < checkpoint_stages)
            layers += [Downsample1d(width, width, s), stack]
        layers.append(nn.Conv1d(width, out_ch, 3, padding=1))
        self.net = nn.Sequential(*layers)
        init_waveform_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FiLM1d(nn.Module):
    """Feature-wise affine conditioning: ``x * (1 + gamma(c)) + beta(c)`` per channel, for
    ``x : Tensor[B x C x T]`` and a global ``c : Tensor[B x cond_dim]``. Zero-initialised: the identity
    until trained."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(c).unsqueeze(-1).chunk(2, dim=1)  # (B, C, 1) each
        return x * (1.0 + gamma) + beta


class ConcatCond1d(nn.Module):
    """Concatenate a global ``c : Tensor[B x cond_dim]`` to every frame of ``x : Tensor[B x C x T]`` and
    mix back to C channels with a 1x1 conv, initialised to pass ``x`` through unchanged."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv1d(channels + cond_dim, channels, 1)
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.weight[:, :channels, 0] = torch.eye(channels)
            bias = self.proj.bias
            assert bias is not None  # nn.Conv1d's default bias=True
            bias.zero_()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([x, c.unsqueeze(-1).expand(-1, -1, x.shape[-1])], dim=1))


CONDITIONING = {"film": FiLM1d, "concat": ConcatCond1d}


def source_projection(source_dim: int, width: int, factor: int) -> nn.Module:
    """``Tensor[B x source_dim x L]`` -> ``Tensor[B x width x L / factor]``: a strided conv (kernel
    ``2 * factor``, as :class:`Downsample1d`) that brings a sample-rate excitation to a decoder stage's rate."""
    if factor == 1:
        return nn.Conv1d(source_dim, width, 7, padding=3)
    return Downsample1d(source_dim, width, factor)


class ConvDecoder1d(nn.Module):
    """The mirror of :class:`ConvEncoder1d`: ``Tensor[B x in_ch x N]`` -> ``Tensor[B x out_ch x N * hop]``
    (its last ``checkpoint_stages`` stacks, the highest-rate ones, are checkpointed).

    With ``cond_dim > 0`` the decoder takes a global vector ``c : Tensor[B x cond_dim]`` (e.g. a speaker
    embedding), applied by ``cond_mode`` (``film`` or ``concat``) at the input of every stage and before
    the output conv.

    With ``source_dim > 0`` it is the filter of a neural source-filter decoder (NSF-HiFiGAN style): it
    also takes an excitation ``source : Tensor[B x source_dim x N * hop]`` at the output rate, brought to
    each stage's rate by a strided conv (:func:`source_projection`) and added at the same points.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        width: int,
        strides: Sequence[int],
        depth: int,
        dilation_growth: int = 3,
        checkpoint_stages: int = 0,
        cond_dim: int = 0,
        cond_mode: str = "film",
        source_dim: int = 0,
    ) -> None:
        super().__init__()
        if cond_dim and cond_mode not in CONDITIONING:
            raise UsageError(f"cond_mode={cond_mode!r} is unknown; use one of {sorted(CONDITIONING)}")
        layers: list[nn.Module] = [nn.Conv1d(in_ch, width, 3, padding=1)]
        self._cond_after: list[int] = [0]  # indices in self.net after which the condition is applied
        factors = [math.prod(strides)]  # each conditioning point's rate, as a factor below the output rate
        for i, s in reversed(list(enumerate(strides))):
            stack = ResidualStack(width, depth, dilation_growth, reverse=True, checkpoint=i < checkpoint_stages)
            layers += [stack, Upsample1d(width, width, s)]
            self._cond_after.append(len(layers) - 1)
            factors.append(math.prod(strides[:i]))
        layers.append(nn.Conv1d(width, out_ch, 3, padding=1))
        self.net = nn.Sequential(*layers)
        init_waveform_convs(self.net)
        self.cond_dim, self.source_dim = cond_dim, source_dim
        self.cond = nn.ModuleList([CONDITIONING[cond_mode](cond_dim, width) for _ in self._cond_after]
                                  if cond_dim else [])
        self.source = nn.ModuleList([source_projection(source_dim, width, f) for f in factors] if source_dim else [])
        init_waveform_convs(self.source)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                source: torch.Tensor | None = None) -> torch.Tensor:
        if not self.cond_dim and not self.source_dim:
            return self.net(z)
        if self.cond_dim and c is None:
            raise UsageError("this decoder is conditioned: pass c = Tensor[B x cond_dim] (e.g. a speaker embedding)")
        if self.source_dim and (source is None or source.shape[-1] != z.shape[-1] * self.hop):
            raise UsageError(f"this decoder takes an excitation Tensor[B x {self.source_dim} x "
                             f"{z.shape[-1] * self.hop}] (N * hop samples); got "
                             f"{None if source is None else tuple(source.shape)}")
        k = 0
        for i, layer in enumerate(self.net):
            z = layer(z)
            if k < len(self._cond_after) and i == self._cond_after[k]:
                if self.cond_dim:
                    z = self.cond[k](z, c)
                if self.source_dim:
                    z = z + self.source[k](source)  # (B, width, N_stage)
                k += 1
        return z

    @property
    def hop(self) -> int:
        return math.prod(m.stride for m in self.net if isinstance(m, Upsample1d))


def halving_strides(factor: int) -> list[int]:
    """``factor`` as resampling strides: 2 while it is even, then the odd rest (12 -> [2, 2, 3]; 1 -> [])."""
    if factor < 1:
        raise UsageError(f"factor must be >= 1, got {factor}")
    strides: list[int] = []
    while factor > 1:
        step = 2 if factor % 2 == 0 else factor
        strides.append(step)
        factor //= step
    return strides


class MelEncoder1d(nn.Module):
    """Log-mel frames -> latent features: ``Tensor[B x 1 x T]`` -> ``Tensor[B x out_ch x T / hop]``.

    The waveform is turned into ``n_mels`` log-mel bands every ``frame_hop`` samples (Hann window ``n_fft``,
    centred), normalised per item and band over time, and a :class:`ConvEncoder1d` with ``strides`` (product
    ``hop / frame_hop``) takes the frames to the code rate. A drop-in for the waveform encoder: same input,
    same output length for inputs padded to a multiple of ``hop``."""

    def __init__(self, out_ch: int, width: int, hop: int, depth: int, sample_rate: int = 16000, n_mels: int = 80,
                 frame_hop: int = 64, n_fft: int = 1024, dilation_growth: int = 3) -> None:
        super().__init__()
        if frame_hop < 1 or hop % frame_hop:
            raise UsageError(f"the mel frame hop ({frame_hop}) must divide the code hop ({hop})")
        self.frame_hop = frame_hop
        self.mel = LogMel(sample_rate, n_fft=n_fft, hop_length=frame_hop, n_mels=n_mels)
        self.net = ConvEncoder1d(n_mels, out_ch, width, halving_strides(hop // frame_hop) or [1], depth,
                                 dilation_growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1] // self.frame_hop
        mel = self.mel(x[:, 0])[..., :frames]  # (B, n_mels, T / frame_hop): centred frames, the last dropped
        mel = (mel - mel.mean(-1, keepdim=True)) / (mel.std(-1, keepdim=True) + 1e-3)
        return self.net(mel)
