"""Contract-test mixin: every autoencoder plugs in ``make_model`` and ``make_input`` and gets the
same checks (shapes, determinism, save/load round trip, a training step, code round trip)."""

from __future__ import annotations

from pathlib import Path

import torch

from audiolvm.engine.checkpoint import load_weights, save_weights
from audiolvm.models import Autoencoder


class AutoencoderContract:
    """Defaults fit 1-D audio models; image models override ``make_input`` (fixed-size images, ``length``
    only seeds them), ``input_lengths``, ``latent_shape`` and, where the reconstruction does not reach
    every parameter (learned likelihood scales), ``training_loss``."""

    hop: int = 1

    def make_model(self) -> Autoencoder:  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def make_input(self, length: int, batch: int = 2) -> torch.Tensor:
        g = torch.Generator().manual_seed(length)
        return 0.3 * torch.randn(batch, 1, length, generator=g)

    def input_lengths(self) -> list[int]:
        """Lengths the shape test feeds to ``make_input``."""
        return torch.randint(1, 700, (6,), generator=torch.Generator().manual_seed(1)).tolist()

    def latent_shape(self, model: Autoencoder, x: torch.Tensor) -> tuple[int, ...]:
        """Expected ``z.shape[2:]`` (and ``codes.shape[1:]``) for input ``x``."""
        return (-(-x.shape[-1] // model.hop),)

    def training_loss(self, model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
        return (model(x).recon - x).abs().mean()

    def trained_model(self) -> Autoencoder:
        torch.manual_seed(0)
        model = self.make_model()
        model.train()
        model(self.make_input(512, batch=4))  # a training forward (VQ initialises from it)
        return model.eval()

    def test_output_shapes_for_random_lengths(self) -> None:
        model = self.trained_model()
        for length in self.input_lengths():
            x = self.make_input(length)
            out = model(x)
            assert out.recon.shape == x.shape
            assert tuple(out.bottleneck.z.shape[2:]) == self.latent_shape(model, x)
            if model.bottleneck.discrete:
                assert out.bottleneck.codes.shape == (x.shape[0], *self.latent_shape(model, x))

    def test_eval_is_deterministic_and_stateless(self) -> None:
        model = self.trained_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = self.make_input(300)
        assert torch.equal(model.reconstruct(x), model.reconstruct(x))
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), f"eval changed {k}"

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        model = self.trained_model()
        save_weights(model.state_dict(), tmp_path / "m.safetensors")
        torch.manual_seed(99)
        fresh = self.make_model().eval()
        fresh.load_state_dict(load_weights(tmp_path / "m.safetensors"))
        x = self.make_input(256)
        assert torch.equal(fresh.reconstruct(x), model.reconstruct(x))

    def test_training_steps_reach_every_parameter(self) -> None:
        """Two steps: residual branches start at zero (their inner convs get gradient from step 2)."""
        model = self.trained_model().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.parameters()]
        x = self.make_input(256)
        for _ in range(2):
            opt.zero_grad()
            self.training_loss(model, x).backward()
            opt.step()
        changed = [not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)]
        assert all(changed), "some parameters got no gradient"

    def test_codes_round_trip(self) -> None:
        model = self.trained_model()
        if not model.bottleneck.discrete:
            return
        x = self.make_input(333)
        codes = model.encode(x)
        assert torch.allclose(model.decode_codes(codes, length=333), model.reconstruct(x), atol=1e-6)
