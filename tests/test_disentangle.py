"""MIG and the FactorVAE score: perfect codes score 1, random codes score chance, and the estimators'
building blocks (binning, plug-in mutual information) behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolvm.data.sprites import DSpritesStyle
from audiolvm.eval.disentangle import (
    discretize,
    entropy,
    factor_vae_score,
    mig,
    mig_from_codes,
    mutual_information,
)

torch.set_num_threads(1)


class ToySource:
    """Factor classes are their own 'images' ([N x F] floats), so a representation can be any function of them."""

    factor_sizes = (3, 6, 10, 20)

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, num) for s in self.factor_sizes], axis=1)

    def images_of(self, factors: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(factors, dtype=torch.float32)


def random_code(dim: int, seed: int = 0):  # noqa: ANN201 - a represent callable
    gen = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(len(x), dim, generator=gen)


def test_discretize_and_information_basics() -> None:
    codes = np.array([[0.0, 5.0], [1.0, 5.0], [0.5, 5.0], [0.999, 5.0]])
    binned = discretize(codes, bins=2)
    assert binned[:, 0].tolist() == [0, 1, 1, 1] and binned[:, 1].tolist() == [0, 0, 0, 0]  # constant -> bin 0
    a = np.repeat(np.arange(4), 24)
    assert mutual_information(a, a) == pytest.approx(entropy(a)) == pytest.approx(np.log(4))
    assert mutual_information(a, np.tile(np.arange(2), 48)) == pytest.approx(0.0, abs=1e-12)  # independent


def test_mig_ground_truth_is_about_one_and_random_about_zero() -> None:
    source = ToySource()
    truth = mig(lambda x: x, source, num_samples=5000, seed=0)
    # each factor has <= 20 classes, so binning is lossless; the gap loses only the plug-in bias of
    # independent pairs, about (20 - 1) * (20 - 1) / (2 * 5000) = 0.036 nats against H >= log 3
    assert truth.score > 0.95 and truth.per_factor.min() > 0.9
    assert truth.mutual_info.shape == (4, 4) and np.allclose(truth.entropy, np.log(source.factor_sizes), atol=0.02)
    noise = mig(random_code(8), source, num_samples=5000, seed=0)
    assert noise.score < 0.05


def test_mig_is_invariant_to_permutation_and_scale_but_punishes_duplicates() -> None:
    source = ToySource()
    truth = mig(lambda x: x, source, num_samples=3000, seed=1).score
    permuted = mig(lambda x: x[:, [2, 0, 3, 1]] * torch.tensor([3.0, -1.0, 0.1, 7.0]), source,
                   num_samples=3000, seed=1).score
    assert permuted == pytest.approx(truth, abs=1e-9)
    # two latents both hold factor 0: its gap vanishes, the other three stay, so MIG ~ 3/4 of the perfect one
    duplicated = mig(lambda x: torch.cat([x, x[:, :1] * 2 + 1], 1), source, num_samples=3000, seed=1)
    assert duplicated.per_factor[0] == pytest.approx(0.0, abs=1e-9)
    assert duplicated.score == pytest.approx(truth - truth / 4, abs=0.03)


def test_mig_from_codes_checks_lengths() -> None:
    with pytest.raises(ValueError, match="3 codes for 4 factor rows"):
        mig_from_codes(np.zeros((3, 2)), np.zeros((4, 1), dtype=np.int64))


def test_factor_vae_ground_truth_scores_one_even_rescaled_with_a_dead_latent() -> None:
    source = ToySource()
    scale = torch.tensor([1.0, 100.0, 0.5, 3.0])
    result = factor_vae_score(lambda x: torch.cat([x * scale, torch.zeros(len(x), 1)], 1), source,
                              num_train=300, num_eval=300, num_variance_estimate=2000, seed=0)
    assert result.score == 1.0 and result.train_accuracy == 1.0
    assert result.active_dims.tolist() == [0, 1, 2, 3]  # the constant latent is pruned (std < 0.05)
    assert result.classifier[:4].tolist() == [0, 1, 2, 3] and result.votes[4].sum() == 0


def test_factor_vae_random_code_scores_chance() -> None:
    source = ToySource()
    result = factor_vae_score(random_code(8, seed=3), source, num_train=500, num_eval=1000,
                              num_variance_estimate=1000, seed=0)
    # the vote's factor is independent of the argmin latent, so the held-out accuracy has mean
    # 1/F = 0.25 and std sqrt(0.25 * 0.75 / 1000) = 0.014; 0.07 is five stds
    assert abs(result.score - 1 / len(source.factor_sizes)) < 0.07
    assert result.train_accuracy >= result.score - 0.07  # majority votes fit their own training votes


def test_factor_vae_all_latents_pruned_scores_zero() -> None:
    result = factor_vae_score(lambda x: torch.full((len(x), 3), 0.5), ToySource(), num_train=10, num_eval=10,
                              num_variance_estimate=100)
    assert result.score == 0.0 and len(result.active_dims) == 0


def test_mig_on_sprites_with_a_centroid_code() -> None:
    """A hand-made code (centroid column, centroid row) of dSprites-style images captures the positions only."""

    def centroid(images: torch.Tensor) -> torch.Tensor:
        mass = images[:, 0]  # (N, 64, 64)
        grid = torch.arange(64, dtype=torch.float32)
        total = mass.sum((1, 2))
        return torch.stack([(mass.sum(1) * grid).sum(1) / total, (mass.sum(2) * grid).sum(1) / total], 1)

    result = mig(centroid, DSpritesStyle(), num_samples=2000, seed=0, batch_size=256)
    # factors: shape, scale, orientation, pos_x, pos_y; 32 positions in 20 bins cap the positions near 0.85
    assert result.per_factor[3] > 0.6 and result.per_factor[4] > 0.6
    assert result.per_factor[:3].max() < 0.1
    assert result.mutual_info[0, 3] > 5 * result.mutual_info[1, 3]  # the column code knows pos_x, not the row one
