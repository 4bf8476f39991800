"""Audio discriminators for adversarial training of a waveform autoencoder (HiFi-GAN, EnCodec, DAC).

Every discriminator takes a waveform ``Tensor[B x 1 x T]`` and returns a :data:`DiscriminatorOutput`: a list
with one ``(logits, features)`` pair per sub-discriminator, ``logits`` a ``Tensor[B x 1 x ...]`` of per-patch
scores and ``features`` the list of its hidden activations (after each LeakyReLU, logits excluded), for feature
matching. The multi-* discriminators concatenate the lists of their sub-discriminators, so the losses in
``audiolvm.losses.adversarial`` see a flat list whatever the mix. All convolutions are weight-normalised.

- :class:`PeriodDiscriminator` / :class:`MultiPeriodDiscriminator`: HiFi-GAN's MPD (Kong et al., 2020). The
  waveform is right-padded to a multiple of the period ``p`` and folded to ``Tensor[B x 1 x T/p x p]``; every
  kernel is ``(k, 1)``, so logit column ``c`` (``Tensor[B x 1 x rows x p]``) only sees samples ``i % p == c``.
- :class:`ScaleDiscriminator` / :class:`MultiScaleWaveformDiscriminator`: MelGAN's (Kumar et al., 2019) and
  HiFi-GAN's MSD: grouped strided Conv1d stacks on the waveform, scale ``i`` on the input average-pooled
  ``i`` times (kernel 4, stride 2); logits ``Tensor[B x 1 x ~T / 2**i / stride**(len(channels) - 1)]``.
- :class:`STFTDiscriminator` / :class:`MultiScaleSTFTDiscriminator`: EnCodec's MS-STFT discriminator
  (Défossez et al., 2022): real and imaginary parts of a normalised complex STFT as two channels of
  ``Tensor[B x 2 x frames x freq]`` (``freq = n_fft // 2 + 1``), Conv2d with time dilations 1, 2, 4 and
  frequency stride 2; logits ``Tensor[B x 1 x frames x ~freq / 8]``.
- :class:`BandSTFTDiscriminator` / :class:`MultiBandSTFTDiscriminator`: DAC's multi-band multi-scale STFT
  discriminator (Kumar et al., 2023): the frequency bins are split into fractional bands
  (:func:`band_edges`), each band has its own Conv2d stack, the band outputs are concatenated along frequency
  and a last conv gives the logits.

LeakyReLU slope is 0.1 for the HiFi-GAN discriminators and 0.2 for the STFT ones. The STFTs are centred
(reflect padding), so ``T`` must exceed ``n_fft // 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from audiolvm.core.errors import UsageError

#: one ``(logits, features)`` pair per sub-discriminator
DiscriminatorOutput = list[tuple[torch.Tensor, list[torch.Tensor]]]
#: DAC's fractional frequency bands
DAC_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
HIFIGAN_SLOPE = 0.1
STFT_SLOPE = 0.2


def _check_wave(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 1:
        raise UsageError(f"expected a waveform Tensor[B x 1 x T], got shape {tuple(x.shape)}")


def _run(layers: Iterable[nn.Module], post: nn.Module, x: torch.Tensor, slope: float) -> DiscriminatorOutput:
    """``x`` through ``layers`` (each followed by LeakyReLU, outputs kept as features), then ``post``."""
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), slope)
        features.append(x)
    return [(post(x), features)]


def _pad2d(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """'same' padding of an odd kernel."""
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


# --------------------------------------------------------------------------- HiFi-GAN multi-period


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD sub-discriminator for one ``period``: Conv2d ``(kernel, 1)`` layers with stride
    ``(stride, 1)`` (the last hidden layer stride 1) on the waveform folded to ``Tensor[B x 1 x T/p x p]``."""

    def __init__(self, period: int, channels: Sequence[int] = (16, 32, 64, 64), kernel: int = 5, stride: int = 3):
        super().__init__()
        if period < 1 or not channels:
            raise UsageError(f"need period >= 1 and at least one channel width, got {period=}, {channels=}")
        self.period = period
        widths = [1, *channels]
        strides = [stride] * (len(channels) - 1) + [1]
        self.layers = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel, 1), (s, 1), padding=(kernel // 2, 0)))
            for c_in, c_out, s in zip(widths[:-1], widths[1:], strides, strict=True)
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B x 1 x T]`` -> ``Tensor[B x 1 x ceil(T/p) x p]``, right-padded (reflect, or zeros if too
        short); element ``[r, c]`` is sample ``r * p + c``."""
        _check_wave(x)
        n_pad = -x.shape[-1] % self.period
        if n_pad:
            x = F.pad(x, (0, n_pad), mode="reflect" if n_pad < x.shape[-1] else "constant")
        return x.view(x.shape[0], 1, -1, self.period)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return _run(self.layers, self.post, self.fold(x), HIFIGAN_SLOPE)


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD: one :class:`PeriodDiscriminator` per period (``kwargs`` go to each)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), **kwargs: Any) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, **kwargs) for p in periods)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return [out for d in self.discriminators for out in d(x)]


# --------------------------------------------------------------------------- MelGAN / HiFi-GAN multi-scale


class ScaleDiscriminator(nn.Module):
    """MelGAN / HiFi-GAN MSD sub-discriminator: Conv1d(1, channels[0], 15), then grouped Conv1d
    (``kernel``, ``stride``, ``groups``) to each next width, a Conv1d(…, 5) and a Conv1d(…, 1, 3) to logits."""

    def __init__(
        self, channels: Sequence[int] = (16, 64, 128), groups: int = 4, kernel: int = 41, stride: int = 4
    ) -> None:
        super().__init__()
        if not channels:
            raise UsageError("need at least one channel width")
        layers = [nn.Conv1d(1, channels[0], 15, padding=7)]
        layers += [
            nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        ]
        layers.append(nn.Conv1d(channels[-1], channels[-1], 5, padding=2))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.post = weight_norm(nn.Conv1d(channels[-1], 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        _check_wave(x)
        return _run(self.layers, self.post, x, HIFIGAN_SLOPE)


class MultiScaleWaveformDiscriminator(nn.Module):
    """MelGAN / HiFi-GAN MSD: ``scales`` :class:`ScaleDiscriminator` (``kwargs`` go to each); scale ``i`` sees
    the waveform average-pooled (kernel 4, stride 2, padding 2) ``i`` times."""

    def __init__(self, scales: int = 3, **kwargs: Any) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(**kwargs) for _ in range(scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        outputs: DiscriminatorOutput = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pool(x)
            outputs += d(x)
        return outputs


# --------------------------------------------------------------------------- EnCodec / DAC STFT


def complex_spectrogram(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """``Tensor[B x 1 x T]`` -> ``Tensor[B x 2 x frames x (n_fft // 2 + 1)]``: real and imaginary parts of the
    centred, normalised (``1 / sqrt(win)``) STFT, ``frames = T // hop + 1``."""
    _check_wave(x)
    spec = torch.stft(
        x.squeeze(1), n_fft, hop, window.numel(), window, center=True, normalized=True, return_complex=True
    )
    return torch.view_as_real(spec).permute(0, 3, 2, 1)  # B x freq x frames x 2 -> B x 2 x frames x freq


def _stft_stack(channels: int, kernel: tuple[int, int], dilations: Sequence[int]) -> nn.ModuleList:
    """EnCodec's STFT conv stack on ``Tensor[B x 2 x frames x freq]``: Conv2d(2, ch, kernel), one Conv2d per
    dilation (dilated in time, stride 2 in frequency), Conv2d(ch, ch, 3x3); frequency shrinks ~``2**len``."""
    layers = [nn.Conv2d(2, channels, kernel, padding=_pad2d(kernel))]
    layers += [
        nn.Conv2d(channels, channels, kernel, (1, 2), dilation=(d, 1), padding=_pad2d(kernel, (d, 1)))
        for d in dilations
    ]
    layers.append(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)))
    return nn.ModuleList(weight_norm(layer) for layer in layers)


class _STFTBase(nn.Module):
    def __init__(self, n_fft: int, hop: int, win: int) -> None:
        super().__init__()
        if not 0 < win <= n_fft or hop < 1:
            raise UsageError(f"need 0 < win <= n_fft and hop >= 1, got {n_fft=}, {hop=}, {win=}")
        self.n_fft, self.hop = n_fft, hop
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B x 1 x T]`` -> ``Tensor[B x 2 x frames x (n_fft // 2 + 1)]``."""
        return complex_spectrogram(x, self.n_fft, self.hop, self.window)


class STFTDiscriminator(_STFTBase):
    """EnCodec's STFT sub-discriminator: :func:`_stft_stack` on the complex spectrogram, then
    Conv2d(ch, 1, 3x3) to logits ``Tensor[B x 1 x frames x ~freq / 2**len(dilations)]``."""

    def __init__(
        self,
        n_fft: int,
        hop: int,
        win: int,
        channels: int = 16,
        kernel: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__(n_fft, hop, win)
        self.layers = _stft_stack(channels, kernel, dilations)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return _run(self.layers, self.post, self.spectrogram(x), STFT_SLOPE)


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFT discriminator: one :class:`STFTDiscriminator` per FFT size (hop ``n_fft // 4``,
    window ``n_fft``)."""

    def __init__(self, fft_sizes: Sequence[int] = (1024, 512, 256), channels: int = 16) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, n // 4, n, channels) for n in fft_sizes)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return [out for d in self.discriminators for out in d(x)]


def band_edges(n_bins: int, bands: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Fractional bands -> bin ranges ``[lo, hi)`` of ``n_bins`` frequency bins (``lo = int(f_lo * n_bins)``,
    as DAC). The bands must be contiguous, start at 0.0, end at 1.0 and each hold at least one bin, so the
    ranges cover every bin exactly once."""
    if not bands or bands[0][0] != 0.0 or bands[-1][1] != 1.0:
        raise UsageError(f"bands must start at 0.0 and end at 1.0, got {bands}")
    if any(a[1] != b[0] for a, b in zip(bands[:-1], bands[1:], strict=True)):
        raise UsageError(f"bands must be contiguous, got {bands}")
    edges = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
    if any(hi <= lo for lo, hi in edges):
        raise UsageError(f"an empty band among {edges} ({n_bins} bins): use a larger n_fft or wider bands")
    return edges


class BandSTFTDiscriminator(_STFTBase):
    """DAC's multi-band STFT sub-discriminator: the complex spectrogram's bins split by :func:`band_edges`, one
    :func:`_stft_stack` (undilated) per band, band outputs concatenated along frequency, Conv2d(ch, 1, 3x3)."""

    def __init__(
        self,
        n_fft: int,
        hop: int,
        win: int,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        channels: int = 16,
        kernel: tuple[int, int] = (3, 9),
    ) -> None:
        super().__init__(n_fft, hop, win)
        self.bands = band_edges(n_fft // 2 + 1, bands)
        self.band_layers = nn.ModuleList(_stft_stack(channels, kernel, (1, 1, 1)) for _ in self.bands)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        spec = self.spectrogram(x)
        features: list[torch.Tensor] = []
        outs = []
        for (lo, hi), layers in zip(self.bands, cast("Iterable[nn.ModuleList]", self.band_layers), strict=True):
            ((band, band_features),) = _run(layers, nn.Identity(), spec[..., lo:hi], STFT_SLOPE)
            features += band_features
            outs.append(band)
        return [(self.post(torch.cat(outs, dim=-1)), features)]


class MultiBandSTFTDiscriminator(nn.Module):
    """DAC's multi-band multi-scale STFT discriminator: one :class:`BandSTFTDiscriminator` per FFT size (hop
    ``n_fft // 4``, window ``n_fft``)."""

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 512, 256),
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        channels: int = 16,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(BandSTFTDiscriminator(n, n // 4, n, bands, channels) for n in fft_sizes)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return [out for d in self.discriminators for out in d(x)]
