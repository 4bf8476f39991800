"""STFT / log-mel features and the multi-resolution STFT loss."""

from __future__ import annotations

import librosa
import numpy as np
import torch

from audiolvm.core.features import LogMel, stft_magnitude
from audiolvm.losses import MultiResolutionSTFTLoss


def test_log_mel_matches_librosa() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32) * 0.1
    ours = LogMel(16000, n_fft=512, hop_length=128, n_mels=40)(torch.from_numpy(x)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=128, n_mels=40, power=2.0)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, np.log(ref + 1e-5), atol=1e-3)


def test_stft_magnitude_of_a_sine_peaks_at_its_bin() -> None:
    t = torch.arange(16000) / 16000
    mag = stft_magnitude(torch.sin(2 * torch.pi * 1000 * t)[None], n_fft=512, hop_length=128)
    assert mag.shape == (1, 257, 126)
    assert int(mag[0, :, 60].argmax()) == round(1000 / (16000 / 512))


def test_mr_stft_loss_zero_for_identical_and_grows_with_noise() -> None:
    loss = MultiResolutionSTFTLoss([256, 128], [64, 32], [256, 128])
    x = torch.randn(2, 1, 4000)
    same = loss(x, x)
    assert float(same["sc"]) < 1e-6 and float(same["logmag"]) < 1e-6
    small = loss(x + 0.01 * torch.randn_like(x), x)
    large = loss(x + 0.3 * torch.randn_like(x), x)
    assert 0 < float(small["sc"]) < float(large["sc"])
    assert 0 < float(small["logmag"]) < float(large["logmag"])


def test_mr_stft_loss_has_finite_gradient_on_silence() -> None:
    pred = torch.zeros(1, 1, 2000, requires_grad=True)
    out = MultiResolutionSTFTLoss([256], [64], [256])(pred, torch.randn(1, 1, 2000))
    (out["sc"] + out["logmag"]).backward()
    assert torch.isfinite(pred.grad).all()
