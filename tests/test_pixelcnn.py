"""Gated PixelCNN priors and masked convolutions: the prior contract (tests/contracts.py), exact receptive fields
(through gradients), no blind spot, windowed logits, conditioning errors, and learning synthetic code languages
whose exact entropy is known."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from audiolvm.models.priors.base import Prior
from audiolvm.models.priors.pixelcnn import GatedPixelCNN1d, GatedPixelCNN2d
from audiolvm.nn.masked import CausalConv1d, HorizontalStackConv2d, VerticalStackConv2d, shift_down
from tests.contracts import PriorContract

K = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def input_gradient_support(model: Prior, codes: torch.Tensor, position: tuple[int, ...]) -> torch.Tensor:
    """Bool map over code positions: does the logit vector at ``position`` depend on that input?"""
    emb = model.embed(codes).detach().requires_grad_(True)  # (1, *S, C)
    logits = model.logits_from_embeddings(emb)  # (1, *S, K)
    direction = torch.randn(K, generator=torch.Generator().manual_seed(0))
    (logits[(0, *position)] @ direction).backward()
    return emb.grad[0].abs().sum(-1) > 0  # (*S,)


# ----------------------------------------------------------------------------- the contract


class TestGatedPixelCNN1d(PriorContract):
    def make_prior(self) -> GatedPixelCNN1d:
        return GatedPixelCNN1d(K, channels=8, layers=2, num_labels=3)  # receptive field 9 < 12: sampling windows


class TestGatedPixelCNN2d(PriorContract):
    shape = (6, 5)

    def make_prior(self) -> GatedPixelCNN2d:
        return GatedPixelCNN2d(K, channels=8, layers=2, num_labels=3)  # 3 rows seen above < 6: sampling windows


# ----------------------------------------------------------------------------- masked convolutions


def conv_support(conv: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                 out_pos: tuple[int, ...]) -> torch.Tensor:
    x = torch.randn(1, 2, *shape, requires_grad=True)
    conv(x)[(0, 0, *out_pos)].backward()
    return x.grad[0].abs().sum(0) > 0


@pytest.mark.parametrize("mask, expected", [("A", [4, 6, 8]), ("B", [6, 8, 10])])
def test_causal_conv1d_sees_exactly_the_dilated_past(mask: str, expected: list[int]) -> None:
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=2, mask=mask)
    support = conv_support(conv, (16,), (10,) if mask == "B" else (9,))
    assert support.nonzero().flatten().tolist() == expected


def test_stack_convolutions_see_their_half_planes() -> None:
    torch.manual_seed(0)
    vertical = VerticalStackConv2d(2, 3, kernel_size=5)
    seen = conv_support(lambda x: shift_down(vertical(x)), (8, 8), (4, 4))
    rows, cols = seen.nonzero().T
    assert set(rows.tolist()) == {1, 2, 3} and set(cols.tolist()) == {2, 3, 4, 5, 6}  # rows above only
    assert seen.sum() == 15
    for mask, first in [("A", 1), ("B", 2)]:
        seen = conv_support(HorizontalStackConv2d(2, 3, kernel_size=5, mask=mask), (8, 8), (4, 4))
        assert [tuple(p) for p in seen.nonzero().tolist()] == [(4, c) for c in range(first, first + 3)]


# ----------------------------------------------------------------------------- causality, receptive field


def test_1d_logits_depend_on_exactly_the_receptive_field_before_t() -> None:
    torch.manual_seed(0)
    model = GatedPixelCNN1d(K, channels=32, layers=3, kernel_size=2, dilation_growth=2)
    assert model.receptive_field == 2 + 1 * (1 + 2 + 4)
    codes = torch.randint(0, K, (1, 24))
    for t in [0, 1, 5, 12, 23]:
        support = input_gradient_support(model, codes, (t,))
        expected = torch.zeros(24, dtype=torch.bool)
        expected[max(0, t - model.receptive_field) : t] = True
        assert torch.equal(support, expected), f"t={t}: depends on {support.nonzero().flatten().tolist()}"


def pixelcnn2d_receptive_field(i: int, j: int, height: int, width: int, reach: int) -> torch.Tensor:
    """Rows ``i-reach .. i-1`` within ``reach - 1`` columns of j, and row i up to ``reach`` pixels left."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    above = (rows < i) & (rows >= i - reach) & ((cols - j).abs() <= reach - 1)
    left = (rows == i) & (cols < j) & (cols >= j - reach)
    return above | left


@pytest.mark.parametrize("pixel", [(0, 0), (0, 5), (1, 0), (3, 3), (4, 6), (7, 7)])
def test_2d_logits_have_no_blind_spot(pixel: tuple[int, int]) -> None:
    """Pixel (i, j) depends on every earlier raster position in its receptive field (including the
    up-right pixels a masked PixelCNN misses) and on nothing at or after (i, j)."""
    torch.manual_seed(0)
    layers = 3
    model = GatedPixelCNN2d(K, channels=32, layers=layers, kernel_size=3)
    assert model.receptive_rows == 1 + layers
    codes = torch.randint(0, K, (1, 8, 8))
    support = input_gradient_support(model, codes, pixel)
    i, j = pixel
    expected = pixelcnn2d_receptive_field(i, j, 8, 8, reach=layers + 1)
    assert torch.equal(support, expected), f"pixel {pixel}:\n{support.int()}"
    if i > 0 and j < 6:
        assert support[i - 1, j + 1] and support[i - 1, j + 2], "blind spot up and to the right"


def test_window_logits_match_full_logits() -> None:
    """Sampling reruns the network on a window; the receptive field claims must make that exact."""
    torch.manual_seed(0)
    model1 = GatedPixelCNN1d(K, channels=8, layers=3, kernel_size=3, dilation_growth=2)
    codes = torch.randint(0, K, (2, 40))
    full = model1.logits(codes)
    t = 35
    window = model1.logits(codes[:, t - model1.receptive_field : t + 1])[:, -1]
    torch.testing.assert_close(window, full[:, t])
    model2 = GatedPixelCNN2d(K, channels=8, layers=2, kernel_size=3)
    codes = torch.randint(0, K, (2, 9, 5))
    full, i = model2.logits(codes), 7
    window = model2.logits(codes[:, i - model2.receptive_rows : i + 1])[:, -1]
    torch.testing.assert_close(window, full[:, i])


# ----------------------------------------------------------------------------- conditioning and errors


def tiny_models(num_labels: int = 0) -> list[tuple[Prior, int | tuple[int, int]]]:
    torch.manual_seed(0)
    return [(GatedPixelCNN1d(K, channels=8, layers=2, num_labels=num_labels), 12),
            (GatedPixelCNN2d(K, channels=8, layers=2, num_labels=num_labels), (4, 5))]


def test_conditioning_errors_name_the_problem_and_the_fix() -> None:
    cond_model, _ = tiny_models(num_labels=2)[0]
    plain_model, _ = tiny_models(num_labels=0)[0]
    codes = torch.randint(0, K, (2, 5))
    with pytest.raises(ValueError, match=r"num_labels=2\) and needs cond\['label'\].*pass cond="):
        cond_model.logits(codes)
    with pytest.raises(ValueError, match=r"num_labels=2\) and needs cond\['label'\]"):
        cond_model.sample(2, 4, progress=False)
    with pytest.raises(ValueError, match=r"LongTensor\[2\]"):
        cond_model.logits(codes, {"label": torch.tensor([0])})
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        cond_model.logits(codes, {"label": torch.tensor([0, 2])})
    # as in the other priors, an unconditional model ignores a label
    assert torch.equal(plain_model.logits(codes, {"label": torch.tensor([0, 1])}), plain_model.logits(codes))
    with pytest.raises(ValueError, match="upper"):
        plain_model.logits(codes, {"upper": codes})


def test_bad_codes_and_lengths_are_clear_errors() -> None:
    model1, model2 = (m for m, _ in tiny_models())
    with pytest.raises(ValueError, match=r"LongTensor\[B x N\]"):
        model1.logits(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"LongTensor\[B x N\]"):
        model1.logits(torch.zeros(2, 3))
    codes = torch.randint(0, K, (2, 7))
    assert torch.equal(model1.logits(codes.int()), model1.logits(codes))  # int32 codes from disk are fine
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        model2.logits(torch.full((1, 3, 3), K))
    with pytest.raises(ValueError, match=r"tuple \(H, W\)"):
        model2.sample(1, 9, progress=False)
    with pytest.raises(ValueError, match="odd kernel_size"):
        GatedPixelCNN2d(K, kernel_size=4)


# ----------------------------------------------------------------------------- learning


def markov_chain(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random transition matrix over K codes and its stationary distribution."""
    transitions = torch.softmax(2 * torch.randn(K, K, generator=torch.Generator().manual_seed(seed)), -1)
    stationary = torch.linalg.matrix_power(transitions, 256)[0]
    return transitions, stationary


def draw_chain(transitions: torch.Tensor, stationary: torch.Tensor, n: int, length: int,
               gen: torch.Generator) -> torch.Tensor:
    codes = torch.empty(n, length, dtype=torch.long)
    codes[:, 0] = torch.multinomial(stationary.expand(n, K), 1, generator=gen).squeeze(-1)
    for t in range(1, length):
        codes[:, t] = torch.multinomial(transitions[codes[:, t - 1]], 1, generator=gen).squeeze(-1)
    return codes


def chain_nll(transitions: torch.Tensor, stationary: torch.Tensor, codes: torch.Tensor) -> float:
    """The true model's NLL per code (nats) of ``codes : LongTensor[B x N]``."""
    logp = stationary.log()[codes[:, 0]].sum() + transitions.log()[codes[:, :-1], codes[:, 1:]].sum()
    return -logp.item() / codes.numel()


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.log()).sum(-1)


def train(model: Prior, batches: Callable[[torch.Generator], tuple[torch.Tensor, dict | None]],
          steps: int) -> Prior:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        codes, cond = batches(gen)
        opt.zero_grad()
        model.loss(codes, cond)["loss"].backward()
        opt.step()
        schedule.step()
    return model.eval()


def test_1d_pixelcnn_reaches_the_entropy_rate_of_a_markov_chain() -> None:
    transitions, stationary = markov_chain(0)
    length = 64
    rate = (stationary * entropy(transitions)).sum().item()
    exact = (entropy(stationary).item() + (length - 1) * rate) / length
    assert exact < entropy(stationary).item() - 0.3, "context must matter for this test to mean anything"
    torch.manual_seed(0)
    model = train(GatedPixelCNN1d(K, channels=16, layers=2, kernel_size=2),
                  lambda g: (draw_chain(transitions, stationary, 64, length, g), None), steps=150)
    held_out = draw_chain(transitions, stationary, 256, length, torch.Generator().manual_seed(2))
    true_nll = chain_nll(transitions, stationary, held_out)
    assert abs(true_nll - exact) < 0.03  # the held-out set is large enough to estimate the entropy
    with torch.no_grad():
        assert model.loss(held_out)["loss"].item() < true_nll + 0.05
    samples = model.sample(64, length, generator=torch.Generator().manual_seed(3), progress=False)
    assert chain_nll(transitions, stationary, samples) == pytest.approx(exact, abs=0.1)


def left_plus_one(n: int, gen: torch.Generator, size: int = 6) -> torch.Tensor:
    """Random first column; every other pixel is its left neighbour + 1 (mod K)."""
    return (torch.randint(0, K, (n, size, 1), generator=gen) + torch.arange(size)) % K  # (n, H, W)


def copy_up_two_right(n: int, gen: torch.Generator, size: int = 6) -> torch.Tensor:
    """Pixel (i, j) copies (i-1, j+2), in the blind spot of a masked PixelCNN; row 0 and the last two
    columns are random."""
    codes = torch.randint(0, K, (n, size, size), generator=gen)
    for i in range(1, size):
        codes[:, i, :-2] = codes[:, i - 1, 2:]
    return codes


@pytest.mark.parametrize("pattern, free_pixels, rule", [
    (left_plus_one, 6, lambda s: (s[:, :, 1:] - s[:, :, :-1]) % K == 1),
    (copy_up_two_right, 6 + 2 * 5, lambda s: s[:, 1:, :-2] == s[:, :-1, 2:]),
])
def test_2d_pixelcnn_reaches_the_entropy_of_a_structured_pattern(pattern, free_pixels, rule) -> None:
    exact = free_pixels * math.log(K) / 36  # only the free pixels carry information
    torch.manual_seed(0)
    model = train(GatedPixelCNN2d(K, channels=16, layers=2, kernel_size=3), lambda g: (pattern(32, g), None),
                  steps=200)
    with torch.no_grad():
        nll = model.loss(pattern(256, torch.Generator().manual_seed(2)))["loss"].item()
    assert nll < exact + 0.05
    samples = model.sample(8, (6, 6), generator=torch.Generator().manual_seed(3), progress=False)
    assert rule(samples).float().mean() > 0.95


def test_label_conditional_pixelcnn_separates_two_chains() -> None:
    chains = [markov_chain(10), markov_chain(11)]
    length = 32

    def batch(gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        codes = torch.cat([draw_chain(*chain, 32, length, gen) for chain in chains])
        return codes, {"label": torch.arange(2).repeat_interleave(32)}

    torch.manual_seed(0)
    model = train(GatedPixelCNN1d(K, channels=16, layers=2, kernel_size=2, num_labels=2), batch, steps=150)
    for label, chain in enumerate(chains):
        held_out = draw_chain(*chain, 128, length, torch.Generator().manual_seed(5 + label))
        with torch.no_grad():
            right = model.loss(held_out, {"label": torch.full((128,), label)})["loss"].item()
            wrong = model.loss(held_out, {"label": torch.full((128,), 1 - label)})["loss"].item()
        assert right < chain_nll(*chain, held_out) + 0.05
        assert wrong > right + 0.3
