"""Contract-test mixins (diffusers' ``ModelTesterMixin``): every model family plugs in a tiny model and its inputs
through hooks and gets the same checks.

* :class:`AutoencoderContract`: shapes for random lengths, eval determinism, save/load round trip, a training step
  reaching every parameter, codes round trip. :class:`MultiLevelContract` adapts its hooks to
  :class:`MultiLevelAutoencoder` (a list of levels, speaker ids); :class:`ConditionalContract` to models that take a
  class label with every call (the conditional VAE, M2), and checks that the label matters.
* :class:`ClassifierContract`: logits for random lengths, eval determinism without state changes, save/load round
  trip, a training step reaching every parameter (the speaker classifier).
* :class:`PriorContract`: causality (by gradient and by perturbation), sampling = teacher-forced recomputation,
  determinism under a seed, conditioning, gradients, masked padding, save/load round trip.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.engine.checkpoint import load_weights, save_weights
from audiolvm.models import Autoencoder, AutoencoderOutput, MultiLevelAutoencoder
from audiolvm.models.priors import Prior, sample_logits


class OneThread:
    """Contract tests run tiny models: one intra-op thread per test (more only add overhead, and stall on a busy
    machine); the count is restored afterwards, so a module's other tests keep theirs."""

    @pytest.fixture(autouse=True)
    def _one_thread(self) -> Iterator[None]:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


class WaveInput(OneThread):
    """A model under contract (``make_model``) and its inputs: mono audio (an image model overrides ``make_input``),
    seeded noise per length, at the lengths ``input_lengths`` gives."""

    def make_model(self) -> nn.Module:  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    @staticmethod
    def random_lengths(low: int, high: int, n: int, seed: int) -> list[int]:
        """``n`` seeded lengths in ``[low, high)``."""
        return torch.randint(low, high, (n,), generator=torch.Generator().manual_seed(seed)).tolist()

    def make_input(self, length: int, batch: int = 2) -> torch.Tensor:
        g = torch.Generator().manual_seed(length)
        return 0.3 * torch.randn(batch, 1, length, generator=g)


# ------------------------------------------------------------------------------------------------ autoencoders


class AutoencoderContract(WaveInput):
    """Defaults fit 1-D audio models; image models override ``make_input`` (fixed-size images, ``length``
    only seeds them), ``input_lengths``, ``latent_shape`` and, where the reconstruction does not reach
    every parameter (learned likelihood scales), ``training_loss``.

    The test bodies call the model only through the hooks ``forward_levels``, ``latent_shapes``, ``discrete``,
    ``reconstruct``, ``encode`` and ``decode_codes``, which see every model as a list of levels (one for an
    :class:`Autoencoder`); :class:`MultiLevelContract` overrides them."""

    def input_lengths(self) -> list[int]:
        """Lengths the shape test feeds to ``make_input``."""
        return self.random_lengths(1, 700, 6, seed=1)

    def latent_shape(self, model: Autoencoder, x: torch.Tensor) -> tuple[int, ...]:
        """Expected ``z.shape[2:]`` (and ``codes.shape[1:]``) for input ``x``."""
        return (-(-x.shape[-1] // model.hop),)

    def training_loss(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return sum((out.recon - x).abs().mean() for out in self.forward_levels(model, x))

    # ---- how the tests call the model: one level per output ------------------------------------------------
    def forward_levels(self, model: nn.Module, x: torch.Tensor) -> list[AutoencoderOutput]:
        """The forward pass, one :class:`AutoencoderOutput` per level."""
        return [model(x)]

    def latent_shapes(self, model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
        """``latent_shape`` of every level."""
        return [self.latent_shape(model, x)]

    def discrete(self, model: nn.Module) -> bool:
        return model.bottleneck.discrete

    def reconstruct(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        return [model.reconstruct(x)]

    def encode(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        return [model.encode(x)]

    def decode_codes(self, model: nn.Module, codes: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        """Every level's waveform from ``codes`` (as from :meth:`encode`), cropped to ``x``'s length."""
        return [model.decode_codes(codes[0], length=x.shape[-1])]

    def trained_model(self) -> nn.Module:
        torch.manual_seed(0)
        model = self.make_model()
        model.train()
        self.forward_levels(model, self.make_input(512, batch=4))  # a training forward (VQ initialises from it)
        return model.eval()

    # ---- the contract --------------------------------------------------------------------------------------
    def test_output_shapes_for_random_lengths(self) -> None:
        model = self.trained_model()
        for length in self.input_lengths():
            x = self.make_input(length)
            shapes = self.latent_shapes(model, x)
            outs = self.forward_levels(model, x)
            assert len(outs) == len(shapes)
            for out, shape in zip(outs, shapes, strict=True):
                assert out.recon.shape == x.shape
                assert tuple(out.bottleneck.z.shape[2:]) == shape
                if self.discrete(model):
                    assert out.bottleneck.codes.shape == (x.shape[0], *shape)
            if self.discrete(model):
                assert [tuple(c.shape) for c in self.encode(model, x)] == [(x.shape[0], *s) for s in shapes]

    def test_eval_is_deterministic_and_stateless(self) -> None:
        model = self.trained_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = self.make_input(300)
        for a, b in zip(self.reconstruct(model, x), self.reconstruct(model, x), strict=True):
            assert torch.equal(a, b)
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), f"eval changed {k}"

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        model = self.trained_model()
        save_weights(model.state_dict(), tmp_path / "m.safetensors")
        torch.manual_seed(99)
        fresh = self.make_model().eval()
        fresh.load_state_dict(load_weights(tmp_path / "m.safetensors"))
        x = self.make_input(256)
        for a, b in zip(self.reconstruct(fresh, x), self.reconstruct(model, x), strict=True):
            assert torch.equal(a, b)

    def test_training_steps_reach_every_parameter(self) -> None:
        """Two steps: residual branches start at zero (their inner convs get gradient from step 2)."""
        model = self.trained_model().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        x = self.make_input(256)
        for _ in range(2):
            opt.zero_grad()
            self.training_loss(model, x).backward()
            opt.step()
        unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p.detach())]
        assert not unchanged, f"no gradient reached {unchanged}"

    def test_codes_round_trip(self) -> None:
        model = self.trained_model()
        if not self.discrete(model):
            what = type(getattr(model, "bottleneck", model)).__name__
            pytest.skip(f"{what} is a continuous bottleneck: there are no codes to round-trip")
        x = self.make_input(333)
        decoded = self.decode_codes(model, self.encode(model, x), x)
        for level, (a, b) in enumerate(zip(decoded, self.reconstruct(model, x), strict=True)):
            assert torch.allclose(a, b, atol=1e-6), f"level {level}: {float((a - b).abs().max())}"


class ConditionalContract(AutoencoderContract):
    """:class:`AutoencoderContract` for a model that takes a class label with every call (``model(x, label)``,
    ``model.reconstruct(x, label)``): the hooks pass :meth:`labels`, and one more property holds: another label
    changes every item's reconstruction."""

    num_classes = 3

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """``LongTensor[B]``: every class in turn."""
        return torch.arange(x.shape[0]) % self.num_classes

    def forward_levels(self, model: nn.Module, x: torch.Tensor) -> list[AutoencoderOutput]:
        return [model(x, self.labels(x))]

    def reconstruct(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        return [model.reconstruct(x, self.labels(x))]

    def test_another_label_changes_every_reconstruction(self) -> None:
        model = self.trained_model()
        x = self.make_input(4, batch=self.num_classes)
        label = self.labels(x)
        mean = model.reconstruct(x, label)
        for shift in range(1, self.num_classes):
            other = model.reconstruct(x, (label + shift) % self.num_classes)
            assert ((other - mean).flatten(1).abs().amax(1) > 1e-6).all(), f"label + {shift} changed nothing"


class MultiLevelContract(AutoencoderContract):
    """:class:`AutoencoderContract` for a :class:`MultiLevelAutoencoder`: every level is checked, and a
    speaker-conditioned model is given the training-speaker ids of ``speaker``."""

    def make_model(self) -> MultiLevelAutoencoder:  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def speaker(self, model: MultiLevelAutoencoder, batch: int) -> torch.Tensor | None:
        """Training-speaker ids ``LongTensor[batch]`` for a speaker-conditioned model, else None."""
        if model.speaker is None:
            return None
        return torch.arange(batch) % len(model.speaker_names)

    def latent_shapes(self, model: MultiLevelAutoencoder, x: torch.Tensor) -> list[tuple[int, ...]]:
        return [(-(-x.shape[-1] // hop),) for hop in model.hops]

    def training_loss(self, model: MultiLevelAutoencoder, x: torch.Tensor) -> torch.Tensor:
        """Every level's L1 plus the model-wide terms (speaker encoder, adversary)."""
        out = model(x, self.speaker(model, x.shape[0]))
        return sum((lv.recon - x).abs().mean() for lv in out.levels) + sum(out.losses.values())

    def forward_levels(self, model: MultiLevelAutoencoder, x: torch.Tensor) -> list[AutoencoderOutput]:
        return model(x, self.speaker(model, x.shape[0])).levels

    def discrete(self, model: MultiLevelAutoencoder) -> bool:
        return model.discrete

    def reconstruct(self, model: MultiLevelAutoencoder, x: torch.Tensor) -> list[torch.Tensor]:
        return model.reconstruct(x, speaker=self.speaker(model, x.shape[0]))

    def encode(self, model: MultiLevelAutoencoder, x: torch.Tensor) -> list[torch.Tensor]:
        return model.encode(x)

    def decode_codes(self, model: MultiLevelAutoencoder, codes: list[torch.Tensor],
                     x: torch.Tensor) -> list[torch.Tensor]:
        speaker = self.speaker(model, x.shape[0])
        return [model.decode(codes, level=level, length=x.shape[-1], speaker=speaker)
                for level in range(model.num_levels)]

    def test_reconstructing_one_level_equals_that_level_of_the_full_reconstruction(self) -> None:
        """``reconstruct(x, level=l)`` runs only the encoders and the decoder that level needs."""
        model = self.trained_model()
        x = self.make_input(777)
        speaker = self.speaker(model, x.shape[0])
        for level, full in enumerate(model.reconstruct(x, speaker=speaker)):
            torch.testing.assert_close(model.reconstruct(x, level=level, speaker=speaker), full, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ priors


class PriorContract(OneThread):
    """Every code prior supplies ``make_prior`` (a tiny model; the contract seeds it) and, where they differ from
    the defaults, ``shape`` (one item's code shape: ``(N,)`` or ``(H, W)``, in raster order), ``code_embedding``
    (the module that embeds the codes: the gradient tests read its output), ``make_cond`` and ``cond_ranges``.
    A conditioning input's values are shifted by one (mod its range) to show that it changes the logits."""

    shape: tuple[int, ...] = (12,)
    #: logits at t depend on every code before t (attention), not only on a receptive field (convolutions)
    sees_whole_past: bool = False

    def make_prior(self) -> Prior:  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def code_embedding(self, prior: Prior) -> nn.Module:
        return prior.embed

    def cond_ranges(self, prior: Prior) -> dict[str, int]:
        """The conditioning inputs and how many values each takes."""
        return {"label": prior.num_labels} if prior.num_labels else {}

    def make_cond(self, prior: Prior, batch: int, seed: int = 1) -> dict[str, torch.Tensor] | None:
        """Conditioning for ``batch`` items of up to twice ``shape[0]`` along the first axis (the padding test)."""
        g = torch.Generator().manual_seed(seed)
        return {"label": torch.randint(0, prior.num_labels, (batch,), generator=g)} if prior.num_labels else None

    def sample_length(self) -> int | tuple[int, ...]:
        return self.shape[0] if len(self.shape) == 1 else self.shape

    # ---- helpers -------------------------------------------------------------------------------------------
    def prior(self, seed: int = 0) -> Prior:
        torch.manual_seed(seed)
        return self.make_prior().eval()

    def codes(self, prior: Prior, batch: int, seed: int = 2, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, prior.num_codes, (batch, *(shape or self.shape)), generator=g)

    def sample(self, prior: Prior, n: int, cond: dict | None, seed: int, **kw: float | int | None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return prior.sample(n, self.sample_length(), cond, generator=g, progress=False, **kw)

    def code_gradients(self, prior: Prior, codes: torch.Tensor, cond: dict | None,
                       position: tuple[int, ...]) -> torch.Tensor:
        """``|d logits[0, position] / d embedding|`` summed over channels, ``Tensor[B x *S]`` in code positions.
        The gradient is taken at the code embedding's output inside :meth:`Prior.logits` (a forward hook), so a
        shift or leak anywhere after it shows; a prior that embeds fewer codes (the last one predicts nothing)
        reads zero there."""
        captured: list[torch.Tensor] = []

        def leaf(_module: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
            captured.append(out.detach().requires_grad_(True))
            return captured[-1]

        handle = self.code_embedding(prior).register_forward_hook(leaf)
        try:
            logits = prior.logits(codes, cond)  # (B, *S, K)
        finally:
            handle.remove()
        assert len(captured) == 1, f"the code embedding ran {len(captured)} times in one logits call"
        direction = torch.randn(logits.shape[-1], generator=torch.Generator().manual_seed(3))
        (grad,) = torch.autograd.grad(logits[(0, *position)] @ direction, captured[0])  # (B, *S', C)
        per_code = grad.abs().sum(-1)  # (B, *S')
        missing = codes.shape[1] - per_code.shape[1]
        return F.pad(per_code, [0, 0] * (per_code.dim() - 2) + [0, missing])  # (B, *S)

    # ---- causality -----------------------------------------------------------------------------------------
    def test_logits_at_t_have_no_gradient_from_codes_at_t_and_later(self) -> None:
        """Raster order for code maps; the logits of item 0 do not depend on item 1 either."""
        prior = self.prior()
        codes, cond = self.codes(prior, 2), self.make_cond(prior, 2)
        for t, pos in enumerate(itertools.product(*(range(s) for s in self.shape))):  # raster order
            grad = self.code_gradients(prior, codes, cond, pos)
            seen = grad[0].flatten() > 0  # (prod(S),) in raster order
            assert not torch.any(grad[1] > 0), f"logits of item 0 at {pos} depend on item 1"
            later = (seen[t:].nonzero().flatten() + t).tolist()
            assert not later, f"logits at {pos} depend on the codes at raster positions {later}"
            if self.sees_whole_past:
                assert torch.all(seen[:t]), f"logits at {pos} ignore earlier codes"
            elif t > 0:
                assert torch.any(seen[:t]), f"logits at {pos} depend on no earlier code"

    def test_changing_codes_at_t_and_later_leaves_earlier_logits_unchanged(self) -> None:
        prior = self.prior()
        codes, cond = self.codes(prior, 2), self.make_cond(prior, 2)
        t = codes[0].numel() * 2 // 3  # a raster position
        flat = codes.flatten(1).clone()  # (2, prod(S))
        flat[:, t:] = (flat[:, t:] + 1) % prior.num_codes
        a = prior.logits(codes, cond).flatten(1, -2)  # (2, prod(S), K)
        b = prior.logits(flat.reshape(codes.shape), cond).flatten(1, -2)
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
        assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().amax() > 1e-4, "later logits ignore the changed codes"

    # ---- sampling ------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("top_k,top_p", [(None, None), (5, None), (None, 0.8), (6, 0.9)])
    def test_sampling_equals_teacher_forced_recomputation(self, top_k: int | None, top_p: float | None) -> None:
        """The prior's sampler (KV cache, receptive-field windows) draws what a loop draws that recomputes the
        whole teacher-forced logits at every position, from the same generator."""
        prior, n = self.prior(), 3
        cond = self.make_cond(prior, n)
        got = self.sample(prior, n, cond, seed=5, top_k=top_k, top_p=top_p)
        g = torch.Generator().manual_seed(5)
        want = torch.zeros(n, *self.shape, dtype=torch.long)
        with torch.no_grad():
            for pos in range(want[0].numel()):  # raster order
                logits = prior.logits(want, cond).flatten(1, -2)[:, pos]  # (n, K): sees positions < pos only
                want.view(n, -1)[:, pos] = sample_logits(logits, 1.0, top_k, top_p, g)
        assert torch.equal(got, want)
        assert len(torch.unique(got)) > 2, "a degenerate sample proves little"

    def test_sampling_is_seeded_shaped_and_in_range(self) -> None:
        prior, n = self.prior(), 4
        cond = self.make_cond(prior, n)
        a, b, c = (self.sample(prior, n, cond, seed) for seed in (1, 1, 2))
        assert a.shape == (n, *self.shape) and a.dtype == torch.long
        assert 0 <= int(a.min()) and int(a.max()) < prior.num_codes
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_top_1_sampling_is_greedy_decoding_whatever_the_seed(self) -> None:
        prior, n = self.prior(), 2
        cond = self.make_cond(prior, n)
        assert torch.equal(self.sample(prior, n, cond, 1, top_k=1), self.sample(prior, n, cond, 5, temperature=0.0))

    def test_sampling_leaves_the_training_mode_as_it_was(self) -> None:
        prior = self.prior().train()
        self.sample(prior, 1, self.make_cond(prior, 1), seed=0)
        assert prior.training and all(m.training for m in prior.modules())

    # ---- conditioning, training, weights -------------------------------------------------------------------
    def test_each_conditioning_input_changes_every_logit(self) -> None:
        prior = self.prior()
        ranges = self.cond_ranges(prior)
        if not ranges:
            pytest.skip(f"{type(prior).__name__} here takes no conditioning")
        codes, cond = self.codes(prior, 2), self.make_cond(prior, 2)
        base = prior.logits(codes, cond)
        for key, size in ranges.items():
            other = {**cond, key: (cond[key] + 1) % size}
            diff = (prior.logits(codes, other) - base).abs().amax(-1)  # (2, *S)
            assert torch.all(diff > 1e-5), f"cond[{key!r}] leaves {int((diff <= 1e-5).sum())} positions unchanged"

    def test_a_training_step_reaches_every_parameter(self) -> None:
        prior = self.prior().train()
        out = prior(self.codes(prior, 2), self.make_cond(prior, 2))  # forward is the loss (the engine's call)
        out["loss"].backward()
        missing = [name for name, p in prior.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"no gradient for {missing}"
        assert out["bits_per_code"] == pytest.approx(out["loss"].item() / math.log(2))

    def test_padding_after_the_codes_does_not_change_their_masked_loss(self) -> None:
        """The engine pads code windows at the end of the first axis and passes a mask: causality must make the
        padding invisible."""
        prior = self.prior()
        codes, cond = self.codes(prior, 2), self.make_cond(prior, 2)
        pad = self.codes(prior, 2, seed=9, shape=(3, *self.shape[1:]))
        padded = torch.cat([codes, pad], dim=1)  # (2, N + 3, ...)
        mask = torch.zeros(padded.shape, dtype=torch.bool)
        mask[:, : self.shape[0]] = True
        torch.testing.assert_close(prior(padded, cond, mask)["loss"], prior.loss(codes, cond)["loss"])

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        prior = self.prior()
        save_weights(prior.state_dict(), tmp_path / "prior.safetensors")
        fresh = self.prior(seed=99)
        codes, cond = self.codes(prior, 2), self.make_cond(prior, 2)
        assert not torch.equal(fresh.logits(codes, cond), prior.logits(codes, cond))  # else the test proves nothing
        fresh.load_state_dict(load_weights(tmp_path / "prior.safetensors"))
        assert torch.equal(fresh.logits(codes, cond), prior.logits(codes, cond))
        assert torch.equal(self.sample(fresh, 2, cond, seed=4), self.sample(prior, 2, cond, seed=4))


# ------------------------------------------------------------------------------------------------ classifiers


class ClassifierContract(WaveInput):
    """A model from inputs of any length (from ``min_length``) to class logits ``Tensor[B x num_classes]``."""

    num_classes = 4
    min_length = 4000

    def input_lengths(self) -> list[int]:
        return self.random_lengths(self.min_length, 4 * self.min_length, 4, seed=1)

    def trained_model(self, steps: int = 3) -> nn.Module:
        """A few SGD steps, so that weights and running statistics (batch norm) are away from their init."""
        torch.manual_seed(0)
        model = self.make_model().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for step in range(steps):
            x = self.make_input(self.min_length + 100 * step, batch=4)
            F.cross_entropy(model(x), torch.arange(4) % self.num_classes).backward()
            opt.step()
            opt.zero_grad()
        return model.eval()

    def test_logits_for_random_lengths(self) -> None:
        model = self.trained_model()
        for length in self.input_lengths():
            logits = model(self.make_input(length, batch=3))
            assert logits.shape == (3, self.num_classes) and torch.isfinite(logits).all()

    def test_eval_is_deterministic_and_stateless(self) -> None:
        model = self.trained_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = self.make_input(self.min_length + 7)
        assert torch.equal(model(x), model(x))
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), f"eval changed {k}"

    def test_one_item_alone_gets_the_logits_it_gets_in_a_batch(self) -> None:
        """In eval mode nothing mixes items (batch statistics would)."""
        model = self.trained_model()
        x = self.make_input(self.min_length + 11, batch=3)
        assert torch.allclose(model(x[1:2]), model(x)[1:2], atol=1e-5)

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        model = self.trained_model()
        save_weights(model.state_dict(), tmp_path / "m.safetensors")
        torch.manual_seed(99)
        fresh = self.make_model().eval()
        fresh.load_state_dict(load_weights(tmp_path / "m.safetensors"))
        x = self.make_input(self.min_length + 3)
        assert torch.equal(fresh(x), model(x))

    def test_training_steps_reach_every_parameter(self) -> None:
        model = self.trained_model(steps=0).train()
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            x = self.make_input(self.min_length, batch=4)
            F.cross_entropy(model(x), torch.arange(4) % self.num_classes).backward()
            opt.step()
            opt.zero_grad()
        unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p.detach())]
        assert not unchanged, f"no gradient reached {unchanged}"


# ------------------------------------------------------------------------------------------------ discriminators


class DiscriminatorContract(WaveInput):
    """A waveform discriminator (``audiolvm.nn.discriminators``): ``Tensor[B x 1 x T]`` -> one ``(logits,
    features)`` pair per sub-discriminator, ``logits`` ``Tensor[B x 1 x ...]``, for any ``T`` from ``min_length``."""

    sub_discriminators = 1
    min_length = 2000

    def input_lengths(self) -> list[int]:
        return [2048, *self.random_lengths(self.min_length, 2 * self.min_length, 3, seed=2)]

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.make_model()

    @staticmethod
    def flat(out: list[tuple[torch.Tensor, list[torch.Tensor]]], item: slice = slice(None)) -> torch.Tensor:
        """Every logit and feature of ``item`` in one vector, to compare two calls."""
        return torch.cat([t[item].reshape(-1) for logits, features in out for t in (logits, *features)])

    def test_one_pair_per_sub_discriminator_for_any_length(self) -> None:
        model = self.model()
        for length in self.input_lengths():
            out = model(self.make_input(length, batch=3))
            assert len(out) == self.sub_discriminators, length
            for logits, features in out:
                assert logits.shape[:2] == (3, 1) and logits.numel() > 3 and torch.isfinite(logits).all()
                assert features and all(f.shape[0] == 3 and torch.isfinite(f).all() for f in features)

    def test_every_item_and_every_parameter_get_a_gradient(self) -> None:
        model = self.model()
        x = self.make_input(self.min_length + 48).requires_grad_(True)
        self.flat(model(x)).sum().backward()
        assert x.grad is not None and all((x.grad[i].abs() > 0).any() for i in range(x.shape[0]))
        missing = [n for n, p in model.named_parameters() if p.grad is None or not (p.grad.abs() > 0).any()]
        assert not missing, f"no gradient reached {missing}"

    def test_one_item_alone_is_scored_as_in_a_batch(self) -> None:
        """Nothing mixes items: a fake is judged the same beside reals or alone."""
        model = self.model()
        x = self.make_input(self.min_length + 5, batch=3)
        torch.testing.assert_close(self.flat(model(x[1:2])), self.flat(model(x), slice(1, 2)), atol=1e-5, rtol=1e-4)

    def test_deterministic_and_stateless(self) -> None:
        model = self.model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = self.make_input(self.min_length + 9)
        assert torch.equal(self.flat(model(x)), self.flat(model(x)))
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), f"a forward pass changed {k}"

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        model = self.model()
        with torch.no_grad():  # away from the initialisation a fresh model would draw
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_weights(model.state_dict(), tmp_path / "d.safetensors")
        torch.manual_seed(99)
        fresh = self.make_model()
        fresh.load_state_dict(load_weights(tmp_path / "d.safetensors"))
        x = self.make_input(self.min_length + 3)
        assert torch.equal(self.flat(fresh(x)), self.flat(model(x)))
