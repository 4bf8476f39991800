"""A harmonic-plus-noise speech decoder (DDSP, Engel et al. 2020): a frame-rate network drives a synthesizer.

The network never produces samples. From the codes (and speaker vector, and F0 at the frame rate) it predicts,
per F0 frame:

* a loudness ``A`` and a distribution over ``harmonics`` sines at ``k * F0`` (those at or above Nyquist are
  removed before normalising), so harmonic ``k`` has amplitude ``A * p_k``: the spectral envelope sampled at
  the harmonics, which is what makes a voice recognisable;
* the magnitude of a time-varying filter on white noise, in ``noise_bands`` linear bands from 0 to Nyquist
  (applied in the STFT domain): fricatives, breath, plosive bursts.

The sines are muted where the extractor says unvoiced (the voicing is interpolated linearly between frames,
so onsets are ramps of one frame). All learned computation runs at the F0 frame rate (250 Hz for 4 ms
frames), not at the sample rate, which makes the decoder cheap; the synthesis itself has no weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.nn.conv1d import ConvDecoder1d, ResidualStack, init_waveform_convs
from audiolvm.nn.source import eval_generator, fit_frames, frames_to_samples, log_f0_feature


def exp_sigmoid(x: torch.Tensor, exponent: float = math.log(10.0), max_value: float = 2.0) -> torch.Tensor:
    """DDSP's positive output nonlinearity: ``max_value * sigmoid(x) ** exponent + 1e-7`` (a scaled sigmoid on
    a log scale, so amplitudes span several decades without exploding)."""
    return max_value * torch.sigmoid(x) ** exponent + 1e-7


def factor_strides(factor: int) -> list[int]:
    """``factor`` as upsampling strides of 2 and 4 (largest first), e.g. 4 -> [4], 8 -> [4, 2], 6 -> [2, 3]."""
    if factor < 1:
        raise UsageError(f"factor must be >= 1, got {factor}")
    strides, rest = [], factor
    for s in (4, 2, 3, 5, 7):
        while rest % s == 0 and rest > 1:
            strides.append(s)
            rest //= s
    if rest > 1:
        strides.append(rest)
    return strides


class HarmonicNoiseSynth(nn.Module):
    """Frame parameters -> audio. No weights.

    Args:
        sample_rate: output rate.
        hop: samples between parameter frames (frame ``n`` sits at sample ``n * hop``).
        harmonics: number of sines.
        noise_bands: linear frequency bands of the noise filter (0 .. Nyquist).

    ``params : Tensor[B x (1 + harmonics + noise_bands) x F]`` are raw network outputs: loudness, harmonic
    logits, noise band magnitudes. ``f0``, ``voiced : Tensor[B x T]`` are at the sample rate. In eval mode
    the noise comes from a fixed seed, so decoding is deterministic.
    """

    window: torch.Tensor  # buffer (n_fft,), registered in __init__

    def __init__(self, sample_rate: int, hop: int, harmonics: int = 80, noise_bands: int = 65) -> None:
        super().__init__()
        if min(sample_rate, hop, harmonics, noise_bands) < 1:
            raise UsageError(f"HarmonicNoiseSynth: sample_rate={sample_rate}, hop={hop}, harmonics={harmonics}, "
                             f"noise_bands={noise_bands}; each must be >= 1")
        self.sample_rate, self.hop, self.harmonics, self.noise_bands = sample_rate, hop, harmonics, noise_bands
        self.n_fft = 4 * hop
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    @property
    def channels(self) -> int:
        return 1 + self.harmonics + self.noise_bands

    def _noise(self, shape: tuple[int, ...], ref: torch.Tensor) -> torch.Tensor:
        gen = eval_generator(ref, self.training)
        return torch.rand(shape, device=ref.device, dtype=ref.dtype, generator=gen) * 2 - 1

    def harmonic(self, loudness: torch.Tensor, logits: torch.Tensor, f0: torch.Tensor,
                 voiced: torch.Tensor) -> torch.Tensor:
        """``loudness : Tensor[B x F]``, ``logits : Tensor[B x H x F]`` (raw), ``f0``, ``voiced : Tensor[B x T]``
        -> the sum of sines ``Tensor[B x T]``."""
        length = f0.shape[-1]
        k = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=f0.dtype)[None, :, None]  # (1, H, 1)
        f0_frames = fit_frames(f0[:, :: self.hop], logits.shape[-1])  # (B, F)
        audible = k * f0_frames[:, None] < self.sample_rate / 2  # (B, H, F)
        dist = torch.softmax(logits.masked_fill(~audible, -1e4), dim=1) * audible  # (B, H, F)
        amps = frames_to_samples(exp_sigmoid(loudness)[:, None] * dist, self.hop, length)  # (B, H, T)
        with torch.no_grad():  # the oscillators, no weights: phase accumulated in float64 (long inputs), wrapped
            phase = torch.remainder(2 * math.pi * torch.cumsum(f0.double() / self.sample_rate, dim=-1), 2 * math.pi)
            sines = torch.sin(k * phase.to(amps.dtype)[:, None])  # (B, H, T)
        return (amps * sines).sum(1) * voiced

    def noise(self, bands: torch.Tensor, length: int) -> torch.Tensor:
        """``bands : Tensor[B x N x F]`` (raw) -> white noise filtered by those magnitudes, ``Tensor[B x T]``."""
        mags = exp_sigmoid(bands)  # (B, N, F)
        bins = self.n_fft // 2 + 1
        frames = length // self.hop + 1  # torch.stft's frame count (center=True)
        mags = F.interpolate(mags.transpose(1, 2), size=bins, mode="linear", align_corners=True)  # (B, F, bins)
        mags = fit_frames(mags.transpose(1, 2), frames)  # (B, bins, frames)
        white = self._noise((mags.shape[0], length), mags)
        spec = torch.stft(white, self.n_fft, self.hop, window=self.window, return_complex=True)  # (B, bins, frames)
        return torch.istft(spec * mags, self.n_fft, self.hop, window=self.window, length=length)

    def forward(self, params: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        if params.shape[1] != self.channels:
            raise UsageError(f"params must have 1 + {self.harmonics} + {self.noise_bands} = {self.channels} "
                             f"channels, got {params.shape[1]}")
        h = self.harmonics
        harm = self.harmonic(params[:, 0], params[:, 1 : 1 + h], f0, voiced)
        return (harm + self.noise(params[:, 1 + h :], f0.shape[-1]))[:, None]  # (B, 1, T)


class HarmonicNoiseDecoder(nn.Module):
    """Codes -> audio through :class:`HarmonicNoiseSynth`: ``z : Tensor[B x in_ch x N]`` -> ``Tensor[B x 1 x
    N * hop]``, ``hop = prod(strides) * frame_hop``.

    A :class:`ConvDecoder1d` upsamples the codes by ``strides`` to the F0 frame rate; it takes the speaker vector
    ``c`` (``cond_dim > 0``) in every stage and, as its "excitation", normalised ln F0 and voicing at the frame
    rate; residual blocks at the frame rate follow, then a conv to the synth's parameters. The decoder's ``source``
    argument is F0 in Hz and voicing at the sample rate, ``Tensor[B x 2 x N * hop]`` (what
    :meth:`PitchConditioner.excitation` returns for this decoder), so it plugs into every decoding method unchanged.
    """

    def __init__(self, in_ch: int, width: int, strides: Sequence[int], depth: int, frame_hop: int,
                 sample_rate: int, harmonics: int = 80, noise_bands: int = 65, dilation_growth: int = 3,
                 cond_dim: int = 0, cond_mode: str = "film") -> None:
        super().__init__()
        self.synth = HarmonicNoiseSynth(sample_rate, frame_hop, harmonics, noise_bands)
        self.net = ConvDecoder1d(in_ch, width, width, strides, depth, dilation_growth,
                                 cond_dim=cond_dim, cond_mode=cond_mode, source_dim=2)
        # after the F0 feature joins at the frame rate: residual blocks, so the harmonic amplitudes can depend on F0
        # non-linearly (the envelope is sampled at k * F0), then the synth's parameters
        self.post = ResidualStack(width, depth, dilation_growth)
        self.out = nn.Conv1d(width, self.synth.channels, 3, padding=1)
        init_waveform_convs(self.post)
        init_waveform_convs(self.out)
        with torch.no_grad():  # start at speech level: harmonics sum to RMS ~0.4 / sqrt(2 H), noise RMS ~0.02
            out_bias = self.out.bias
            assert out_bias is not None  # nn.Conv1d's default bias=True
            out_bias[1 + harmonics :] = -1.5
        self.frame_hop = frame_hop

    @property
    def hop(self) -> int:
        return self.net.hop * self.frame_hop

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                source: torch.Tensor | None = None) -> torch.Tensor:
        length = z.shape[-1] * self.hop
        if source is None or source.shape[1:] != (2, length):
            raise UsageError(f"this decoder takes F0 and voicing at the sample rate, an excitation Tensor[B x 2 x "
                             f"{length}] (N * hop samples); got {None if source is None else tuple(source.shape)}")
        f0, voiced = source[:, 0].float().clamp_min(1.0), source[:, 1].float()
        frames = source[..., :: self.frame_hop]  # (B, 2, N * net.hop)
        feats = torch.stack([log_f0_feature(frames[:, 0], frames[:, 1]), frames[:, 1]], dim=1).to(z.dtype)
        params = self.out(self.post(self.net(z, c, feats)))  # (B, channels, frames)
        return self.synth(params.float(), f0, voiced)
