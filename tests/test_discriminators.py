"""Audio discriminators (audiolvm.nn.discriminators) and adversarial losses (audiolvm.losses.adversarial)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiolvm.losses.adversarial import (
    ADVERSARIAL_LOSSES,
    feature_matching,
    hinge_d_loss,
    hinge_g_loss,
    ls_d_loss,
    ls_g_loss,
)
from audiolvm.models.adversarial import Discriminators
from audiolvm.nn.discriminators import (
    DAC_BANDS,
    MultiBandSTFTDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
    MultiScaleWaveformDiscriminator,
    PeriodDiscriminator,
    band_edges,
)
from tests.contracts import DiscriminatorContract

pytestmark = pytest.mark.usefixtures("one_thread")


class TestMultiPeriod(DiscriminatorContract):
    sub_discriminators = 5

    def make_model(self) -> nn.Module:
        return MultiPeriodDiscriminator()


class TestMultiScaleWaveform(DiscriminatorContract):
    sub_discriminators = 3

    def make_model(self) -> nn.Module:
        return MultiScaleWaveformDiscriminator()


class TestMultiScaleSTFT(DiscriminatorContract):
    sub_discriminators = 3

    def make_model(self) -> nn.Module:
        return MultiScaleSTFTDiscriminator(channels=8)


class TestMultiBandSTFT(DiscriminatorContract):
    sub_discriminators = 3

    def make_model(self) -> nn.Module:
        return MultiBandSTFTDiscriminator(channels=8)


class TestDiscriminatorSet(DiscriminatorContract):
    """What the adversarial objective holds: several discriminators, their outputs in one flat list."""

    sub_discriminators = 5 + 3

    def make_model(self) -> nn.Module:
        return Discriminators({"mpd": MultiPeriodDiscriminator(), "ms-stft": MultiScaleSTFTDiscriminator(channels=8)})


@pytest.mark.parametrize("period", [2, 3, 5])
def test_period_discriminator_column_sees_only_samples_period_apart(period: int) -> None:
    torch.manual_seed(0)
    length = 2040  # a multiple of 2, 3 and 5: no padding
    d = PeriodDiscriminator(period)
    x = torch.randn(2, 1, length, requires_grad=True)
    ((logits, _),) = d(x)
    assert logits.shape[-1] == period
    index = torch.arange(length)
    for c in range(period):
        (grad,) = torch.autograd.grad(logits[0, 0, :, c].sum(), x, retain_graph=True)
        assert (grad[1] == 0).all()  # batch items are independent
        nonzero = grad[0, 0] != 0
        assert not nonzero[index % period != c].any()
        assert nonzero[index % period == c].sum() > length // period // 2


def test_period_fold_pads_short_and_uneven_inputs() -> None:
    d = PeriodDiscriminator(7)
    x = torch.arange(10.0).view(1, 1, 10)
    folded = d.fold(x)
    assert folded.shape == (1, 1, 2, 7)
    assert folded.flatten()[:10].tolist() == x.flatten().tolist()
    assert folded.flatten()[10:].tolist() == [8.0, 7.0, 6.0, 5.0]  # reflect padding
    assert d.fold(torch.ones(1, 1, 3)).flatten().tolist() == [1.0] * 3 + [0.0] * 4  # too short: zeros


def test_band_edges_cover_every_bin_exactly_once() -> None:
    for n_bins in range(20, 1030, 13):
        for bands in (DAC_BANDS, ((0.0, 0.3), (0.3, 1.0)), ((0.0, 1.0),)):
            counts = torch.zeros(n_bins, dtype=torch.long)
            for lo, hi in band_edges(n_bins, bands):
                assert 0 <= lo < hi <= n_bins
                counts[lo:hi] += 1
            assert (counts == 1).all(), (n_bins, bands)
    with pytest.raises(ValueError):
        band_edges(129, ((0.0, 0.5), (0.6, 1.0)))  # gap
    with pytest.raises(ValueError):
        band_edges(129, ((0.0, 0.5), (0.4, 1.0)))  # overlap
    with pytest.raises(ValueError):
        band_edges(5, DAC_BANDS)  # first band would be empty


def test_multiband_discriminator_bands_match_its_spectrogram() -> None:
    d = MultiBandSTFTDiscriminator(channels=4)
    x = torch.randn(1, 1, 2048)
    outs = d(x)
    for sub, (logits, features) in zip(d.discriminators, outs, strict=True):
        n_bins = sub.spectrogram(x).shape[-1]
        assert n_bins == sub.n_fft // 2 + 1
        counts = torch.zeros(n_bins, dtype=torch.long)
        for lo, hi in sub.bands:
            counts[lo:hi] += 1
        assert (counts == 1).all()
        # each band is shrunk by three stride-2 convs, then the bands are concatenated along frequency
        widths = [hi - lo for lo, hi in sub.bands]
        assert logits.shape[-1] == sum(math.ceil(w / 8) for w in widths)
        assert len(features) == 5 * len(sub.bands)


REAL = [torch.tensor([2.0, 0.5, -1.0]), torch.tensor([[1.0, 0.0]])]
FAKE = [torch.tensor([-2.0, 0.0, 0.5]), torch.tensor([[-1.0, 1.0]])]


def test_losses_equal_hand_computed_values() -> None:
    # sub-discriminator 1, then 2, then the mean of the two
    hinge_d = ((0 + 0.5 + 2) / 3 + (0 + 1 + 1.5) / 3 + (0 + 1) / 2 + (0 + 2) / 2) / 2
    hinge_g = ((3 + 1 + 0.5) / 3 + (2 + 0) / 2) / 2
    ls_d = ((1 + 0.25 + 4) / 3 + (4 + 0 + 0.25) / 3 + (0 + 1) / 2 + (1 + 1) / 2) / 2
    ls_g = ((9 + 1 + 0.25) / 3 + (4 + 0) / 2) / 2
    assert hinge_d_loss(REAL, FAKE).item() == pytest.approx(hinge_d)
    assert hinge_g_loss(FAKE).item() == pytest.approx(hinge_g)
    assert ls_d_loss(REAL, FAKE).item() == pytest.approx(ls_d)
    assert ls_g_loss(FAKE).item() == pytest.approx(ls_g)
    assert ADVERSARIAL_LOSSES["hinge"] == (hinge_d_loss, hinge_g_loss)
    assert ADVERSARIAL_LOSSES["ls"] == (ls_d_loss, ls_g_loss)


def test_hinge_d_loss_is_zero_past_the_margins() -> None:
    torch.manual_seed(0)
    real = [1 + torch.rand(2, 1, 7), 1 + torch.rand(2, 1, 3, 4)]
    fake = [-1 - torch.rand(2, 1, 7), -1 - torch.rand(2, 1, 3, 4)]
    assert hinge_d_loss(real, fake).item() == 0.0
    fake[1][0, 0, 0, 0] = -0.5  # one fake patch inside the margin
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 / 24 / 2)  # 1 of 24 patches, 2 sub-discriminators


def test_feature_matching() -> None:
    torch.manual_seed(0)
    real = [[torch.randn(2, 4, 9), torch.randn(2, 4, 5)], [torch.randn(2, 3, 6, 2)]]
    same = [[f.clone() for f in feats] for feats in real]
    assert feature_matching(real, same).item() == 0.0
    other = [[f + 0.1 * torch.randn_like(f) for f in feats] for feats in real]
    assert feature_matching(real, other).item() > 0
    # relative L1: zero fake features give 1 per layer, whatever the real scale
    zeros = [[torch.zeros_like(f) for f in feats] for feats in real]
    assert feature_matching(real, zeros).item() == pytest.approx(1.0)
    # per layer, then per sub-discriminator: ((1 + 3) / 2 + 0) / 2
    r = [[torch.ones(3), torch.ones(5)], [torch.ones(2)]]
    f = [[torch.zeros(3), torch.full((5,), 4.0)], [torch.ones(2)]]
    assert feature_matching(r, f).item() == pytest.approx(1.0)


def test_feature_matching_detaches_real_features() -> None:
    real = [[torch.randn(2, 5, requires_grad=True)]]
    fake = [[torch.randn(2, 5, requires_grad=True)]]
    feature_matching(real, fake).backward()
    assert real[0][0].grad is None
    assert fake[0][0].grad is not None and (fake[0][0].grad != 0).any()
