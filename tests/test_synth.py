"""The harmonic-plus-noise decoder (``model.pitch.synth: hpn``): the synthesizer's oscillators, harmonic mask and
noise filter, the decoder's contract, and a pitch-aware model built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiolvm.builders import build_model
from audiolvm.config import ConfigError, ModelConfig, PitchConfig, SpeakerConfig, VQConfig
from audiolvm.models.pitch import Pitch
from audiolvm.nn.source import frames_to_samples
from audiolvm.nn.synth import HarmonicNoiseDecoder, HarmonicNoiseSynth, factor_strides

pytestmark = pytest.mark.usefixtures("one_thread")
RATE, HOP, H, BANDS = 16000, 64, 40, 33


def spectrum(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    a = x.detach().double().numpy().ravel()
    return np.fft.rfftfreq(len(a), 1 / RATE), np.abs(np.fft.rfft(a * np.hanning(len(a))))


def params(loud: float, harm: torch.Tensor, noise: float, frames: int) -> torch.Tensor:
    """Raw synth parameters, constant over ``frames``: loudness, harmonic logits ``harm : Tensor[H]``, noise level."""
    p = torch.cat([torch.tensor([loud]), harm, torch.full((BANDS,), noise)])
    return p[None, :, None].expand(1, -1, frames).clone()


def synth_out(p: torch.Tensor, f0: float, voiced: float, length: int = RATE) -> torch.Tensor:
    s = HarmonicNoiseSynth(RATE, HOP, H, BANDS).eval()
    return s(p, torch.full((1, length), f0), torch.full((1, length), voiced))[0, 0]


@pytest.mark.parametrize(("f0", "k"), [(110.0, 1), (180.0, 1), (150.0, 3)])
def test_one_harmonic_sounds_at_k_times_f0(f0: float, k: int) -> None:
    harm = torch.full((H,), -30.0)
    harm[k - 1] = 30.0  # all the harmonic energy on the k-th sine
    y = synth_out(params(0.0, harm, -30.0, RATE // HOP + 1), f0, 1.0)
    freqs, mag = spectrum(y)
    assert freqs[np.argmax(mag)] == pytest.approx(k * f0, rel=0.01)
    assert float(y.abs().max()) == pytest.approx(2 * 0.5 ** math.log(10.0), rel=0.02)  # exp_sigmoid(0) amplitude


def test_unvoiced_frames_have_no_sines_and_harmonics_above_nyquist_are_removed() -> None:
    p = params(0.0, torch.zeros(H), -30.0, RATE // HOP + 1)
    assert float(synth_out(p, 150.0, 0.0).abs().max()) < 1e-4  # voicing 0: silence (noise is off)
    freqs, mag = spectrum(synth_out(p, 1000.0, 1.0))  # harmonics 8.. are at or above 8 kHz
    assert mag[freqs > 7600].max() < 1e-3 * mag.max()
    peaks = [mag[np.argmin(np.abs(freqs - 1000.0 * k))] for k in range(1, 8)]  # the 7 audible ones share A
    assert max(peaks) / min(peaks) < 1.05


def test_noise_filter_puts_the_energy_in_the_chosen_bands() -> None:
    p = params(-30.0, torch.zeros(H), -30.0, RATE // HOP + 1)
    p[0, 1 + H + BANDS // 2 :] = 0.0  # only the upper half of the bands (above ~4 kHz) open
    y = synth_out(p, 150.0, 0.0)
    freqs, mag = spectrum(y)
    power = mag**2
    assert power[freqs > 4500].sum() > 50 * power[freqs < 3500].sum()
    assert float(y.std()) > 0.05
    assert torch.equal(y, synth_out(p, 150.0, 0.0))  # eval mode: the noise is seeded


def test_frames_to_samples_interpolates_between_frame_positions() -> None:
    frames = torch.tensor([[0.0, 2.0, 6.0]])
    out = frames_to_samples(frames, 4, 12)
    assert torch.allclose(out[0, ::4], frames[0])
    assert torch.allclose(out[0], torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 6, 6, 6.0]))


@pytest.mark.parametrize(("factor", "strides"), [(1, []), (4, [4]), (8, [4, 2]), (6, [2, 3]), (11, [11])])
def test_factor_strides(factor: int, strides: list[int]) -> None:
    assert factor_strides(factor) == strides and math.prod(factor_strides(factor)) == factor


def test_decoder_needs_f0_at_the_sample_rate() -> None:
    dec = HarmonicNoiseDecoder(8, 16, [4], 1, HOP, RATE, H, BANDS, cond_dim=4)
    z, c = torch.randn(2, 8, 5), torch.randn(2, 4)
    assert dec.hop == 4 * HOP
    with pytest.raises(ValueError, match="F0 and voicing"):
        dec(z, c, torch.zeros(2, 2, 100))
    src = torch.stack([torch.full((2, 5 * 4 * HOP), 120.0), torch.ones(2, 5 * 4 * HOP)], dim=1)
    assert dec(z, c, src).shape == (2, 1, 5 * 4 * HOP)


def hpn_model(synth: str = "hpn") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(strides=[[4, 16]], width=16, depth=1, vq=VQConfig(num_codes=[32], dim=16),
                      speaker=SpeakerConfig(levels=[0], dim=8, names=["low", "high"]),
                      pitch=PitchConfig(levels=[0], hop=HOP, synth=synth, harmonics=H, noise_bands=BANDS,
                                        synth_width=16, stats={"low": [math.log(100.0), 0.1],
                                                               "high": [math.log(220.0), 0.1], "*": [5.0, 0.4]}))
    return build_model(cfg, RATE).eval()


def test_pitch_model_with_the_synth_decodes_at_the_f0_it_is_given() -> None:
    """An untrained model's voiced output is a sum of sines at multiples of the F0 handed to it: raising the F0
    moves the spectrum's harmonic comb (its strongest peak sits on a multiple of the new F0). The noise bands are
    closed (bias -10), so what sounds is the harmonic part."""
    model = hpn_model()
    dec = model.levels[0].decoder
    assert isinstance(dec, HarmonicNoiseDecoder) and model.pitch.source is None
    with torch.no_grad():
        dec.out.bias[1 + H :] = -10.0
    x = torch.randn(1, 1, RATE) * 0.1
    n = RATE // HOP + 1
    for f0 in (100.0, 230.0):
        with torch.no_grad():
            y = model.reconstruct(x, 0, torch.tensor([0]), pitch=Pitch(torch.full((1, n), f0), torch.ones(1, n)))
        freqs, mag = spectrum(y[0, 0])
        peak = freqs[np.argmax(mag)]
        assert abs(peak / f0 - round(peak / f0)) < 0.02


def test_unknown_synth_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.pitch.synth"):
        hpn_model("ddsp")
